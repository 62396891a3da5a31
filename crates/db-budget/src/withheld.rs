//! Units withheld from the pools: the part of a budget that only a lease from the fleet
//! lets this process use (`db-fleet`).
//!
//! # Why
//!
//! A fleet of server instances shares one budget of physical connections. Each
//! instance has a floor of its own and leases more while its callers wait. The budget
//! is built with the most it could ever hold (its floor plus the whole lease pool), and
//! everything above the floor starts **withheld**: those permits are taken out of the
//! budget's semaphore, so no pool can use them. A lease granted puts one back
//! ([`Budget::grant`]); a lease given up takes one free permit out again
//! ([`Budget::withhold`]). Only a free permit can be taken: a unit in use stays with its
//! connection until the connection is closed, so whoever gives a lease up asks the pools
//! to close an idle connection ([`Budget::close_one_idle`]) and tries again.
//!
//! Units in use cannot be taken, and under load a returned connection is reused at
//! once, so a unit that must leave use while callers keep the pools busy is **owed**
//! ([`Budget::owe`]): from then on every returned connection is closed instead of
//! pooled, and the first units to come free are withheld as they are given back, before
//! any waiter sees them ([`Unit`]'s drop). [`Budget::reclaim`] takes free units for the
//! debt at once and waits for the rest.
//!
//! [`Unit`]: crate::Unit
//!
//! The shares (`allocation/`) split what is not withheld.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use crate::budget::Budget;
use crate::shared::Shared;
use crate::side::Side;

impl Budget {
    /// Takes up to `n` free units out of use; returns how many it took. Never waits and
    /// never takes a unit in use.
    pub fn withhold(&self, n: u32) -> u32 {
        let shared = &self.shared;
        let taken = shared.semaphore.forget_permits(n as usize) as u32;
        shared.withheld.fetch_add(taken, SeqCst);
        shared.follow_usable();
        taken
    }

    /// Gives `n` withheld units back to the pools.
    ///
    /// # Panics
    ///
    /// If fewer than `n` units are withheld.
    pub fn grant(&self, n: u32) {
        let shared = &self.shared;
        let before = shared
            .withheld
            .fetch_update(SeqCst, SeqCst, |w| w.checked_sub(n))
            .unwrap_or_else(|w| panic!("granting {n} units with {w} withheld"));
        debug_assert!(before >= n);
        shared.follow_usable();
        shared.semaphore.add_permits(n as usize);
    }

    /// Owes `n` more units: they leave use as they come free ([`Budget::reclaim`]), and
    /// until then every returned connection is closed instead of pooled.
    pub fn owe(&self, n: u32) {
        self.shared.owed.fetch_add(n, SeqCst);
    }

    /// Units owed now.
    pub fn owed(&self) -> u32 {
        self.shared.owed.load(SeqCst)
    }

