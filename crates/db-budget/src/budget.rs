//! The budget: N units, one per physical connection, shared by both sides.

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::blocking::park_while;
use crate::error::{DbError, TimeoutPhase};
use crate::leak::{CheckoutTicket, LeakTracker, spawn_scanner};
use crate::side::Side;
use crate::snapshot::{SideSnapshot, Snapshot};
use crate::stats::{CloseReason, GaugeGuard, SideStats};

/// How often a queued waiter asks the other side again for an idle connection.
const RESHRINK: Duration = Duration::from_millis(5);

/// A pool's promise to give units back when the other side needs them (invariant I2).
///
/// # Contract
///
/// [`Shrink::shrink_idle`] is called from whatever thread or task has just started to
/// wait for a unit, possibly with no runtime. It **must not block**: close at most one
/// idle connection now (or hand its closing to a background task) and return.
pub trait Shrink: Send + Sync + 'static {
    /// Close one idle connection, if there is one, so that its unit returns to the
    /// budget. Returns `true` if a connection was found to close.
    fn shrink_idle(&self) -> bool;
}

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
/// budget asks the other side to close an idle connection at once
/// ([`Shrink::shrink_idle`]), and the other side consults [`Budget::should_yield`]
/// whenever a connection is returned, so capacity flows to where callers wait within
/// milliseconds (invariant I2).
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
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    capacity: u32,
    semaphore: Arc<Semaphore>,
    /// One waiter per side queues on `semaphore` at a time; the rest wait here. The
    /// semaphore serves first come, first served, so a unit that one side gives up for
    /// the other must meet the other side's waiter near the head of the queue, not a
    /// hundred waiters of its own side (which would take it back and reconnect, and the
    /// two sides would trade connections on every return).
    turns: [Semaphore; 2],
    sides: [SideStats; 2],
    shrinkers: [RwLock<Vec<Weak<dyn Shrink>>>; 2],
    pub(crate) leaks: LeakTracker,
    /// `DB_SLOW_QUERY` in nanoseconds (atomic so it can be set after sharing).
    slow_query_nanos: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("capacity", &self.capacity)
            .field("available", &self.semaphore.available_permits())
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn stats(&self, side: Side) -> &SideStats {
        &self.sides[side.index()]
    }
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
        let inner = Arc::new(Inner {
            capacity,
            semaphore: Arc::new(Semaphore::new(capacity as usize)),
            turns: [Semaphore::new(1), Semaphore::new(1)],
            sides: Default::default(),
            shrinkers: Default::default(),
            leaks: LeakTracker::new(leak_threshold),
            // `DB_SLOW_QUERY`'s default (`VARIABLES`); `from_config` sets the configured one.
            slow_query_nanos: AtomicU64::new(200_000_000),
        });
        spawn_scanner(Arc::downgrade(&inner), leak_threshold);
        Budget { inner }
    }

    /// The budget of a validated [`Config`](crate::Config): `MAX_CONNECTIONS` units and
    /// `DB_LEAK_THRESHOLD`.
    pub fn from_config(config: &crate::Config) -> Budget {
        let budget = Budget::new(config.max_connections, config.leak_threshold);
        budget.set_slow_query_threshold(config.slow_query);
        budget
    }

    /// Statements slower than this are logged by [`Budget::record_query`]. Defaults to
    /// 200 ms.
    pub fn set_slow_query_threshold(&self, threshold: Duration) {
        let nanos = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
        self.inner.slow_query_nanos.store(nanos, Relaxed);
    }

    /// `MAX_CONNECTIONS`.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }

    /// Units taken right now: physical connections open or being opened.
    pub fn in_use(&self) -> u32 {
        self.inner.capacity - self.available()
    }

    /// Units free right now.
    pub fn available(&self) -> u32 {
        self.inner.semaphore.available_permits() as u32
    }

    /// Takes a unit if one is free, without waiting.
    pub fn try_acquire(&self, side: Side) -> Option<Unit> {
        match self.inner.semaphore.clone().try_acquire_owned() {
            Ok(permit) => Some(Unit::new(self.inner.clone(), side, permit)),
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
        let turn = self.inner.turns[side.index()].acquire();
        let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline.into(), turn).await else {
            return Err(self.wait_ended(deadline));
        };
        let _waiting = self.start_waiting(side);
        let acquire = self.inner.semaphore.clone().acquire_owned();
        let mut acquire = std::pin::pin!(tokio::time::timeout_at(deadline.into(), acquire));
        loop {
            tokio::select! {
                result = &mut acquire => return match result {
                    Ok(Ok(permit)) => Ok(Unit::new(self.inner.clone(), side, permit)),
                    Ok(Err(_)) => Err(WaitError::Closed),
                    Err(_) => Err(WaitError::TimedOut),
                },
                () = tokio::time::sleep(RESHRINK) => self.request_shrink(side.other()),
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
        let turn = self.inner.turns[side.index()].acquire();
        let Some(Ok(_turn)) = park_while(turn, deadline, &keep_waiting) else {
            return Err(self.wait_ended(deadline));
        };
        let _waiting = self.start_waiting(side);
        let acquire = self.inner.semaphore.clone().acquire_owned();
        // park_while looks at this every 5 ms: a good moment to ask again.
        let keep_waiting_and_ask = || {
            self.request_shrink(side.other());
            keep_waiting()
        };
        match park_while(acquire, deadline, keep_waiting_and_ask) {
            Some(Ok(permit)) => Ok(Unit::new(self.inner.clone(), side, permit)),
            Some(Err(_)) => Err(WaitError::Closed),
            None => Err(self.wait_ended(deadline)),
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
        let guard = GaugeGuard::new(&self.inner.stats(side).budget_waiting);
        // Counted first: a connection the other side returns from now on sees this waiter.
        self.request_shrink(side.other());
        guard
    }

    /// Asks `side` for an idle connection, if it can spare one: nobody on `side` waits
    /// for a connection (an idle one would only wait for a later caller), or `side`
    /// holds more than its fair half. Under load on both sides, a connection is idle for
    /// microseconds between one caller and the next; taking it then would only make
    /// that side open a new one.
    fn request_shrink(&self, side: Side) {
        let me = self.inner.stats(side);
        let can_spare = me.waiting.load(Relaxed) == 0 || self.above_fair_half(side);
        if !can_spare {
            return;
        }
        let shrinkers: Vec<Arc<dyn Shrink>> = {
            let list = self.inner.shrinkers[side.index()]
                .read()
                .unwrap_or_else(|e| e.into_inner());
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for s in shrinkers {
            if s.shrink_idle() {
                return;
            }
        }
    }

    /// Registers a pool of `side` to be asked for idle connections when the other side
    /// waits. The budget keeps only a weak reference.
    pub fn register_shrinker(&self, side: Side, shrinker: Weak<dyn Shrink>) {
        let mut list = self.inner.shrinkers[side.index()]
            .write()
            .unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(shrinker);
    }

    /// Whether a connection of `side` that is being returned should be closed instead
    /// of pooled, so that its unit goes to the other side.
    ///
    /// Yes when the other side has a caller waiting for a unit and `side` holds more than
    /// its fair half of the budget (`held > ⌈capacity / 2⌉`, so that an odd budget
    /// settles instead of swapping a connection back and forth on every return). Idle
    /// connections are handed over by [`Shrink`] instead, which the waiting side asks
    /// for when it starts waiting and every few milliseconds after.
    pub fn should_yield(&self, side: Side) -> bool {
        let other = self.inner.stats(side.other());
        if other.budget_waiting.load(Relaxed) == 0 {
            return false;
        }
        self.above_fair_half(side)
    }

    /// `held > ⌈capacity / 2⌉`; with a budget of one unit, holding it is already more
    /// than a fair half (the sides must take turns).
    fn above_fair_half(&self, side: Side) -> bool {
        let held = self.inner.stats(side).held.load(Relaxed);
        let cap = self.inner.capacity;
        if cap == 1 {
            held == 1
        } else {
            held * 2 > cap + 1
        }
    }

    /// Closes the budget: every waiter, and every later acquire, fails with
    /// [`WaitError::Closed`]. Units already held stay valid until dropped.
    pub fn close(&self) {
        self.inner.semaphore.close();
        for turn in &self.inner.turns {
            turn.close();
        }
    }

    /// `true` after [`Budget::close`].
    pub fn is_closed(&self) -> bool {
        self.inner.semaphore.is_closed()
    }

    /// Reads the current state; see [`Snapshot`] for how consistent it is.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            capacity: self.inner.capacity,
            in_use: self.in_use(),
            async_side: SideSnapshot::read(self.inner.stats(Side::Async)),
            sync: SideSnapshot::read(self.inner.stats(Side::Sync)),
        }
    }

    // ---- for pool implementations -------------------------------------------------

    /// Starts a checkout on `side` taken at `site`: counts it as active and watches it
    /// for leaks until the ticket is dropped.
    pub fn checkout(&self, side: Side, site: &'static Location<'static>) -> CheckoutTicket {
        CheckoutTicket::new(self.inner.clone(), side, site)
    }

    /// Counts a caller of `side` as waiting for a connection until the guard is dropped.
    pub fn waiting(&self, side: Side) -> GaugeGuard<'_> {
        GaugeGuard::new(&self.inner.stats(side).waiting)
    }

    /// Adjusts `side`'s idle gauge by `delta` (a pool calls this as connections enter
    /// and leave its idle list).
    pub fn add_idle(&self, side: Side, delta: i32) {
        let idle = &self.inner.stats(side).idle;
        if delta >= 0 {
            idle.fetch_add(delta as u32, Relaxed);
        } else {
            idle.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }

    /// Records that a connection of `side` was opened.
    pub fn record_opened(&self, side: Side) {
        self.inner.stats(side).opened.fetch_add(1, Relaxed);
    }

    /// Records that a connection of `side` was closed, and why.
    pub fn record_closed(&self, side: Side, reason: CloseReason) {
        self.inner.stats(side).count_closed(reason);
    }

    /// Records how long a caller of `side` waited for a connection.
    pub fn record_acquire(&self, side: Side, waited: Duration) {
        self.inner.stats(side).acquire.record(waited);
    }

    /// Records a statement's duration; one slower than `DB_SLOW_QUERY` is logged with
    /// its SQL text (never parameter values), duration and the call site.
    pub fn record_query(&self, side: Side, sql: &str, took: Duration, site: &Location<'_>) {
        let stats = self.inner.stats(side);
        stats.queries.record(took);
        let threshold = Duration::from_nanos(self.inner.slow_query_nanos.load(Relaxed));
        if took >= threshold {
            stats.slow_queries.fetch_add(1, Relaxed);
            tracing::warn!(
                side = %side,
                took = %crate::HumanDuration(took),
                call_site = %site,
                sql = %sql,
                "slow query (DB_SLOW_QUERY is {})",
                crate::HumanDuration(threshold),
            );
        }
    }

    /// Counts a pool timeout and builds its error, with the budget's state now (I4).
    pub fn timeout_error(&self, side: Side, phase: TimeoutPhase, started: Instant) -> DbError {
        self.inner.stats(side).timeouts.fetch_add(1, Relaxed);
        DbError::PoolTimeout {
            side,
            phase,
            waited: started.elapsed(),
            snapshot: Box::new(self.snapshot()),
        }
    }
}

/// One unit of the budget: the right to one physical connection.
///
/// Owned by the connection it pays for and dropped after the socket is closed (declare
/// it as the connection struct's **last** field). Dropping it gives the unit back.
#[must_use = "a unit is given back as soon as it is dropped"]
pub struct Unit {
    inner: Arc<Inner>,
    side: Side,
    _permit: OwnedSemaphorePermit,
}

impl Unit {
    fn new(inner: Arc<Inner>, side: Side, permit: OwnedSemaphorePermit) -> Unit {
        inner.stats(side).held.fetch_add(1, Relaxed);
        Unit {
            inner,
            side,
            _permit: permit,
        }
    }

    /// The side holding this unit.
    pub fn side(&self) -> Side {
        self.side
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        // `held` falls before the permit returns (fields drop after this), so `held`
        // never over-counts a unit that is already free.
        self.inner.stats(self.side).held.fetch_sub(1, Relaxed);
    }
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit").field("side", &self.side).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};

    fn budget(n: u32) -> Budget {
        Budget::new(n, Duration::from_secs(30))
    }

    #[test]
    fn units_are_counted_per_side_and_come_back_on_drop() {
        let b = budget(3);
        let a = b.try_acquire(Side::Async).unwrap();
        let s1 = b.try_acquire(Side::Sync).unwrap();
        let s2 = b.try_acquire(Side::Sync).unwrap();
        assert!(b.try_acquire(Side::Async).is_none());
        let snap = b.snapshot();
        assert_eq!(
            (snap.in_use, snap.async_side.held, snap.sync.held),
            (3, 1, 2)
        );
        drop((a, s1, s2));
        let snap = b.snapshot();
        assert_eq!(
            (snap.in_use, snap.async_side.held, snap.sync.held),
            (0, 0, 0)
        );
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
        assert_eq!(b.inner.stats(Side::Async).budget_waiting.load(Relaxed), 0);
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
            assert_eq!(b.inner.stats(Side::Sync).budget_waiting.load(Relaxed), 1);
            needed.store(false, Relaxed);
            assert_eq!(waiter.join().unwrap().unwrap_err(), WaitError::CalledOff);
        });
        assert_eq!(b.inner.stats(Side::Sync).budget_waiting.load(Relaxed), 0);
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
        assert_eq!(b.inner.stats(Side::Async).budget_waiting.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_unit_given_up_goes_to_the_waiting_other_side_before_more_waiters_of_its_own() {
        let b = budget(1);
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
        let _sync_caller_waits = b.waiting(Side::Sync);
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
        let async_waiting: &AtomicU32 = &b.inner.stats(Side::Async).budget_waiting;
        async_waiting.fetch_add(1, Relaxed);
        assert!(b.should_yield(Side::Sync), "6 of 8 is above the fair half");
        units.truncate(5);
        assert!(b.should_yield(Side::Sync), "5 of 8 is above the fair half");
        units.truncate(4);
        assert!(!b.should_yield(Side::Sync), "4 of 8 is the fair half");
        assert!(!b.should_yield(Side::Async), "the sync side does not wait");
    }
}
