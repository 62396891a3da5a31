//! The budget: N units, one per physical connection, shared by both sides.
//!
//! This file is the handle and its queue. The rest of the budget is beside it:
//! `unit.rs` (what a connection holds), `fairness.rs` and `shrink.rs` (which side
//! gives a connection up, I2), `recorder.rs` (what the pools record), `checkout.rs` and
//! `leak.rs` (checkouts and suspected leaks), `shared.rs` (the state they share).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::TryAcquireError;

use crate::allocation::HandOver;
use crate::blocking::park_while;
use crate::bulkhead::{Bulkhead, BulkheadSpec, Bulkheads};

use crate::recorder::Recorder;
use crate::shared::Shared;
use crate::shrink::Shrink;
use crate::side::Side;
use crate::snapshot::Snapshot;
use crate::stats::GaugeGuard;
use crate::unit::Unit;

/// How often a queued waiter asks the other side again for an idle connection.
const RESHRINK: Duration = Duration::from_millis(5);

/// Why a wait for a unit ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// [`Budget::close`] was called.
    Closed,
    /// The caller's `keep_waiting` condition turned false
    /// ([`Budget::acquire_blocking_while`]).
    CalledOff,
}

/// One process-wide budget of physical database connections.
///
/// Every physical connection, open or being opened, on either side, holds one [`Unit`]
/// for its whole life; a unit is taken **before** the connection is started and given
/// back **after** its socket is closed. With `capacity` units there can therefore never
/// be more than `capacity` connections (invariant I1), whatever mix of blocking threads
/// and async tasks asks for them.
///
/// Either side may hold every unit. When a caller on one side finds none free, the
/// budget asks the other side to close an idle connection ([`Shrink::shrink_idle`]), and
/// the other side consults [`Budget::should_yield`] whenever a connection is returned.
/// What a side gives up is what it holds beyond its **share**: a quiet side's share is
/// 0, so its idle connections flow to where callers wait within milliseconds (invariant
/// I2); when both sides are busy the shares follow demand slowly, with hysteresis, so
/// that connections do not change side on every request ([`HandOver`]).
///
/// `Budget` is a cheap handle (`Arc`); clone it into both pools.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use db_budget::{Budget, Side};
///
/// let budget = Budget::new(2, Duration::from_secs(30));
/// let a = budget.try_acquire(Side::Async).unwrap();
/// let s = budget.acquire_blocking(Side::Sync, Instant::now() + Duration::from_secs(1)).unwrap();
/// assert!(budget.try_acquire(Side::Sync).is_none()); // both units taken
/// drop(a);
/// assert_eq!(budget.snapshot().in_use, 1);
/// # drop(s);
/// ```
#[derive(Clone, Debug)]
pub struct Budget {
    pub(crate) shared: Arc<Shared>,
}

impl Budget {
    /// A budget of `capacity` physical connections; checkouts held longer than
    /// `leak_threshold` are reported.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 (configuration refuses it earlier, with a message), or if
    /// this process already built its process-wide budget from the environment
    /// (`db_budget::global()` without an installation): that would be a second budget.
    pub fn new(capacity: u32, leak_threshold: Duration) -> Budget {
        // From now on the environment never builds a second, process-wide budget.
        crate::global::note_own_budget();
        Budget::unlisted(capacity, leak_threshold)
    }

    /// [`Budget::new`] without marking the process as having built its own budget
    /// (only `global()`'s environment path uses it).
    pub(crate) fn unlisted(capacity: u32, leak_threshold: Duration) -> Budget {
        assert!(capacity > 0, "a connection budget needs at least one unit");
        Budget {
            shared: Shared::new(capacity, leak_threshold),
        }
    }

    /// The budget of a validated [`Config`](crate::Config): `MAX_CONNECTIONS` units,
    /// `DB_LEAK_THRESHOLD`, `DB_SLOW_QUERY`, `DB_MAX_WAITERS` and `DB_HANDOVER`.
    pub fn from_config(config: &crate::Config) -> Budget {
        Budget::from_config_with_capacity(config, config.max_connections)
    }