    /// Pays the debt ([`Budget::owe`]) with free units at once, asks the pools to close
    /// idle connections, and waits until `deadline` for the units in use to come back
    /// (each is withheld as it is given back). Returns the units still owed.
    ///
    /// Blocks the thread: call it where that is allowed (a fleet's control thread).
    pub fn reclaim(&self, deadline: Instant) -> u32 {
        let shared = &self.shared;
        loop {
            shared.pay_owed_from_free();
            let owed = shared.owed.load(SeqCst);
            if owed == 0 || Instant::now() >= deadline {
                return owed;
            }
            self.close_one_idle();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Units withheld now (see the module docs) for a fleet or the server view; 0
    /// otherwise. Those between a capacity set at run time and the limit
    /// ([`Budget::set_capacity`]) are not counted here: see [`Budget::capacity_target`].
    pub fn withheld(&self) -> u32 {
        let shared = &self.shared;
        shared.withheld.load(SeqCst).saturating_sub(shared.parked())
    }

    /// Units this process may use now: the capacity less what is withheld.
    pub fn usable(&self) -> u32 {
        self.shared.usable()
    }

    /// Callers waiting for a connection now, both sides (in a pool or in the budget's
    /// queue).
    pub fn waiting(&self) -> u32 {
        Side::ALL
            .into_iter()
            .map(|side| {
                let d = self.shared.demand_of(side);
                d.waiting
            })
            .sum()
    }

    /// Idle connections in the pools now, both sides.
    pub fn idle(&self) -> u32 {
        Side::ALL
            .into_iter()
            .map(|side| self.shared.stats(side).idle.load(SeqCst))
            .sum()
    }

    /// Asks the async side, then the blocking side, to close one idle connection (its
    /// unit comes free once the socket is closed). `true` if one was asked to close.
    pub fn close_one_idle(&self) -> bool {
        Side::ALL
            .into_iter()
            .any(|side| self.shared.shrinkers.shrink_one(side))
    }
}

impl Shared {
    /// Pays the debt with free units, one at a time, so that a unit given back meanwhile
    /// pays it only once; stops at the first that is not free. Never waits.
    pub(crate) fn pay_owed_from_free(&self) {
        while self.owed.load(SeqCst) > 0 {
            if !self.pay_one_owed() {
                break;
            }
            if self.semaphore.forget_permits(1) == 0 {
                // None free: the debt stands.
                self.owed.fetch_add(1, SeqCst);
                self.withheld.fetch_sub(1, SeqCst);
                self.follow_usable();
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Budget, Side};

    #[test]
    fn withheld_units_are_not_usable_until_granted_and_a_unit_in_use_is_never_withheld() {
        let b = Budget::new(4, Duration::from_secs(30));
        assert_eq!(b.withhold(3), 3);
        assert_eq!((b.withheld(), b.usable(), b.in_use()), (3, 1, 0));
        let one = b.try_acquire(Side::Async).expect("the floor's unit");
        assert!(b.try_acquire(Side::Sync).is_none(), "the rest is withheld");
        assert_eq!(b.withhold(1), 0, "the unit in use stays with its holder");
        b.grant(2);
        let two = [b.try_acquire(Side::Sync), b.try_acquire(Side::Sync)];
        assert!(two.iter().all(Option::is_some));
        assert!(b.try_acquire(Side::Sync).is_none());
        let snap = b.snapshot();
        assert_eq!((snap.capacity, snap.in_use, snap.withheld), (3, 3, 1));
        drop(two);
        assert_eq!(b.withhold(5), 2, "only free units");
        assert_eq!((b.usable(), b.in_use()), (1, 1));
        drop(one);
    }

    #[test]
    #[should_panic(expected = "granting 2 units with 1 withheld")]
    fn granting_more_than_is_withheld_panics() {
        let b = Budget::new(4, Duration::from_secs(30));
        b.withhold(1);
        b.grant(2);
    }

    fn modules(b: &Budget) -> (crate::Bulkhead, crate::Bulkhead) {
        let spec = |name: &str, floor, cap| crate::BulkheadSpec {
            name: name.into(),
            floor,
            cap,
        };
        b.set_bulkheads(&[spec("retention", 2, 6), spec("legacy", 0, 6)]);
        (
            b.bulkhead("retention").unwrap(),
            b.bulkhead("legacy").unwrap(),
        )
    }

    fn soon() -> std::time::Instant {
        std::time::Instant::now() + Duration::from_millis(30)
    }

    #[test]
    fn a_withheld_unit_comes_out_of_the_shared_part_so_that_the_floors_stay_whole() {
        // Arrange: a budget of 6; retention's floor is 2; one unit withheld (the server
        // view's connection).
        let b = Budget::new(6, Duration::from_secs(30));
        let (retention, legacy) = modules(&b);
        assert_eq!(b.withhold(1), 1);

        // Act: legacy takes every shared place it can.
        let runaway: Vec<_> = (0..3)
            .map(|_| legacy.admit_blocking(soon()).unwrap())
            .collect();
        let fourth = legacy.admit_blocking(soon());

        // Assert: 6 − 1 withheld − 2 of floors = 3 shared; retention's floor and its
        // units are still there.
        assert!(
            fourth.is_err(),
            "the shared part shrank with the withheld unit"
        );
        let units: Vec<_> = (0..3).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        let floor: Vec<_> = (0..2)
            .map(|_| retention.admit_blocking(soon()).unwrap())
            .collect();
        let floor_units: Vec<_> = (0..2).map(|_| b.try_acquire(Side::Async)).collect();
        assert!(
            floor_units.iter().all(Option::is_some),
            "retention's floor has its units"
        );
        drop((runaway, units, floor, floor_units));
        b.grant(1);
        let grown: Vec<_> = (0..4).map(|_| legacy.admit_blocking(soon())).collect();
        assert!(
            grown.iter().all(Result::is_ok),
            "granted back, the shared part is 4 again"
        );
    }

    #[test]
    fn shared_places_held_when_a_unit_is_withheld_leave_use_as_they_are_given_back() {
        // Arrange: legacy holds all 4 shared places of a budget of 6 (retention's floor 2).
        let b = Budget::new(6, Duration::from_secs(30));
        let (_retention, legacy) = modules(&b);
        let mut held: Vec<_> = (0..4)
            .map(|_| legacy.admit_blocking(soon()).unwrap())
            .collect();

        // Act: a unit is withheld while they are held; then one place is given back.
        assert_eq!(b.withhold(1), 1);
        held.pop();

        // Assert: that place paid the debt; the next one given back is usable again.
        assert!(
            legacy.admit_blocking(soon()).is_err(),
            "3 shared places now"
        );
        held.pop();
        assert!(legacy.admit_blocking(soon()).is_ok());
    }
}
