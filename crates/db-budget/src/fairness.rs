//! Which side gives a connection up, and when (invariant I2).
//!
//! Two moments hand capacity to the side that waits: a waiter asks the other side for an
//! idle connection ([`Shared::request_shrink`], through [`Shrink`](crate::Shrink)), and a
//! pool asks before it pools a returned one ([`Shared::should_yield`]). A third keeps a
//! unit that was given up from going straight back: a waiter whose side already holds
//! its share lets the other side's waiter have a freed unit first
//! ([`Shared::may_take`]). What a side "can spare" is decided by the shares
//! (`allocation/`), or by the fixed fair halves under [`HandOver::Eager`].

use std::sync::atomic::Ordering::Relaxed;

use crate::allocation::HandOver;
use crate::shared::Shared;
use crate::side::Side;

impl Shared {
    /// Asks `side` for an idle connection, if it can spare one. Under load on both
    /// sides a connection is idle for microseconds between one caller and the next;
    /// taking it then would only make that side open a new one, so `side` spares only
    /// what it holds beyond its share.
    ///
    /// Units of connections that quit are on their way (they linger until the server
    /// has ended the session, `linger.rs`, milliseconds, longer than the waiter's
    /// interval between asks): while as many linger as the other side has waiters,
    /// asking again would only close another connection for the same waiter.
    pub(crate) fn request_shrink(&self, side: Side) {
        let waiters = self.stats(side.other()).budget_waiting.load(Relaxed);
        if self.lingering.quitting() >= waiters.max(1) {
            return;
        }
        if self.can_spare(side, true) {
            self.shrinkers.shrink_one(side);
        }
    }

    /// See [`Budget::should_yield`](crate::Budget::should_yield).
    pub(crate) fn should_yield(&self, side: Side) -> bool {
        if self.owed.load(Relaxed) > 0 {
            // Units are owed back (a fleet lease given up): every return closes.
            return true;
        }
        let other = self.stats(side.other());
        if other.budget_waiting.load(Relaxed) == 0 {
            return false;
        }
        self.can_spare(side, false)
    }

    /// Whether a waiter of `side` that has just been handed a free unit keeps it. No
    /// when its side already holds its share and the other side, below its share, waits
    /// in the budget's queue too: the unit was most likely given up for that waiter, and
    /// taking it back would only make the other side close another connection. The
    /// waiter lets it go and queues again.
    pub(crate) fn may_take(&self, side: Side) -> bool {
        if self.shares.policy() == HandOver::Eager {
            return true;
        }
        let other = side.other();
        let other_waits = self.stats(other).budget_waiting.load(Relaxed) > 0;
        let below = |s: Side| self.stats(s).held.load(Relaxed) < self.shares.of(s);
        !(other_waits && !below(side) && below(other))
    }