    /// [`Budget::from_config`] with `capacity` units instead of `MAX_CONNECTIONS` (a
    /// fleet member's: its floor plus the lease pool, see `db-fleet`).
    ///
    /// # Panics
    ///
    /// As [`Budget::new`].
    pub fn from_config_with_capacity(config: &crate::Config, capacity: u32) -> Budget {
        let budget = Budget::new(capacity, config.leak_threshold);
        budget.set_slow_query_threshold(config.slow_query);
        budget.set_hand_over(config.hand_over);
        budget.set_max_waiters(config.max_waiters);
        if !config.bulkheads.is_empty() {
            budget.set_bulkheads(&config.bulkheads);
        }
        budget
    }

    /// Statements slower than this are logged by [`Recorder::record_query`]. Defaults
    /// to 200 ms.
    pub fn set_slow_query_threshold(&self, threshold: Duration) {
        let nanos = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
        self.shared.slow_query_nanos.store(nanos, Relaxed);
    }

    /// The recording handle of `side`, which that side's pool holds: connections opened
    /// and closed, waits, statements, the idle gauge, checkouts and timeouts.
    pub fn recorder(&self, side: Side) -> Recorder {
        Recorder::new(self.shared.clone(), side)
    }

    /// The most units this budget can hold: what it was built with (`MAX_CONNECTIONS`;
    /// for a budget that may grow at run time, the limit of the server's startup check;
    /// in a fleet, its floor plus the whole lease pool). See [`Budget::usable`] for what
    /// it may use now, and [`Budget::set_capacity`].
    pub fn capacity(&self) -> u32 {
        self.shared.capacity
    }

    /// Units taken right now: physical connections open or being opened.
    pub fn in_use(&self) -> u32 {
        self.shared.usable().saturating_sub(self.available())
    }

    /// Units free right now.
    pub fn available(&self) -> u32 {
        self.shared.available()
    }

    /// Takes a unit if one is free, without waiting.
    pub fn try_acquire(&self, side: Side) -> Option<Unit> {
        match self.shared.semaphore.clone().try_acquire_owned() {
            Ok(permit) => Some(Unit::new(self.shared.clone(), side, permit)),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => None,
        }
    }

