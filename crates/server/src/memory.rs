//! Memory: how the server binary keeps glibc's malloc from holding on to freed memory.
//!
//! Under a steady load, the process with glibc's default settings grew its RSS by about
//! 1.5 MiB a minute while the memory it held did not grow (`cargo xtask soak`,
//! RELIABILITY.md): with the load stopped and the pools drained, 1.8 MiB were live in
//! a 47 MiB RSS, and `malloc_trim(0)` gave 26 MiB back. The growth was free memory
//! glibc kept in its arenas.
//!
//! The cause is the blocking driver's buffers and glibc's *dynamic* mmap threshold.
//! Every `mysql` connection allocates two 4 MiB buffers (`mysql_common`'s
//! `MySyncFramed`). glibc serves blocks above its mmap threshold (128 KiB at start)
//! from their own mappings, which it unmaps on free. But each time it frees such a
//! block, it raises the threshold to that block's size (up to 32 MiB), so from the
//! first closed connection on, the next connections' buffers come from the arenas,
//! between small long-lived blocks, and an arena can only give memory back from its
//! top: it fragments and grows.
//!
//! [`tune_allocator`] sets the threshold explicitly, which (mallopt(3)) also turns the
//! dynamic adjustment off: blocks of 1 MiB and more always get their own mapping and
//! leave nothing behind when freed. 1 MiB is above what a request allocates and below
//! the driver's buffers; those cost one `mmap` and one `munmap` per physical connection,
//! next to a TCP and authentication handshake. Measured with the soak: RSS stays in a
//! band (38 to 45 MiB over 30 minutes) instead of growing; RELIABILITY.md has the runs,
//! glibc's defaults beside it.
//!
//! Other allocators were measured with the same soak and not chosen: jemalloc grew much
//! like glibc's defaults during the run (39 to 51 MiB in 10 minutes; it gave the memory
//! back once the load stopped); mimalloc stayed flat but at twice the level (about
//! 78 MiB) and kept 57 MiB after the load stopped.
//!
//! **Architecture Invariant:** this is a process-wide policy, so only binaries call
//! it: the server's `main` and the soak. The library never changes the allocator of a
//! program that embeds [`crate::Application`].

/// The mmap threshold [`tune_allocator`] sets: blocks from this size up are mapped
/// on their own.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// What [`tune_allocator`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// The threshold is now [`MMAP_THRESHOLD`], fixed.
    Applied,
    /// `MALLOC_MMAP_THRESHOLD_` is set in the environment: the operator's value stands.
    LeftToEnvironment,
    /// Not glibc: nothing to do.
    NotGlibc,
    /// glibc refused the setting (`mallopt` returned 0).
    Refused,
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (see the module docs), unless
/// `MALLOC_MMAP_THRESHOLD_` is set in the environment.
///
/// Call it once, at the start of `main`, before threads start.
pub fn tune_allocator() -> Tuning {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return Tuning::LeftToEnvironment;
    }
    set_threshold()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_threshold() -> Tuning {
    let value = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only changes a malloc parameter; it takes no pointer.
    match unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) } {
        0 => Tuning::Refused,
        _ => Tuning::Applied,
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_threshold() -> Tuning {
    Tuning::NotGlibc
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Whether glibc gave `block` its own mapping: the `IS_MMAPPED` bit (0x2) of the
    /// chunk's size field, the word just before the pointer malloc returned.
    fn is_mmapped(block: &[u8]) -> bool {
        // SAFETY: `block` came from glibc's malloc (the global allocator of this test
        // binary is the system's), and a chunk's size field precedes its user memory.
        let size_field = unsafe { block.as_ptr().cast::<usize>().sub(1).read_unaligned() };
        size_field & 0x2 != 0
    }

    #[test]
    fn after_tuning_a_freed_driver_buffer_does_not_send_the_next_ones_to_the_arena() {
        // Arrange
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            assert_eq!(tune_allocator(), Tuning::LeftToEnvironment);
            return;
        }
        assert_eq!(tune_allocator(), Tuning::Applied);

        // Act + Assert: as the mysql driver does per connection, allocate 4 MiB and
        // free it, several times. With glibc's dynamic threshold the first free raises
        // the threshold above 4 MiB and the second block comes from an arena.
        for round in 0..3 {
            let buffer = vec![1u8; 4 << 20];
            assert!(is_mmapped(&buffer), "4 MiB block {round} is in an arena");
            drop(buffer);
        }
        let small = vec![1u8; MMAP_THRESHOLD / 2];
        assert!(
            !is_mmapped(&small),
            "a block below the threshold was mapped"
        );
    }
}
