//! Login streaks: consecutive claimed game days.
//!
//! The streak day of a claim is the previous claim's streak day + 1 when the previous
//! claim was on the day before, and 1 otherwise (first claim, or a day was missed).

use chrono::NaiveDate;

/// A claim already made: its game day and the streak day it counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastClaim {
    /// The game day claimed.
    pub day: NaiveDate,
    /// Its streak day (1-based).
    pub streak: u32,
}

/// What a claim for a day should do, given the player's latest claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Claim it, as this streak day.
    Claim {
        /// The streak day this claim counts as.
        streak: u32,
    },
    /// The latest claim is this very day.
    AlreadyClaimed,
    /// The player already claimed a later day: claims go forward in time only (a
    /// backdated claim would rewrite the streak of the days after it).
    BeforeLatest {
        /// The latest claimed day.
        latest: NaiveDate,
    },
}

/// Decides a claim for `day`, given the player's latest claim (any day).
pub fn decide_claim(latest: Option<PastClaim>, day: NaiveDate) -> ClaimDecision {
    match latest {
        None => ClaimDecision::Claim { streak: 1 },
        Some(last) if last.day == day => ClaimDecision::AlreadyClaimed,
        Some(last) if last.day > day => ClaimDecision::BeforeLatest { latest: last.day },
        Some(last) => ClaimDecision::Claim {
            streak: streak_after(Some(last), day),
        },
    }
}

/// The streak day a claim on `day` counts as, given the latest claim before `day`.
pub fn streak_after(previous: Option<PastClaim>, day: NaiveDate) -> u32 {
    match previous {
        Some(p) if day.pred_opt() == Some(p.day) => p.streak.saturating_add(1),
        _ => 1,
    }
}

/// Where a player stands on `day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreakStatus {
    /// `day` is claimed.
    pub claimed: bool,
    /// The streak as of `day`: the claimed streak day if `day` is claimed; yesterday's
    /// if yesterday was claimed (the streak is alive until `day` ends); else 0.
    pub current: u32,
    /// The streak day `day`'s claim counts (or counted) as: it decides `day`'s reward.
    pub reward_streak: u32,
}

/// The status on `day`, given the latest claim on or before `day`.
pub fn status(latest_on_or_before: Option<PastClaim>, day: NaiveDate) -> StreakStatus {
    match latest_on_or_before {
        Some(last) if last.day == day => StreakStatus {
            claimed: true,
            current: last.streak,
            reward_streak: last.streak,
        },
        Some(last) if day.pred_opt() == Some(last.day) => StreakStatus {
            claimed: false,
            current: last.streak,
            reward_streak: last.streak.saturating_add(1),
        },
        _ => StreakStatus {
            claimed: false,
            current: 0,
            reward_streak: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, n).unwrap()
    }

    fn claim(n: u32, streak: u32) -> Option<PastClaim> {
        Some(PastClaim { day: d(n), streak })
    }

    #[test]
    fn the_first_claim_is_day_one() {
        assert_eq!(decide_claim(None, d(5)), ClaimDecision::Claim { streak: 1 });
    }

    #[test]
    fn consecutive_days_continue_the_streak() {
        assert_eq!(
            decide_claim(claim(4, 3), d(5)),
            ClaimDecision::Claim { streak: 4 }
        );
        assert_eq!(
            decide_claim(claim(7, 7), d(8)),
            ClaimDecision::Claim { streak: 8 }
        );
    }

    #[test]
    fn a_missed_day_restarts_at_one() {
        assert_eq!(
            decide_claim(claim(3, 3), d(5)),
            ClaimDecision::Claim { streak: 1 }
        );
        assert_eq!(
            decide_claim(claim(1, 9), d(30)),
            ClaimDecision::Claim { streak: 1 }
        );
    }

    #[test]
    fn the_same_day_twice_is_already_claimed_and_earlier_days_are_refused() {
        assert_eq!(
            decide_claim(claim(5, 2), d(5)),
            ClaimDecision::AlreadyClaimed
        );
        assert_eq!(
            decide_claim(claim(6, 2), d(5)),
            ClaimDecision::BeforeLatest { latest: d(6) }
        );
    }

    #[test]
    fn a_week_simulated_day_by_day() {
        let mut latest = None;
        let mut streaks = Vec::new();
        for day in [1, 2, 3, 4, 5, 6, 7, 8, 10, 11] {
            let ClaimDecision::Claim { streak } = decide_claim(latest, d(day)) else {
                panic!("day {day} refused");
            };
            streaks.push(streak);
            latest = Some(PastClaim {
                day: d(day),
                streak,
            });
        }
        assert_eq!(streaks, [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]);
    }

    #[test]
    fn month_and_year_boundaries_are_consecutive() {
        let last = Some(PastClaim {
            day: NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
            streak: 2,
        });
        let next = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        assert_eq!(decide_claim(last, next), ClaimDecision::Claim { streak: 3 });
    }

    #[test]
    fn status_before_and_after_claiming() {
        // Nothing claimed yet.
        assert_eq!(
            status(None, d(5)),
            StreakStatus {
                claimed: false,
                current: 0,
                reward_streak: 1
            }
        );
        // Yesterday claimed: the streak is alive, today would continue it.
        assert_eq!(
            status(claim(4, 3), d(5)),
            StreakStatus {
                claimed: false,
                current: 3,
                reward_streak: 4
            }
        );
        // Today claimed.
        assert_eq!(
            status(claim(5, 4), d(5)),
            StreakStatus {
                claimed: true,
                current: 4,
                reward_streak: 4
            }
        );
        // Missed yesterday: broken.
        assert_eq!(
            status(claim(3, 3), d(5)),
            StreakStatus {
                claimed: false,
                current: 0,
                reward_streak: 1
            }
        );
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(streak_after(claim(4, u32::MAX), d(5)), u32::MAX);
    }
}
