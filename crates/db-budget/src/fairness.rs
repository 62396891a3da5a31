//! Which side gives a connection up, and when (invariant I2).
//!
//! Two moments hand capacity to the side that waits: a waiter asks the other side for an
//! idle connection ([`Shared::request_shrink`], through [`Shrink`](crate::Shrink)), and a
//! pool asks before it pools a returned one ([`Shared::should_yield`]). Both give up
//! only what the other side can spare, so that under load on both sides the budget
//! settles at about half each instead of trading connections on every return.

use std::sync::atomic::Ordering::Relaxed;

use crate::shared::Shared;
use crate::side::Side;

impl Shared {
    /// Asks `side` for an idle connection, if it can spare one: nobody on `side` waits
    /// for a connection (an idle one would only wait for a later caller), or `side`
    /// holds more than its fair half. Under load on both sides, a connection is idle for
    /// microseconds between one caller and the next; taking it then would only make
    /// that side open a new one.
    pub(crate) fn request_shrink(&self, side: Side) {
        let can_spare = self.stats(side).waiting.load(Relaxed) == 0 || self.above_fair_half(side);
        if can_spare {
            self.shrinkers.shrink_one(side);
        }
    }

    /// See [`Budget::should_yield`](crate::Budget::should_yield).
    pub(crate) fn should_yield(&self, side: Side) -> bool {
        let other = self.stats(side.other());
        if other.budget_waiting.load(Relaxed) == 0 {
            return false;
        }
        self.above_fair_half(side)
    }

    /// `held > ⌈capacity / 2⌉`; with a budget of one unit, holding it is already more
    /// than a fair half (the sides must take turns).
    fn above_fair_half(&self, side: Side) -> bool {
        let held = self.stats(side).held.load(Relaxed);
        let cap = self.capacity;
        if cap == 1 {
            held == 1
        } else {
            held * 2 > cap + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
    use std::sync::{Arc, Weak};
    use std::time::{Duration, Instant};

    use crate::{Budget, Shrink, Side, Unit};

    fn budget(n: u32) -> Budget {
        Budget::new(n, Duration::from_secs(30))
    }

    struct CountingShrinker(AtomicUsize);
    impl Shrink for CountingShrinker {
        fn shrink_idle(&self) -> bool {
            self.0.fetch_add(1, Relaxed);
            true
        }
    }

    #[tokio::test]
    async fn a_waiter_asks_the_other_side_to_shrink_only_when_it_can_spare() {
        let b = budget(4);
        let shrinker = Arc::new(CountingShrinker(AtomicUsize::new(0)));
        let weak: Weak<dyn Shrink> = Arc::downgrade(&(shrinker.clone() as Arc<dyn Shrink>));
        b.register_shrinker(Side::Sync, weak);
        let _sync_unit = b.try_acquire(Side::Sync).unwrap();
        let _async_units: Vec<Unit> = (0..3)
            .map(|_| b.try_acquire(Side::Async).unwrap())
            .collect();
        let wait = |ms| b.acquire(Side::Async, Instant::now() + Duration::from_millis(ms));

        // Nobody on the sync side waits: its idle connection can go, and is asked for on
        // starting to wait and again while waiting.
        let _ = wait(30).await;
        let asked = shrinker.0.load(Relaxed);
        assert!(asked >= 2, "asked on starting to wait, and again ({asked})");

        // A sync caller waits and the sync side holds no more than its fair half: a
        // connection idle between two of its callers is not taken.
        let sync = b.recorder(Side::Sync);
        let _sync_caller_waits = sync.waiting();
        let _ = wait(30).await;
        assert_eq!(shrinker.0.load(Relaxed), asked);
    }

    #[test]
    fn should_yield_only_when_the_other_side_waits_and_this_side_holds_too_much() {
        let b = budget(8);
        let mut units: Vec<Unit> = (0..6).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        assert!(
            !b.should_yield(Side::Sync),
            "nobody waits on the async side"
        );
        let async_waiting: &AtomicU32 = &b.shared.stats(Side::Async).budget_waiting;
        async_waiting.fetch_add(1, Relaxed);
        assert!(b.should_yield(Side::Sync), "6 of 8 is above the fair half");
        units.truncate(5);
        assert!(b.should_yield(Side::Sync), "5 of 8 is above the fair half");
        units.truncate(4);
        assert!(!b.should_yield(Side::Sync), "4 of 8 is the fair half");
        assert!(!b.should_yield(Side::Async), "the sync side does not wait");
    }
}