    /// Whether `side` holds more than it may keep. `idle_asked`: the question comes from
    /// a waiter asking for an idle connection (the eager policy also spares one when
    /// nobody on `side` waits).
    fn can_spare(&self, side: Side, idle_asked: bool) -> bool {
        let held = self.stats(side).held.load(Relaxed);
        // What the budget may use now (less than its capacity while units are withheld).
        let cap = self.usable();
        match self.shares.policy() {
            // With one unit the shares take turns (`allocation/`).
            HandOver::Damped => held > self.shares.of(side),
            HandOver::Eager if cap == 1 => held == 1,
            HandOver::Eager => {
                let nobody_waits = self.stats(side).waiting.load(Relaxed) == 0;
                (idle_asked && nobody_waits) || held * 2 > cap + 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
    use std::sync::{Arc, Weak};
    use std::time::{Duration, Instant};

    use crate::{Budget, HandOver, Shrink, Side, Unit};

    fn budget(n: u32, policy: HandOver) -> Budget {
        let b = Budget::new(n, Duration::from_secs(30));
        b.set_hand_over(policy);
        b
    }

    struct CountingShrinker(AtomicUsize);
    impl Shrink for CountingShrinker {
        fn shrink_idle(&self) -> bool {
            self.0.fetch_add(1, Relaxed);
            true
        }
        fn evict_idle(&self) -> u32 {
            0
        }
    }

    fn counting_shrinker(b: &Budget, side: Side) -> Arc<CountingShrinker> {
        let shrinker = Arc::new(CountingShrinker(AtomicUsize::new(0)));
        let weak: Weak<dyn Shrink> = Arc::downgrade(&(shrinker.clone() as Arc<dyn Shrink>));
        b.register_shrinker(side, weak);
        shrinker
    }

    fn other_side_waits(b: &Budget, side: Side) -> &AtomicU32 {
        let waiting = &b.shared.stats(side).budget_waiting;
        waiting.fetch_add(1, Relaxed);
        waiting
    }

    #[test]
    fn a_side_spares_only_what_it_holds_beyond_its_share() {
        let b = budget(8, HandOver::Damped);
        b.shared.shares.pin([6, 2]);
        let shrinker = counting_shrinker(&b, Side::Sync);
        let mut units: Vec<Unit> = (0..3).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        assert!(
            !b.should_yield(Side::Sync),
            "nobody waits on the async side"
        );
        other_side_waits(&b, Side::Async);
        assert!(b.should_yield(Side::Sync), "3 held, a share of 2");
        b.shared.request_shrink(Side::Sync);
        assert_eq!(
            shrinker.0.load(Relaxed),
            1,
            "its idle connection is asked for"
        );
        units.truncate(2);
        assert!(!b.should_yield(Side::Sync), "2 held, a share of 2");
        b.shared.request_shrink(Side::Sync);
        assert_eq!(
            shrinker.0.load(Relaxed),
            1,
            "nothing beyond its share to spare"
        );
    }

    #[test]
    fn a_connection_still_closing_for_the_other_side_s_waiter_is_not_asked_for_twice() {
        // Arrange: the blocking side holds 3 for a share of 2; an async caller waits.
        let b = budget(8, HandOver::Damped);
        b.shared.shares.pin([6, 2]);
        let shrinker = counting_shrinker(&b, Side::Sync);
        let mut units: Vec<Unit> = (0..3).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        other_side_waits(&b, Side::Async);
        b.shared.request_shrink(Side::Sync);
        assert_eq!(shrinker.0.load(Relaxed), 1, "one idle connection asked for");

        // Act: the pool closes it (its unit quits; the socket is still closing) and the
        // waiter asks again, as it does every few milliseconds.
        let session = crate::linger::Session { id: 9, boot: 1 };
        units[2].quits(session);
        b.shared.request_shrink(Side::Sync);

        // Assert: given up at once, so not asked for a second connection; nor while it
        // lingers; and once it is free the side holds its share.
        assert_eq!(b.snapshot().sync_side.held, 2);
        assert_eq!(shrinker.0.load(Relaxed), 1, "asked again while one closes");
        drop(units.pop());
        assert_eq!(b.lingering(), 1);
        b.shared.request_shrink(Side::Sync);
        assert_eq!(shrinker.0.load(Relaxed), 1, "asked again while one lingers");
        assert_eq!(b.sessions_ended(session.boot, &[session.id]), 1);
        b.shared.request_shrink(Side::Sync);
        assert_eq!(shrinker.0.load(Relaxed), 1, "2 held, a share of 2");
        assert_eq!((b.in_use(), b.lingering()), (2, 0));
    }

    #[test]
    fn a_freed_unit_is_left_to_the_other_side_when_it_waits_below_its_share() {
        let b = budget(8, HandOver::Damped);
        b.shared.shares.pin([4, 4]);
        let _sync: Vec<Unit> = (0..4).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        let _async: Vec<Unit> = (0..3)
            .map(|_| b.try_acquire(Side::Async).unwrap())
            .collect();
        assert!(
            b.shared.may_take(Side::Sync),
            "the async side does not wait"
        );
        let waiting = other_side_waits(&b, Side::Async);
        assert!(
            !b.shared.may_take(Side::Sync),
            "sync holds its share, async waits below"
        );
        assert!(b.shared.may_take(Side::Async));
        waiting.fetch_sub(1, Relaxed);
        assert!(b.shared.may_take(Side::Sync));
    }

    #[tokio::test]
    async fn a_waiting_side_gets_the_unit_the_other_side_gives_up_even_from_behind_it() {
        // The sync side holds its share (1) and queued for more first; the async side
        // queues behind it. The unit the sync side gives up goes to async.
        let b = budget(2, HandOver::Damped);
        b.shared.shares.pin([1, 1]);
        let sync_unit = b.try_acquire(Side::Sync).unwrap();
        let extra = b.try_acquire(Side::Sync).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let b2 = b.clone();
        let sync_waiter = std::thread::spawn(move || b2.acquire_blocking(Side::Sync, deadline));
        while b.shared.stats(Side::Sync).budget_waiting.load(Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Counted just before it queues: give it the moment to queue.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b3 = b.clone();
        let async_waiter = tokio::spawn(async move { b3.acquire(Side::Async, deadline).await });
        while b.shared.stats(Side::Async).budget_waiting.load(Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(extra);
        let unit = async_waiter.await.unwrap().unwrap();
        assert_eq!(unit.side(), Side::Async);
        drop(sync_unit);
        let unit = sync_waiter.join().unwrap().unwrap();
        assert_eq!(unit.side(), Side::Sync);
    }

    #[tokio::test]
    async fn eager_a_waiter_asks_the_other_side_to_shrink_only_when_it_can_spare() {
        let b = budget(4, HandOver::Eager);
        let shrinker = counting_shrinker(&b, Side::Sync);
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
    fn eager_the_share_in_the_snapshot_is_the_fair_half_the_policy_keeps() {
        // Adversary: `share` is documented as the units a side may keep against the
        // other side's waiters; under the eager policy that is the fair half.
        let b = budget(8, HandOver::Eager);
        let sync = b.recorder(Side::Sync);
        let _busy = sync.checkout(std::panic::Location::caller());
        let _units: Vec<Unit> = (0..6).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        while b.snapshot().sync_side.share != 8 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        other_side_waits(&b, Side::Async);
        let yields = b.should_yield(Side::Sync);
        let share = b.snapshot().sync_side.share;
        assert!(
            !yields || share < 6,
            "the sync side gives up a connection with 6 held, yet its share reads {share}"
        );
    }

    #[test]
    fn eager_should_yield_only_when_the_other_side_waits_and_this_side_holds_too_much() {
        let b = budget(8, HandOver::Eager);
        let mut units: Vec<Unit> = (0..6).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();
        assert!(
            !b.should_yield(Side::Sync),
            "nobody waits on the async side"
        );
        other_side_waits(&b, Side::Async);
        assert!(b.should_yield(Side::Sync), "6 of 8 is above the fair half");
        units.truncate(5);
        assert!(b.should_yield(Side::Sync), "5 of 8 is above the fair half");
        units.truncate(4);
        assert!(!b.should_yield(Side::Sync), "4 of 8 is the fair half");
        assert!(!b.should_yield(Side::Async), "the sync side does not wait");
    }
}
