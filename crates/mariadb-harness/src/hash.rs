//! A stable 64-bit FNV-1a hash, used to name cached artefacts.
//!
//! `std`'s `DefaultHasher` is not guaranteed stable across Rust releases; the
//! cache names must be identical for every process on the machine.

/// Accumulates bytes into an FNV-1a hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds `bytes` followed by a separator, so `["ab","c"]` != `["a","bc"]`.
    pub(crate) fn add(mut self, bytes: &[u8]) -> Self {
        for &b in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash as 16 lowercase hex digits.
    pub(crate) fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv;

    #[test]
    fn separates_parts() {
        assert_ne!(
            Fnv::new().add(b"ab").add(b"c").hex(),
            Fnv::new().add(b"a").add(b"bc").hex()
        );
        assert_eq!(Fnv::new().add(b"x").hex().len(), 16);
    }
}
