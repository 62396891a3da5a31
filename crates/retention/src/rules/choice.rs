//! Which quests a player gets on a day: a deterministic choice per (player, day).
//!
//! The choice must be the same for every call, in every process, in every release
//! that keeps this file unchanged, so it cannot use std's `RandomState` (randomly
//! keyed per process) or a `rand` generator whose algorithm may change. It is:
//!
//! 1. seed = FNV-1a (64-bit) over the player id (8 bytes, little-endian) and the day
//!    (days since 0001-01-01 CE, 4 bytes, little-endian);
//! 2. the candidate codes sorted and de-duplicated, so that the database's row order
//!    does not matter;
//! 3. a partial Fisher–Yates shuffle driven by SplitMix64 from the seed; the first
//!    `k` codes are the choice, in that order.
//!
//! Changing the candidates (a template added or deactivated) changes later choices,
//! never quests already generated: those are stored.

use chrono::{Datelike, NaiveDate};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// SplitMix64: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of (player, day).
pub fn seed(player_id: u64, day: NaiveDate) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&player_id.to_le_bytes());
    bytes[8..].copy_from_slice(&day.num_days_from_ce().to_le_bytes());
    fnv1a64(&bytes)
}

/// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift (no modulo bias
/// worth the name at these sizes, and no loop).
fn below(state: &mut u64, n: usize) -> usize {
    let wide = u128::from(splitmix64(state)) * n as u128;
    (wide >> 64) as usize
}

/// Chooses `k` of `codes` for `player_id` on `day` (all of them if there are fewer),
/// deterministically. The result has no duplicates.
pub fn choose<'a>(codes: &[&'a str], k: usize, player_id: u64, day: NaiveDate) -> Vec<&'a str> {
    let mut pool: Vec<&'a str> = codes.to_vec();
    pool.sort_unstable();
    pool.dedup();
    let k = k.min(pool.len());
    let mut state = seed(player_id, day);
    for i in 0..k {
        let j = i + below(&mut state, pool.len() - i);
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const CODES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(i64::from(n))
    }

    #[test]
    fn fnv1a_and_splitmix_match_their_reference_values() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        // SplitMix64 from seed 1234567 (reference implementation by Vigna).
        let mut s = 1_234_567;
        assert_eq!(splitmix64(&mut s), 6_457_827_717_110_365_317);
        assert_eq!(splitmix64(&mut s), 3_203_168_211_198_807_973);
    }

    #[test]
    fn the_same_player_and_day_always_get_the_same_quests() {
        let first = choose(&CODES, 3, 42, d(0));
        for _ in 0..10 {
            assert_eq!(choose(&CODES, 3, 42, d(0)), first);
        }
        // Row order does not matter.
        let mut reversed = CODES;
        reversed.reverse();
        assert_eq!(choose(&reversed, 3, 42, d(0)), first);
    }

    #[test]
    fn a_choice_has_k_distinct_candidates() {
        for player in 0..50 {
            let c = choose(&CODES, 3, player, d(player as u32));
            assert_eq!(c.len(), 3);
            assert_eq!(c.iter().collect::<HashSet<_>>().len(), 3);
            assert!(c.iter().all(|code| CODES.contains(code)));
        }
    }

    #[test]
    fn fewer_candidates_than_k_gives_all_of_them_and_none_gives_none() {
        let mut c = choose(&["x", "y", "x"], 3, 1, d(0));
        c.sort_unstable();
        assert_eq!(c, ["x", "y"]);
        assert!(choose(&[], 3, 1, d(0)).is_empty());
        assert!(choose(&CODES, 0, 1, d(0)).is_empty());
    }

    #[test]
    fn choices_vary_across_days_and_players_and_cover_every_candidate() {
        let by_day: HashSet<Vec<&str>> = (0..30).map(|n| choose(&CODES, 3, 7, d(n))).collect();
        assert!(
            by_day.len() > 10,
            "only {} distinct choices in 30 days",
            by_day.len()
        );
        let by_player: HashSet<Vec<&str>> = (0..30).map(|p| choose(&CODES, 3, p, d(0))).collect();
        assert!(by_player.len() > 10);

        let mut counts: HashMap<&str, u32> = HashMap::new();
        for p in 0..2000 {
            for code in choose(&CODES, 3, p, d(p as u32 % 365)) {
                *counts.entry(code).or_default() += 1;
            }
        }
        // 6000 picks over 8 codes: 750 each on average.
        for code in CODES {
            let n = counts[code];
            assert!((600..=900).contains(&n), "{code} picked {n} times");
        }
    }
}
