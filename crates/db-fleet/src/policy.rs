//! What an instance does at one tick, given what it sees: pure, so that the rules are
//! tested without a server or a clock.
//!
//! # The rules
//!
//! A unit should be where callers wait for it. Each tick the instance notes its
//! **slack** (units no caller holds, less callers waiting) in a window of the last
//! second, and:
//!
//! 1. **Short** (callers wait, no unit to spare): it borrows free leases, up to 4 a
//!    tick, and if none is left free it holds its want mark, whatever it holds already:
//!    that is how an instance holding leases it does not need learns that another needs
//!    them.
//! 2. **Its leases idle while another wants** (some other instance holds its want mark):
//!    it gives one back if, counted with the leases it holds now (one given back or
//!    taken since counts out or in), it had a unit to spare in more than half of the
//!    last second's ticks: with one lease fewer its callers would have waited in fewer
//!    than half of them. A burst every few ticks does not keep a lease from an instance
//!    whose callers wait all the time.
//! 3. **Idle while nobody wants**: a lease goes back after a second in which the
//!    instance had a unit to spare at every tick (its peak use left one free).
//! 4. **Above its part while another keeps wanting**: the even split of the pool over
//!    the instances holding or wanting leases is the tie-break between instances that
//!    are all short. It applies only against an instance that has held its want mark
//!    for [`CONTEST`]: an instance whose callers wait all the time does not give up
//!    units to one whose callers wait for a moment (its floor serves those). Its part
//!    is the split rounded up (⌈P/n⌉), and rounded down (⌊P/n⌋) while an instance that
//!    keeps wanting holds fewer than ⌊P/n⌋: rounded up alone, the instances at ⌈P/n⌉
//!    could hold the whole pool and leave one with nothing for ever (a pool of 4 over 3
//!    instances: 2 / 2 / 0). While an instance keeps wanting, the others borrow no
//!    further than their part.
//!
//! At most one lease goes back per tick. The policy only decides when to take or give:
//! what an instance may hold is bounded by the locks it won (`lib.rs`).
//!
//! # No flapping
//!
//! - Rule 2 needs a second of history and counts the leases as they are now (so one
//!   spare unit sends back one lease, not one per tick until the window catches up).
//! - Rule 4 stops at the part, which the instance it gives to does not exceed either
//!   (it borrows no further than its own part while the other keeps wanting); the part
//!   rounded down applies to the giver and the takers alike, and ends as soon as the
//!   one that kept wanting holds ⌊P/n⌋.
//! - **Cool-down**: for [`COOL_DOWN`] after it gives a lease back, an instance borrows
//!   nothing while another instance wants. The slot it gave is freed at its next tick,
//!   before it reads the slots: without the cool-down, short again, it would take its
//!   own slot back before the one that wants could look (a connection closed and opened
//!   again for nothing).
//! - **Patience**: a lease given back under rule 4 is in vain if the giver borrows
//!   again within [`VAIN`] (nobody took it: the one that kept wanting stopped before the
//!   slot was free). Each time, the giver's patience doubles (from [`CONTEST`] up to
//!   [`MAX_PATIENCE`]): another's want must have lasted that much longer before it gives
//!   back again under rule 4. A lease given back and not retaken within [`VAIN`] resets
//!   it. So wants that end before a lease can reach them cost a few leases, not one per
//!   burst. Rule 2 needs none: it gives back only what the giver's callers rarely need.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Leases are taken at most this many per tick.
pub(crate) const BATCH: u32 = 4;
/// The window the slack is judged over (rules 2 and 3): a lease nobody wants goes back
/// after this long with a unit to spare throughout.
pub(crate) const IDLE_RETURN: Duration = Duration::from_secs(1);
/// How long another instance holds its want mark before an instance above its part
/// gives a lease back to it (rule 4).
pub(crate) const CONTEST: Duration = Duration::from_millis(500);
/// After giving a lease back, an instance borrows nothing for this long while another
/// instance wants: the lease goes to the one that wants it, not back to the giver. Five
/// ticks: the slot is free from the giver's next tick, and every other instance looks
/// within a tick after that.
pub(crate) const COOL_DOWN: Duration = Duration::from_millis(500);
/// A lease given back under rule 4 is in vain if its giver borrows again within this
/// long.
pub(crate) const VAIN: Duration = Duration::from_secs(2);
/// The most a giver's patience grows to after leases given back in vain.
pub(crate) const MAX_PATIENCE: Duration = Duration::from_secs(4);
/// A want mark not looked at for this long is forgotten ([`Wanting`]): a gap in the
/// looks (a lost control connection, a reconnect) is not a want held throughout.
pub(crate) const STALE: Duration = CONTEST;

