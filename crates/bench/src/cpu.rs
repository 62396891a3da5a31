//! CPU time a process has used, read from `/proc`: what a statement costs the client
//! and the database server apart, where throughput alone shows only their sum (on a
//! small machine both share the same cores).

use std::time::Duration;

/// The user plus system CPU time process `pid` has used so far, all its threads
/// (live and exited) together; `None` when `/proc` cannot tell (not Linux, gone).
///
/// The kernel counts it in clock ticks (usually 10 ms), so a window needs to be long
/// against a tick: a 2 s measurement of a busy process is a few hundred ticks.
pub fn used(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count the
    // fields after its closing one. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; it reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|hz| *hz > 0)?;
    Some(Duration::from_nanos((utime + stime) * 1_000_000_000 / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_more_cpu_after_spinning() {
        let me = std::process::id();
        let before = used(me).expect("/proc/self/stat");
        // Spins until the count moves (a tick or two), however loaded the machine.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        let mut after = before;
        while after < before + Duration::from_millis(20) && std::time::Instant::now() < give_up {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = used(me).expect("/proc/self/stat");
        }
        assert!(
            after >= before + Duration::from_millis(20),
            "{before:?} then {after:?} after 30 s of spinning"
        );
    }
}
