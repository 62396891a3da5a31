//! Which reward tier a streak day earns.

/// The login reward cycle has this many tiers (days 1..=7).
pub const CYCLE_DAYS: u8 = 7;

/// The tier (1..=[`CYCLE_DAYS`]) earned on streak day `streak` (1-based).
///
/// The cycle repeats: streak days 1..=7 earn tiers 1..=7, streak day 8 earns tier 1
/// again, day 9 tier 2, and so on. The streak count itself keeps growing (it is shown
/// to the player); only the tier wraps. A streak of 0 (no streak) is treated as day 1.
pub fn tier_day(streak: u32) -> u8 {
    let zero_based = streak.max(1) - 1;
    // The remainder is below CYCLE_DAYS, so it fits in a u8.
    (zero_based % u32::from(CYCLE_DAYS)) as u8 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_week_earns_tiers_one_to_seven() {
        let tiers: Vec<u8> = (1..=7).map(tier_day).collect();
        assert_eq!(tiers, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_day_after_day_seven_starts_the_cycle_again() {
        assert_eq!(tier_day(8), 1);
        assert_eq!(tier_day(9), 2);
        assert_eq!(tier_day(14), 7);
        assert_eq!(tier_day(15), 1);
    }

    #[test]
    fn extremes_stay_in_range() {
        assert_eq!(tier_day(0), 1);
        assert!((1..=CYCLE_DAYS).contains(&tier_day(u32::MAX)));
    }
}