/// One tick's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Lease slots free on the server now.
    pub(crate) free: u32,
    /// Lease slots in all (the pool).
    pub(crate) lease_slots: u32,
    /// Other instances that hold a lease or wait for one.
    pub(crate) others_active: u32,
    /// Other instances waiting for a lease (holding their want mark).
    pub(crate) others_wanting: u32,
    /// Of those, the ones that have held their want mark for at least [`CONTEST`]
    /// ([`Wanting`]).
    pub(crate) others_wanting_long: u32,
    /// The fewest leases held by one of those (`None` if there is none).
    pub(crate) fewest_wanting_long: Option<u32>,
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

/// One tick in the window.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// Units to spare less callers waiting.
    slack: i64,
    /// Leases held then.
    leased: u32,
}

/// Remembers the last second's ticks, and its recent give-backs.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    window: VecDeque<Sample>,
    /// The first tick seen: the window holds a whole second only after that long.
    since: Option<Instant>,
    /// When it last gave a lease back (the cool-down).
    gave: Option<Instant>,
    /// When it last gave a lease back under rule 4, until that is judged in vain (it
    /// borrowed within [`VAIN`]) or not.
    on_trial: Option<Instant>,
    /// How much longer than rule 4 asks another's want must have lasted before this
    /// instance gives back under it: zero, or doubled by each lease given back in vain.
    patience: Duration,
    /// Since when another instance has held its want mark for [`CONTEST`], likewise.
    kept_since: Option<Instant>,
}

/// The most leases an instance keeps while another keeps wanting: the pool split evenly
/// among the instances that hold or want leases, rounded up.
pub(crate) fn fair(seen: &Seen) -> u32 {
    seen.lease_slots.div_ceil(seen.others_active + 1)
}

/// The pool split evenly, rounded down: what an instance that keeps wanting is owed.
pub(crate) fn owed(seen: &Seen) -> u32 {
    seen.lease_slots / (seen.others_active + 1)
}

impl Policy {
    pub(crate) fn decide(&mut self, now: Instant, seen: Seen) -> Decision {
        self.note(now, &seen);
        let (fair, owed) = (fair(&seen), owed(&seen));
        let kept_wanting = seen.others_wanting_long > 0;
        // One that keeps wanting holds less than the part rounded down.
        let starved = kept_wanting && seen.fewest_wanting_long.is_some_and(|l| l < owed);
        let part = if starved { owed } else { fair };
        let short = seen.waiting > 0 && seen.spare == 0;
        // Rule 4: above its part while another keeps wanting, one back per tick.
        if kept_wanting && seen.leased > part && Self::lasted(self.kept_since, now, self.patience) {
            self.gave(now, true);
            return Decision {
                step: Step::GiveBack,
                want: short && seen.free == 0,
            };
        }
        // Rule 1: short, borrow; still short with none left free, say so.
        if short {
            let cooling = seen.others_wanting > 0
                && self
                    .gave
                    .is_some_and(|g| now.saturating_duration_since(g) < COOL_DOWN);
            let room = if cooling {
                0
            } else if kept_wanting {
                part.saturating_sub(seen.leased)
            } else {
                seen.lease_slots
            };
            let n = seen.waiting.min(BATCH).min(seen.free).min(room);
            // Cooling down, it waits for a lease it may not take: it still says so.
            let want = n < seen.waiting && (n == seen.free || cooling);
            let step = if n > 0 {
                self.borrowed(now);
                Step::Borrow(n)
            } else {
                Step::Hold
            };
            return Decision { step, want };
        }
        let give_back = seen.leased > 0
            && if seen.others_wanting > 0 {
                // Rule 2.
                self.spare_in_most_ticks(now, seen.leased)
            } else {
                // Rule 3.
                self.spare_in_every_tick(now, seen.leased)
            };
        if give_back {
            self.gave(now, false);
        }
        Decision {
            step: if give_back {
                Step::GiveBack
            } else {
                Step::Hold
            },
            want: false,
        }
    }