    /// Waits for a unit until `deadline`, first asking the other side to give back an
    /// idle connection.
    ///
    /// Fairness: each side has one place in the budget's first-come-first-served queue,
    /// and its waiters take that place in turn. So when both sides wait, freed units
    /// alternate between them instead of going to whichever side has more waiters.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the queue and takes nothing.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] at the deadline, [`WaitError::Closed`] after
    /// [`Budget::close`].
    pub async fn acquire(&self, side: Side, deadline: Instant) -> Result<Unit, WaitError> {
        if let Some(unit) = self.try_acquire(side) {
            return Ok(unit);
        }
        let turn = self.shared.turns[side.index()].acquire();
        let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline.into(), turn).await else {
            return Err(self.wait_ended(deadline));
        };
        let _waiting = self.start_waiting(side);
        let semaphore = &self.shared.semaphore;
        let timed = |acquire| tokio::time::timeout_at(deadline.into(), acquire);
        let mut acquire = std::pin::pin!(timed(semaphore.clone().acquire_owned()));
        loop {
            tokio::select! {
                result = &mut acquire => match result {
                    Ok(Ok(permit)) if self.shared.may_take(side) => {
                        return Ok(Unit::new(self.shared.clone(), side, permit));
                    }
                    Ok(Ok(permit)) => {
                        // Given up for the other side's waiter: let it have the unit.
                        drop(permit);
                        tokio::task::yield_now().await;
                        acquire.set(timed(semaphore.clone().acquire_owned()));
                    }
                    Ok(Err(_)) => return Err(WaitError::Closed),
                    Err(_) => return Err(WaitError::TimedOut),
                },
                () = tokio::time::sleep(RESHRINK) => self.shared.request_shrink(side.other()),
            }
        }
    }

    /// [`Budget::acquire`] for a thread without a runtime: parks the thread in the same
    /// queue as the async waiters.
    ///
    /// Call it where blocking is allowed (see [`block_safely`](crate::block_safely)).
    ///
    /// # Errors
    ///
    /// As [`Budget::acquire`].
    pub fn acquire_blocking(&self, side: Side, deadline: Instant) -> Result<Unit, WaitError> {
        self.acquire_blocking_while(side, deadline, || true)
    }

    /// [`Budget::acquire_blocking`] for a waiter that may stop being needed: it leaves
    /// the queue with [`WaitError::CalledOff`] once `keep_waiting` returns false (checked
    /// at least every 5 ms). A pool's background connect uses this, so that a connect
    /// nobody waits for any more neither takes a unit nor counts as a waiter (which would
    /// make the other side give up connections for nothing).
    ///
    /// # Errors
    ///
    /// As [`Budget::acquire`], plus [`WaitError::CalledOff`].
    pub fn acquire_blocking_while(
        &self,
        side: Side,
        deadline: Instant,
        keep_waiting: impl Fn() -> bool,
    ) -> Result<Unit, WaitError> {
        if let Some(unit) = self.try_acquire(side) {
            return Ok(unit);
        }
        let turn = self.shared.turns[side.index()].acquire();
        let Some(Ok(_turn)) = park_while(turn, deadline, &keep_waiting) else {
            return Err(self.wait_ended(deadline));
        };
        let _waiting = self.start_waiting(side);
        // park_while looks at this every 5 ms: a good moment to ask again.
        let keep_waiting_and_ask = || {
            self.shared.request_shrink(side.other());
            keep_waiting()
        };
        loop {
            let acquire = self.shared.semaphore.clone().acquire_owned();
            match park_while(acquire, deadline, keep_waiting_and_ask) {
                Some(Ok(permit)) if self.shared.may_take(side) => {
                    return Ok(Unit::new(self.shared.clone(), side, permit));
                }
                Some(Ok(permit)) => {
                    // Given up for the other side's waiter: let it have the unit.
                    drop(permit);
                    std::thread::yield_now();
                }
                Some(Err(_)) => return Err(WaitError::Closed),
                None => return Err(self.wait_ended(deadline)),
            }
        }
    }

    /// Why a wait that got nothing ended.
    fn wait_ended(&self, deadline: Instant) -> WaitError {
        if self.is_closed() {
            WaitError::Closed
        } else if Instant::now() >= deadline {
            WaitError::TimedOut
        } else {
            WaitError::CalledOff
        }
    }

    /// Counts `side` as waiting in the budget's queue and asks the other side for a unit
    /// (and the caller asks again every [`RESHRINK`] while it waits, so an idle
    /// connection the other side leaves behind later is handed over within
    /// milliseconds too).
    fn start_waiting(&self, side: Side) -> GaugeGuard<'_> {
        let guard = GaugeGuard::new(&self.shared.stats(side).budget_waiting);
        self.shared.shares.demand_rose();
        // Counted first: a connection the other side returns from now on sees this waiter.
        self.shared.request_shrink(side.other());
        guard
    }

    /// Registers a pool of `side` to be asked for idle connections when the other side
    /// waits. The budget keeps only a weak reference.
    pub fn register_shrinker(&self, side: Side, shrinker: Weak<dyn Shrink>) {
        self.shared.shrinkers.register(side, shrinker);
    }

    /// Whether a connection of `side` that is being returned should be closed instead
    /// of pooled, so that its unit goes to the other side.
    ///
    /// Yes when the other side has a caller waiting for a unit and `side` holds more than
    /// its share ([`HandOver::Damped`]) or its fair half `⌈capacity / 2⌉`
    /// ([`HandOver::Eager`]). Idle connections are handed over by [`Shrink`] instead,
    /// which the waiting side asks for when it starts waiting and every few milliseconds
    /// after.
    pub fn should_yield(&self, side: Side) -> bool {
        self.shared.should_yield(side)
    }

    /// At most `limit` callers wait for a connection on each side, and for admission to
    /// each bulkhead; one more is refused
    /// at once with [`DbError::Shed`](crate::DbError::Shed) (load shedding: under
    /// overload a fast 503 beats a 30 s wait). `None` is no limit. Defaults to `None`
    /// (`DB_MAX_WAITERS=0`).
    pub fn set_max_waiters(&self, limit: Option<u32>) {
        // `Some(u32::MAX)` is no limit either.
        let limit = limit.unwrap_or(u32::MAX);
        self.shared.max_waiters.store(limit, Relaxed);
        if let Some(bulkheads) = self.shared.bulkheads.get() {
            bulkheads.set_max_waiters(limit);
        }
    }

    /// Divides the budget into module bulkheads (`DB_BULKHEADS`; see [`Bulkhead`]). Call
    /// it once, before any pool takes a module's handle ([`Budget::bulkhead`]).
    ///
    /// # Panics
    ///
    /// If bulkheads were already set, or the floors add up to more than the capacity ([`parse_bulkheads`] refuses that
    /// earlier, with a message).
    ///
    /// [`Bulkhead`]: crate::Bulkhead
    /// [`parse_bulkheads`]: crate::parse_bulkheads
    pub fn set_bulkheads(&self, specs: &[BulkheadSpec]) {
        let bulkheads = Bulkheads::new(self.shared.capacity, specs);
        bulkheads.set_max_waiters(self.shared.max_waiters.load(Relaxed));
        let set = self.shared.bulkheads.set(bulkheads);
        assert!(set.is_ok(), "set_bulkheads called twice");
        // Units withheld before the bulkheads were set are not theirs either.
        self.shared.follow_usable();
    }

    /// The admission handle of module `name`: its bulkhead's floor and cap, or the
    /// shared part of the budget for a module without one; `None` while no bulkheads are
    /// set (nothing to admit). Pools carry it (`AsyncPool::for_module`,
    /// `SyncPool::for_module`), so set the bulkheads before pools take module handles.
    pub fn bulkhead(&self, name: &str) -> Option<Bulkhead> {
        self.shared.bulkheads.get().map(|b| b.of(name))
    }

    /// The handle that checkouts of no particular module pass through: the shared part
    /// of the budget, once bulkheads are set (`None` before: nothing to admit). Pools use
    /// it for a handle that is not [`for_module`](Budget::bulkhead), so that every
    /// checkout counts against the floors.
    pub fn unassigned(&self) -> Option<Bulkhead> {
        self.shared.bulkheads.get().map(|b| b.of(""))
    }

    /// Chooses the policy that decides when a connection changes side. Defaults to
    /// [`HandOver::Damped`] (`DB_HANDOVER`).
    pub fn set_hand_over(&self, policy: HandOver) {
        self.shared.shares.set_policy(policy);
    }

    /// The policy set by [`Budget::set_hand_over`].
    pub fn hand_over(&self) -> HandOver {
        self.shared.shares.policy()
    }

    /// The units `side` may keep against the other side's waiters right now (its share;
    /// see [`HandOver`]). The two shares add up to the capacity, except while both
    /// sides are quiet: then both are 0.
    pub fn share(&self, side: Side) -> u32 {
        self.shared.shares.of(side)
    }

    /// Closes the budget: every waiter, and every later acquire, fails with
    /// [`WaitError::Closed`]. Units already held stay valid until dropped.
    pub fn close(&self) {
        self.shared.semaphore.close();
        if let Some(bulkheads) = self.shared.bulkheads.get() {
            bulkheads.close();
        }
        for turn in &self.shared.turns {
            turn.close();
        }
        // Callers in front of a suspended budget's gate look again and see it closed.
        self.shared.gate.wake_all();
    }

    /// `true` after [`Budget::close`].
    pub fn is_closed(&self) -> bool {
        self.shared.semaphore.is_closed()
    }

    /// Reads the current state; see [`Snapshot`] for how consistent it is.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn budget(n: u32) -> Budget {
        Budget::new(n, Duration::from_secs(30))
    }

    #[tokio::test]
    async fn an_async_waiter_gets_a_unit_freed_by_a_blocking_thread() {
        let b = budget(1);
        let held = b.acquire_blocking(Side::Sync, Instant::now()).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
        });
        let got = b
            .acquire(Side::Async, Instant::now() + Duration::from_secs(5))
            .await;
        assert_eq!(got.unwrap().side(), Side::Async);
        t.join().unwrap();
    }

    #[tokio::test]
    async fn a_waiter_times_out_and_leaves_the_queue() {
        let b = budget(1);
        let _held = b.try_acquire(Side::Sync).unwrap();
        let err = b
            .acquire(Side::Async, Instant::now() + Duration::from_millis(30))
            .await;
        assert_eq!(err.unwrap_err(), WaitError::TimedOut);
        assert_eq!(b.shared.stats(Side::Async).budget_waiting.load(Relaxed), 0);
        let err = b.acquire_blocking(Side::Sync, Instant::now() + Duration::from_millis(30));
        assert_eq!(err.unwrap_err(), WaitError::TimedOut);
    }

    #[test]
    fn a_blocking_waiter_that_is_no_longer_needed_leaves_the_queue() {
        let b = budget(1);
        let _held = b.try_acquire(Side::Async).unwrap();
        let needed = AtomicBool::new(true);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                b.acquire_blocking_while(
                    Side::Sync,
                    Instant::now() + Duration::from_secs(10),
                    || needed.load(Relaxed),
                )
            });
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(b.shared.stats(Side::Sync).budget_waiting.load(Relaxed), 1);
            needed.store(false, Relaxed);
            assert_eq!(waiter.join().unwrap().unwrap_err(), WaitError::CalledOff);
        });
        assert_eq!(b.shared.stats(Side::Sync).budget_waiting.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_takes_nothing() {
        let b = budget(1);
        let held = b.try_acquire(Side::Sync).unwrap();
        let waiter = b.acquire(Side::Async, Instant::now() + Duration::from_secs(10));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), waiter)
                .await
                .is_err()
        );
        drop(held);
        assert_eq!(b.available(), 1);
        assert_eq!(b.shared.stats(Side::Async).budget_waiting.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_unit_given_up_goes_to_the_waiting_other_side_before_more_waiters_of_its_own() {
        // The queue's own order (the damped shares add turns of their own with one unit).
        let b = budget(1);
        b.set_hand_over(HandOver::Eager);
        let held = b.try_acquire(Side::Async).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Fifty async waiters queue first, then one blocking caller.
        let mut asyncs = Vec::new();
        for _ in 0..50 {
            let b = b.clone();
            asyncs.push(tokio::spawn(async move {
                b.acquire(Side::Async, deadline).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b2 = b.clone();
        let sync = std::thread::spawn(move || b2.acquire_blocking(Side::Sync, deadline));
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Async gives its unit up: one async waiter is at the head, then the blocking one.
        drop(held);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            b.snapshot().async_side.held,
            1,
            "the head of the queue (async) got it"
        );
        // That async holder gives it up again: now the blocking caller is next.
        let first = futures_first(&mut asyncs).await;
        drop(first);
        let unit = tokio::task::spawn_blocking(move || sync.join().unwrap())
            .await
            .unwrap();
        assert_eq!(unit.unwrap().side(), Side::Sync);
        b.close();
    }

    /// Takes the one finished waiter out of `tasks`.
    async fn futures_first(
        tasks: &mut Vec<tokio::task::JoinHandle<Result<Unit, WaitError>>>,
    ) -> Unit {
        loop {
            if let Some(i) = tasks.iter().position(|t| t.is_finished()) {
                return tasks.swap_remove(i).await.unwrap().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn close_wakes_waiters_with_closed() {
        let b = budget(1);
        let _held = b.try_acquire(Side::Sync).unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            b2.acquire(Side::Async, Instant::now() + Duration::from_secs(10))
                .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        b.close();
        assert_eq!(waiter.await.unwrap().unwrap_err(), WaitError::Closed);
    }
}
