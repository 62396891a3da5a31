//! What an instance does at one tick, given what it sees: pure, so that the rules are
//! tested without a server or a clock.

use std::time::{Duration, Instant};

/// Leases are taken at most this many per tick.
pub(crate) const BATCH: u32 = 4;
/// A leased unit idle (no caller waiting, units to spare) this long goes back.
pub(crate) const IDLE_RETURN: Duration = Duration::from_secs(1);

/// One tick's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Lease slots free on the server now.
    pub(crate) free: u32,
    /// Lease slots in all (the pool).
    pub(crate) lease_slots: u32,
    /// Other instances that hold a lease or wait for one.
    pub(crate) others_active: u32,
    /// Other instances waiting for a lease.
    pub(crate) others_wanting: u32,
    /// Leases this instance holds.
    pub(crate) leased: u32,
    /// This instance's callers waiting for a connection.
    pub(crate) waiting: u32,
    /// Units this instance may use but no caller holds (idle connections, free units).
    pub(crate) spare: u32,
}

/// What to do at this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing.
    Hold,
    /// Take up to this many leases.
    Borrow(u32),
    /// Give one lease back.
    GiveBack,
}

/// The tick's decision, and whether to hold a "waiting for a lease" mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) step: Step,
    pub(crate) want: bool,
}

/// Remembers since when this instance has had units to spare.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    spare_since: Option<Instant>,
}

/// The most leases an instance keeps while others wait for one: the pool split evenly
/// among the instances that hold or want leases, rounded up.
pub(crate) fn fair(seen: &Seen) -> u32 {
    seen.lease_slots.div_ceil(seen.others_active + 1)
}

impl Policy {
    pub(crate) fn decide(&mut self, now: Instant, seen: Seen) -> Decision {
        let fair = fair(&seen);
        let contested = seen.others_wanting > 0;
        if seen.waiting == 0 && seen.spare > 0 {
            self.spare_since.get_or_insert(now);
        } else {
            self.spare_since = None;
        }
        // Others wait and this instance holds more than its part: one back per tick.
        if contested && seen.leased > fair {
            return Decision {
                step: Step::GiveBack,
                want: false,
            };
        }
        if seen.waiting > 0 && seen.spare == 0 {
            let room = if contested {
                fair.saturating_sub(seen.leased)
            } else {
                seen.lease_slots
            };
            let n = seen.waiting.min(BATCH).min(seen.free).min(room);
            // Still short after this tick's leases (none free, or not enough): say so,
            // so that an instance holding more than its part gives some back.
            let want = n < seen.waiting && n == seen.free && seen.leased + n < fair.max(1);
            let step = if n > 0 { Step::Borrow(n) } else { Step::Hold };
            return Decision { step, want };
        }
        let idle_long = self
            .spare_since
            .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_RETURN);
        if seen.leased > 0 && idle_long {
            return Decision {
                step: Step::GiveBack,
                want: false,
            };
        }
        Decision {
            step: Step::Hold,
            want: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> Seen {
        Seen {
            free: 15,
            lease_slots: 15,
            others_active: 0,
            others_wanting: 0,
            leased: 0,
            waiting: 0,
            spare: 0,
        }
    }

    #[test]
    fn an_instance_alone_borrows_a_batch_per_tick_while_its_callers_wait() {
        let mut p = Policy::default();
        let d = p.decide(
            Instant::now(),
            Seen {
                waiting: 10,
                ..seen()
            },
        );
        assert_eq!(d.step, Step::Borrow(BATCH));
        assert!(!d.want, "leases are free: nobody needs to give any back");
        let d = p.decide(
            Instant::now(),
            Seen {
                waiting: 2,
                ..seen()
            },
        );
        assert_eq!(d.step, Step::Borrow(2), "no more than its callers wait for");
    }

    #[test]
    fn with_units_to_spare_nothing_is_borrowed() {
        let mut p = Policy::default();
        let d = p.decide(
            Instant::now(),
            Seen {
                waiting: 3,
                spare: 1,
                ..seen()
            },
        );
        assert_eq!(d.step, Step::Hold);
    }

    #[test]
    fn when_no_lease_is_free_a_waiting_instance_says_it_wants_one() {
        let mut p = Policy::default();
        let d = p.decide(
            Instant::now(),
            Seen {
                free: 0,
                others_active: 1,
                waiting: 3,
                ..seen()
            },
        );
        assert_eq!(
            d,
            Decision {
                step: Step::Hold,
                want: true
            }
        );
    }

    #[test]
    fn an_instance_above_its_part_gives_one_back_per_tick_while_others_want() {
        let mut p = Policy::default();
        let hot = Seen {
            free: 0,
            others_active: 2,
            others_wanting: 2,
            leased: 15,
            waiting: 50,
            ..seen()
        };
        assert_eq!(fair(&hot), 5);
        assert_eq!(p.decide(Instant::now(), hot).step, Step::GiveBack);
        let at_part = Seen { leased: 5, ..hot };
        let d = p.decide(Instant::now(), at_part);
        assert_eq!(d.step, Step::Hold, "at its part it keeps what it has");
    }

    #[test]
    fn while_others_want_an_instance_borrows_only_up_to_its_part() {
        let mut p = Policy::default();
        let d = p.decide(
            Instant::now(),
            Seen {
                free: 10,
                others_active: 1,
                others_wanting: 1,
                leased: 6,
                waiting: 20,
                ..seen()
            },
        );
        assert_eq!(d.step, Step::Borrow(2), "fair is 8 of 15 for two instances");
    }

    #[test]
    fn a_lease_idle_for_a_second_goes_back_and_not_before() {
        let mut p = Policy::default();
        let t = Instant::now();
        let idle = Seen {
            free: 10,
            leased: 5,
            spare: 2,
            ..seen()
        };
        assert_eq!(p.decide(t, idle).step, Step::Hold);
        let later = t + IDLE_RETURN / 2;
        assert_eq!(p.decide(later, idle).step, Step::Hold);
        let busy_again = Seen {
            spare: 0,
            waiting: 1,
            free: 0,
            ..idle
        };
        p.decide(later, busy_again);
        assert_eq!(
            p.decide(t + IDLE_RETURN, idle).step,
            Step::Hold,
            "the idle time starts again after a busy moment"
        );
        assert_eq!(
            p.decide(t + IDLE_RETURN * 2 + IDLE_RETURN / 2, idle).step,
            Step::GiveBack
        );
    }
}