    /// Whether a want noted since `since` has lasted `patience`.
    fn lasted(since: Option<Instant>, now: Instant, patience: Duration) -> bool {
        since.is_some_and(|t| now.saturating_duration_since(t) >= patience)
    }

    /// A lease goes back now.
    fn gave(&mut self, now: Instant, on_trial: bool) {
        self.gave = Some(now);
        if on_trial {
            self.on_trial = Some(now);
        }
    }

    /// It borrows now: a lease given back under rule 4 within [`VAIN`] was given in
    /// vain.
    fn borrowed(&mut self, now: Instant) {
        if self
            .on_trial
            .take()
            .is_some_and(|g| now.saturating_duration_since(g) < VAIN)
        {
            self.patience = (self.patience * 2).clamp(CONTEST, MAX_PATIENCE);
        }
    }

    /// Adds this tick to the window and drops the ticks older than a second.
    fn note(&mut self, now: Instant, seen: &Seen) {
        self.since.get_or_insert(now);
        if seen.others_wanting_long == 0 {
            self.kept_since = None;
        } else {
            self.kept_since.get_or_insert(now);
        }
        // A lease given back and not retaken for VAIN: its giver's patience was enough.
        if self
            .on_trial
            .is_some_and(|g| now.saturating_duration_since(g) >= VAIN)
        {
            self.on_trial = None;
            self.patience = Duration::ZERO;
        }
        self.window.push_back(Sample {
            at: now,
            slack: i64::from(seen.spare) - i64::from(seen.waiting),
            leased: seen.leased,
        });
        while self
            .window
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > IDLE_RETURN)
        {
            self.window.pop_front();
        }
    }

    /// Each tick of the last second, whether it would have had a unit to spare with the
    /// leases held now (a lease given back or taken since counted out or in); `None`
    /// until the window holds a whole second.
    fn spare_with(&self, now: Instant, leased: u32) -> Option<impl Iterator<Item = bool> + '_> {
        let whole = self
            .since
            .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_RETURN);
        whole.then(|| {
            self.window
                .iter()
                .map(move |s| s.slack + i64::from(leased) - i64::from(s.leased) >= 1)
        })
    }

    /// With one lease fewer its callers would have waited in fewer than half the ticks.
    fn spare_in_most_ticks(&self, now: Instant, leased: u32) -> bool {
        self.spare_with(now, leased).is_some_and(|ticks| {
            let (spare, all) = ticks.fold((0, 0), |(s, a), t| (s + u32::from(t), a + 1));
            2 * spare > all
        })
    }

    /// Its peak use over the last second left a unit to spare.
    fn spare_in_every_tick(&self, now: Instant, leased: u32) -> bool {
        self.spare_with(now, leased)
            .is_some_and(|mut ticks| ticks.all(|t| t))
    }
}

/// Since when each other instance (by its control session) has held its want mark
/// without a break, as far as this instance's looks tell: a mark is forgotten when the
/// last look is older than [`STALE`] (the looks stopped: a lost control connection,
/// after which a new server may give the same session id to another instance).
#[derive(Debug, Default)]
pub(crate) struct Wanting {
    since: BTreeMap<u64, Instant>,
    /// The last look.
    last: Option<Instant>,
}

