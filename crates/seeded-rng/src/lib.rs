//! One small deterministic random generator for the tests, the load generator and the
//! benchmarks.
//!
//! # Why
//!
//! Fuzzers, property tests and simulated players must be reproducible: a failure found
//! with seed `s` must come back with seed `s`, on every machine and in every release.
//! A `rand` generator may change its algorithm between versions, and std has none, so
//! this crate is SplitMix64 (Steele, Lea and Flood, 2014; the reference outputs are
//! pinned by a test below), with the few ways of drawing the tests need. It is not
//! for anything secret.
//!
//! Production code that must choose deterministically (the retention crate's quest
//! choice) keeps its own, documented copy next to the contract it serves, so that no
//! change here can move a player's quests.
//!
//! # Example
//!
//! ```
//! use seeded_rng::Rng;
//!
//! let mut a = Rng::new(42);
//! let mut b = Rng::new(42);
//! assert_eq!(a.below(100), b.below(100));
//! let word = a.pick(&["sword", "map", "shield"]);
//! assert!(["sword", "map", "shield"].contains(&word));
//! ```

/// SplitMix64: the same seed gives the same sequence, always.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (by modulo: the bias is negligible for the small `n` of
    /// tests, and the sequences the tests were written against stay the same).
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index into a slice of `len` items.
    ///
    /// # Panics
    ///
    /// When `len` is 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// One of `items`, uniformly.
    ///
    /// # Panics
    ///
    /// When `items` is empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// True with a chance of `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_outputs_are_splitmix64s_reference_values() {
        // The reference implementation's first outputs for seed 1234567.
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn draws_stay_in_range_and_a_seed_repeats_its_sequence() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for n in 1..200 {
            let x = a.below(n);
            assert!(x < n);
            assert_eq!(x, b.below(n));
        }
        assert!((0..100).all(|_| !a.chance(0) && a.chance(100)));
        assert_eq!(Rng::new(3).index(5), Rng::new(3).below(5) as usize);
    }
}