impl Wanting {
    /// Notes the sessions holding a want mark now; returns how many have held one for at
    /// least [`CONTEST`].
    pub(crate) fn note(&mut self, now: Instant, wanting: &BTreeSet<u64>) -> u32 {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) > STALE)
        {
            self.since.clear();
        }
        self.last = Some(now);
        self.since.retain(|id, _| wanting.contains(id));
        for &id in wanting {
            self.since.entry(id).or_insert(now);
        }
        self.since.keys().filter(|&&id| self.long(id, now)).count() as u32
    }

    /// Whether session `id` has held its want mark for at least [`CONTEST`] at the last
    /// look.
    pub(crate) fn long(&self, id: u64, now: Instant) -> bool {
        self.since
            .get(&id)
            .is_some_and(|&t| now.saturating_duration_since(t) >= CONTEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    fn seen() -> Seen {
        Seen {
            free: 15,
            lease_slots: 15,
            others_active: 0,
            others_wanting: 0,
            others_wanting_long: 0,
            fewest_wanting_long: None,
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
    fn a_hot_instance_at_its_part_asks_for_more_while_the_others_hold_leases_nobody_waits_for() {
        // Arrange: 3 of 10 leases, its part (⌈10/4⌉); the three others hold the other 7
        // and none of them waits.
        let mut p = Policy::default();
        let hot = Seen {
            free: 0,
            lease_slots: 10,
            others_active: 3,
            others_wanting: 0,
            others_wanting_long: 0,
            fewest_wanting_long: None,
            leased: 3,
            waiting: 50,
            spare: 0,
        };

        // Act
        let d = p.decide(Instant::now(), hot);

        // Assert
        assert_eq!(fair(&hot), 3);
        assert!(d.want, "{d:?}");
    }

    #[test]
    fn a_cold_instance_gives_back_a_lease_its_callers_only_rarely_need_when_another_wants() {
        // Arrange: two leases; its callers wait at every 10th tick, at the others it has
        // two units to spare; another instance wants.
        let mut p = Policy::default();
        let t = Instant::now();
        let cold = Seen {
            free: 0,
            lease_slots: 10,
            others_active: 3,
            others_wanting: 1,
            others_wanting_long: 1,
            fewest_wanting_long: Some(3),
            leased: 2,
            waiting: 0,
            spare: 2,
        };
        let busy = Seen {
            waiting: 3,
            spare: 0,
            ..cold
        };

        // Act
        let steps: Vec<Step> = (0..30u32)
            .map(|i| {
                let tick = if i.is_multiple_of(10) { busy } else { cold };
                p.decide(t + TICK * i, tick).step
            })
            .collect();

        // Assert
        assert!(steps.contains(&Step::GiveBack), "{steps:?}");
    }

    #[test]
    fn a_busy_instance_keeps_its_leases_while_another_wants() {
        // Arrange: its callers wait at most ticks, and it has one unit to spare at the
        // others; another instance wants throughout.
        let mut p = Policy::default();
        let t = Instant::now();
        let busy = Seen {
            free: 0,
            lease_slots: 10,
            others_active: 1,
            others_wanting: 1,
            others_wanting_long: 1,
            fewest_wanting_long: Some(6),
            leased: 4,
            waiting: 2,
            spare: 0,
        };
        let lull = Seen {
            waiting: 0,
            spare: 1,
            ..busy
        };

        // Act
        let steps: Vec<Step> = (0..30u32)
            .map(|i| {
                let tick = if i.is_multiple_of(3) { lull } else { busy };
                p.decide(t + TICK * i, tick).step
            })
            .collect();

        // Assert
        assert!(!steps.contains(&Step::GiveBack), "{steps:?}");
    }

    #[test]
    fn an_instance_above_its_part_gives_one_back_per_tick_once_another_has_wanted_for_a_while() {
        // Arrange: 15 leases, its part 5 of 15; its callers wait too.
        let mut p = Policy::default();
        let t = Instant::now();
        let hot = Seen {
            free: 0,
            others_active: 2,
            others_wanting: 2,
            leased: 15,
            waiting: 50,
            ..seen()
        };

        // Act: the others have just started wanting; then they have wanted for a while.
        let at_once = p.decide(t, hot);
        let kept = Seen {
            others_wanting_long: 1,
            ..hot
        };
        let later = p.decide(t + CONTEST, kept);
        let at_part = p.decide(t + CONTEST + TICK, Seen { leased: 5, ..kept });

        // Assert
        assert_eq!(fair(&hot), 5);
        assert_eq!(
            at_once.step,
            Step::Hold,
            "a moment's want takes nothing from an instance whose callers wait"
        );
        assert_eq!(later.step, Step::GiveBack);
        assert_eq!(at_part.step, Step::Hold, "at its part it keeps what it has");
        assert!(at_part.want, "its callers still wait and none is free");
    }

    #[test]
    fn while_another_keeps_wanting_an_instance_borrows_only_up_to_its_part() {
        let mut p = Policy::default();
        let d = p.decide(
            Instant::now(),
            Seen {
                free: 10,
                others_active: 1,
                others_wanting: 1,
                others_wanting_long: 1,
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

    #[test]
    fn another_instance_counts_as_wanting_for_a_while_only_once_it_has_held_its_mark_that_long() {
        // Arrange
        let mut w = Wanting::default();
        let t = Instant::now();
        let one: BTreeSet<u64> = [7].into();
        let none = BTreeSet::new();

        // Act
        let first = w.note(t, &one);
        let held = w.note(t + CONTEST, &one);
        w.note(t + CONTEST + TICK, &none);
        let again = w.note(t + CONTEST + TICK * 2, &one);

        // Assert
        assert_eq!((first, held), (0, 1));
        assert_eq!(again, 0, "a break in the mark starts the time again");
    }

    #[test]
    fn an_instance_above_the_part_rounded_down_gives_one_back_to_one_that_kept_wanting_with_less() {
        // Arrange: a pool of 4 over 3 instances; this one holds 2 (⌈4/3⌉), and one that
        // has kept wanting holds none.
        let mut p = Policy::default();
        let starved = Seen {
            free: 0,
            lease_slots: 4,
            others_active: 2,
            others_wanting: 2,
            others_wanting_long: 2,
            fewest_wanting_long: Some(0),
            leased: 2,
            waiting: 30,
            spare: 0,
        };

        // Act
        let d = p.decide(Instant::now(), starved);
        let once_it_has_one = p.decide(
            Instant::now(),
            Seen {
                fewest_wanting_long: Some(1),
                leased: 1,
                ..starved
            },
        );

        // Assert
        assert_eq!((fair(&starved), owed(&starved)), (2, 1));
        assert_eq!(d.step, Step::GiveBack);
        assert_eq!(
            once_it_has_one.step,
            Step::Hold,
            "at ⌊4/3⌋ = 1 it keeps the one"
        );
    }

    #[test]
    fn while_one_that_kept_wanting_holds_less_than_the_part_rounded_down_nobody_borrows_past_it() {
        let mut p = Policy::default();
        let d = p.decide(
            Instant::now(),
            Seen {
                free: 1,
                lease_slots: 4,
                others_active: 2,
                others_wanting: 1,
                others_wanting_long: 1,
                fewest_wanting_long: Some(0),
                leased: 1,
                waiting: 30,
                ..seen()
            },
        );
        assert_eq!(d.step, Step::Hold, "the free lease is the starved one's");
    }

    #[test]
    fn after_giving_a_lease_back_an_instance_does_not_take_it_again_while_another_wants() {
        // Arrange: an instance that gave one back at rule 4; at its next tick the slot
        // is free and its callers still wait.
        let mut p = Policy::default();
        let t = Instant::now();
        let above = Seen {
            free: 0,
            lease_slots: 10,
            others_active: 1,
            others_wanting: 1,
            others_wanting_long: 1,
            fewest_wanting_long: Some(4),
            leased: 6,
            waiting: 30,
            spare: 0,
        };
        assert_eq!(p.decide(t, above).step, Step::GiveBack);
        let freed = Seen {
            free: 1,
            leased: 5,
            ..above
        };

        // Act
        let cooling = p.decide(t + TICK, freed);
        let nobody_wants = p.decide(
            t + TICK * 2,
            Seen {
                others_wanting: 0,
                others_wanting_long: 0,
                fewest_wanting_long: None,
                ..freed
            },
        );
        let cooled = p.decide(t + COOL_DOWN + TICK, freed);

        // Assert
        assert_eq!(cooling.step, Step::Hold);
        assert!(cooling.want, "its callers wait: it says so");
        assert_eq!(
            nobody_wants.step,
            Step::Borrow(1),
            "the lease is nobody else's"
        );
        assert_eq!(
            cooled.step,
            Step::Hold,
            "at its part (5 of 10) it keeps to it"
        );
    }

    #[test]
    fn a_lease_given_back_in_vain_makes_the_next_give_back_wait_longer() {
        // Arrange: it gives one back at rule 4 and takes it again once the other stops
        // wanting (nobody took it).
        let mut p = Policy::default();
        let t = Instant::now();
        let above = Seen {
            free: 0,
            lease_slots: 4,
            others_active: 1,
            others_wanting: 1,
            others_wanting_long: 1,
            fewest_wanting_long: Some(0),
            leased: 4,
            waiting: 30,
            spare: 0,
        };
        let quiet = Seen {
            free: 1,
            others_active: 0,
            others_wanting: 0,
            others_wanting_long: 0,
            fewest_wanting_long: None,
            leased: 3,
            ..above
        };
        assert_eq!(p.decide(t, above).step, Step::GiveBack);
        assert_eq!(p.decide(t + TICK, quiet).step, Step::Borrow(1));

        // Act: the other keeps wanting again, for a moment and then for longer.
        let later = t + Duration::from_secs(2);
        let at_once = p.decide(later, above);
        let patient = p.decide(later + CONTEST, above);

        // Assert
        assert_eq!(at_once.step, Step::Hold, "patience: {CONTEST:?} more");
        assert_eq!(patient.step, Step::GiveBack);
    }

    #[test]
    fn want_marks_are_forgotten_after_a_gap_in_the_looks() {
        let mut w = Wanting::default();
        let t = Instant::now();
        let one: BTreeSet<u64> = [7].into();
        w.note(t, &one);
        assert_eq!(w.note(t + CONTEST, &one), 1);
        assert_eq!(w.note(t + CONTEST + STALE * 2, &one), 0);
    }

    /// Instances sharing one pool, ticking in turn every 100 ms: each has a floor of
    /// units, and its callers want `demand(instance, tick)` units at each tick. A lease
    /// given back is free at once.
    struct Sim {
        free: u32,
        slots: u32,
        floor: u32,
        members: Vec<Member>,
    }

    struct Member {
        policy: Policy,
        wanting: Wanting,
        leased: u32,
        want: bool,
    }

    impl Sim {
        fn new(instances: usize, slots: u32, floor: u32) -> Sim {
            Sim {
                free: slots,
                slots,
                floor,
                members: (0..instances)
                    .map(|_| Member {
                        policy: Policy::default(),
                        wanting: Wanting::default(),
                        leased: 0,
                        want: false,
                    })
                    .collect(),
            }
        }

        /// Runs `ticks` ticks; returns each instance's leases after each tick, and
        /// the leases given back at each tick.
        fn run(
            &mut self,
            ticks: u32,
            demand: impl Fn(usize, u32) -> u32,
        ) -> (Vec<Vec<u32>>, Vec<u32>) {
            let t0 = Instant::now();
            let mut held = Vec::new();
            let mut given = Vec::new();
            for tick in 0..ticks {
                let now = t0 + TICK * tick;
                let mut gave = 0;
                for i in 0..self.members.len() {
                    let others = || self.members.iter().enumerate().filter(|(j, _)| *j != i);
                    let wanting: BTreeSet<u64> = others()
                        .filter(|(_, m)| m.want)
                        .map(|(j, _)| j as u64)
                        .collect();
                    let others_active =
                        others().filter(|(_, m)| m.want || m.leased > 0).count() as u32;
                    let wanting_held: Vec<(u64, u32)> = others()
                        .filter(|(_, m)| m.want)
                        .map(|(j, m)| (j as u64, m.leased))
                        .collect();
                    let w = &mut self.members[i].wanting;
                    let others_wanting_long = w.note(now, &wanting);
                    let fewest_wanting_long = wanting_held
                        .iter()
                        .filter(|&&(j, _)| w.long(j, now))
                        .map(|&(_, l)| l)
                        .min();
                    let m = &mut self.members[i];
                    let usable = self.floor + m.leased;
                    let need = demand(i, tick);
                    let seen = Seen {
                        free: self.free,
                        lease_slots: self.slots,
                        others_active,
                        others_wanting: wanting.len() as u32,
                        others_wanting_long,
                        fewest_wanting_long,
                        leased: m.leased,
                        waiting: need.saturating_sub(usable),
                        spare: usable.saturating_sub(need),
                    };
                    let d = m.policy.decide(now, seen);
                    match d.step {
                        Step::Hold => {}
                        Step::Borrow(n) => {
                            let n = n.min(self.free);
                            self.free -= n;
                            m.leased += n;
                        }
                        Step::GiveBack => {
                            m.leased -= 1;
                            self.free += 1;
                            gave += 1;
                        }
                    }
                    m.want = d.want;
                }
                held.push(self.members.iter().map(|m| m.leased).collect());
                given.push(gave);
            }
            (held, given)
        }
    }

    #[test]
    fn two_instances_with_steady_equal_demand_do_not_pass_leases_back_and_forth() {
        for demand in [5, 8, 9, 12, 60] {
            // Arrange: a pool of 10, floors of 3.
            let mut sim = Sim::new(2, 10, 3);

            // Act: 10 s of the same demand on both.
            let (held, given) = sim.run(100, |_, _| demand);

            // Assert: settled within 3 s; after that no lease moves.
            let settled = &held[30];
            assert!(
                held[30..].iter().all(|h| h == settled),
                "demand {demand}: {held:?}"
            );
            assert_eq!(given[30..].iter().sum::<u32>(), 0, "demand {demand}");
            let (a, b) = (settled[0], settled[1]);
            let want = demand.saturating_sub(3);
            assert!(
                a.abs_diff(b) <= 1 || a.min(b) >= want,
                "demand {demand}: split {a} / {b}"
            );
        }
    }

    #[test]
    fn an_instance_with_one_unit_to_spare_gives_back_one_lease_and_keeps_the_others() {
        // Arrange: a pool of 10, floors of 3. Instance 0 leases 3 for a burst, then its
        // callers want 5 units (one to spare); instance 1's want far more than it can
        // get.
        let mut sim = Sim::new(2, 10, 3);
        let (_, _) = sim.run(1, |i, _| if i == 0 { 6 } else { 0 });

        // Act
        let (held, _) = sim.run(50, |i, _| if i == 0 { 5 } else { 60 });

        // Assert: the lease given back counts out of the window at once, so only the
        // one spare unit goes, and the instance is never short of one after.
        let leases: Vec<u32> = held.iter().map(|h| h[0]).collect();
        assert!(leases.iter().all(|&l| l >= 2), "{leases:?}");
        assert!(leases[30..].iter().all(|&l| l == 2), "{leases:?}");
    }

    #[test]
    fn under_skew_the_hot_instance_ends_with_the_leases_the_cold_ones_need_only_in_bursts() {
        // Arrange: a pool of 10, floors of 3; instance 0's callers want 60 units, the
        // three others' 2, and 6 at one tick in ten (not all at the same tick).
        let mut sim = Sim::new(4, 10, 3);
        let demand = |i: usize, tick: u32| match i {
            0 => 60,
            _ if (tick + 3 * i as u32).is_multiple_of(10) => 6,
            _ => 2,
        };

        // Act: the cold instances lease first (their bursts), then 10 s of skew.
        let (_, _) = sim.run(1, |i, _| if i == 0 { 0 } else { 6 });
        let (held, given) = sim.run(100, demand);

        // Assert: from 3 s on the hot instance holds nearly the whole pool, and its
        // leases do not move for the others' bursts.
        assert!(held[30..].iter().all(|h| h[0] >= 8), "{:?}", &held[30..]);
        let moves: u32 = given[30..].iter().sum();
        assert!(
            moves <= 7,
            "{moves} leases given back after the start: {held:?}"
        );
    }
}
