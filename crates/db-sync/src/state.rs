//! What the manager, its connections and the pool handle share: settings, the budget,
//! the pool's own gauges, demand, and the outcome of the last connect attempt.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use db_budget::{Budget, PoolSettings, Recorder, ServerFlavor, Side, StatementLimits};

use crate::error::ConnectFailure;

/// State shared by one pool's manager, connections and handles.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) budget: Budget,
    /// This side's figures in the budget.
    pub(crate) recorder: Recorder,
    /// The pool's timings (each one's meaning is on its setter).
    pub(crate) settings: PoolSettings,
    /// The socket timeout while a statement runs (see `connection.rs`).
    pub(crate) io_timeout: Duration,
    /// The server's dialect, read by the first connect (`manager.rs`): one
    /// `DATABASE_URL`, one dialect.
    flavor: OnceLock<ServerFlavor>,
    /// The database the pool's connections work in (`DATABASE_URL`'s): a returned
    /// connection elsewhere is closed.
    pub(crate) database: String,
    closed: AtomicBool,
    /// A returning thread kills lingering sessions (`lingering.rs`): one at a time.
    pub(crate) reaping: AtomicBool,
    /// Callers inside `SyncPool::get`'s slow path: a connect with nobody waiting for it
    /// is not started.
    demand: AtomicU32,
    /// Connect attempts holding a unit (handshaking, or retrying a busy server).
    connecting: AtomicU32,
    /// r2d2 connect jobs running (waiting for a unit or connecting).
    in_flight: AtomicU32,
    /// Set when a returned connection was closed instead of pooled; see
    /// [`State::take_wakeup`].
    wakeup: AtomicBool,
    /// Open connections of this pool (each holds a unit).
    live: AtomicU32,
    /// Of those, the ones in r2d2's idle list.
    idle: AtomicU32,
    /// The last connect attempt's failure, `None` after a success.
    last_connect: Mutex<Option<(Instant, ConnectFailure)>>,
}

impl State {
    pub(crate) fn new(
        budget: Budget,
        settings: PoolSettings,
        io_timeout: Duration,
        database: String,
    ) -> Arc<State> {
        Arc::new(State {
            database,
            recorder: budget.recorder(Side::Sync),
            budget,
            settings,
            io_timeout,
            flavor: OnceLock::new(),
            closed: AtomicBool::new(false),
            reaping: AtomicBool::new(false),
            demand: AtomicU32::new(0),
            connecting: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            wakeup: AtomicBool::new(false),
            live: AtomicU32::new(0),
            idle: AtomicU32::new(0),
            last_connect: Mutex::new(None),
        })
    }

    /// The dialect, once a connect has read it.
    pub(crate) fn flavor(&self) -> Option<ServerFlavor> {
        self.flavor.get().copied()
    }

    /// Notes the dialect a new connection's server speaks; the first one counts.
    pub(crate) fn saw_flavor(&self, flavor: ServerFlavor) {
        let _ = self.flavor.set(flavor);
    }

    /// What this pool's statements run under: the dialect (MariaDB until a connect
    /// said otherwise), the session limit and the backstop's margin.
    pub(crate) fn statement_limits(&self) -> StatementLimits {
        let flavor = self.flavor.get().copied().unwrap_or(ServerFlavor::MariaDb);
        self.settings.statement_limits(flavor)
    }

    /// The statement that gives a session this pool's limit, `None` without one.
    pub(crate) fn session_limit_statement(&self) -> Option<String> {
        let limits = self.statement_limits();
        (!limits.session.is_zero()).then(|| limits.flavor.session_statement(limits.session))
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    /// `true` once this pool or the whole budget was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed) || self.budget.is_closed()
    }

    /// Counts a caller as waiting for this pool until the guard is dropped.
    pub(crate) fn demand(&self) -> CountGuard<'_> {
        CountGuard::new(&self.demand)
    }

    /// Counts a connect attempt that holds a unit until the guard is dropped.
    pub(crate) fn connecting(&self) -> CountGuard<'_> {
        CountGuard::new(&self.connecting)
    }

    /// Counts an r2d2 connect job until the guard is dropped.
    pub(crate) fn in_flight(&self) -> CountGuard<'_> {
        CountGuard::new(&self.in_flight)
    }

    /// A returned connection was closed instead of pooled, which r2d2 tells no waiter.
    pub(crate) fn note_closed_on_return(&self) {
        self.wakeup.store(true, Relaxed);
    }

    /// `true` (once) if a connection was closed on return since the last call while
    /// more callers wait than connects are under way: one of them may be asleep in
    /// r2d2 although the pool has room now.
    pub(crate) fn take_wakeup(&self) -> bool {
        self.wakeup.swap(false, Relaxed) && self.demand.load(Relaxed) > self.in_flight.load(Relaxed)
    }

    /// `true` while a connect attempt holds a unit: a caller timing out now spent its
    /// time on connecting, not only on waiting.
    pub(crate) fn is_connecting(&self) -> bool {
        self.connecting.load(Relaxed) > 0
    }

    pub(crate) fn has_demand(&self) -> bool {
        self.waiters() > 0
    }

    /// Callers inside `SyncPool::get`'s slow path.
    pub(crate) fn waiters(&self) -> u32 {
        self.demand.load(Relaxed)
    }

    pub(crate) fn opened(&self) {
        self.live.fetch_add(1, Relaxed);
        *self.lock_last() = None;
    }

    pub(crate) fn closed_one(&self) {
        self.live.fetch_sub(1, Relaxed);
    }

    pub(crate) fn connect_failed(&self, failure: ConnectFailure) {
        self.recorder.record_connect_failed();
        *self.lock_last() = Some((Instant::now(), failure));
    }

    /// The last connect attempt's failure and when it happened, if the last attempt
    /// failed.
    pub(crate) fn last_failure(&self) -> Option<(Instant, ConnectFailure)> {
        self.lock_last().clone()
    }

    fn lock_last(&self) -> std::sync::MutexGuard<'_, Option<(Instant, ConnectFailure)>> {
        // A panic while holding it cannot leave a half-written Option.
        self.last_connect.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection entered r2d2's idle list.
    pub(crate) fn enter_idle(&self) {
        self.idle.fetch_add(1, Relaxed);
        self.recorder.add_idle(1);
    }

    /// A connection left r2d2's idle list (checked out, or closed while idle).
    pub(crate) fn leave_idle(&self) {
        self.idle.fetch_sub(1, Relaxed);
        self.recorder.add_idle(-1);
    }

    pub(crate) fn live_count(&self) -> u32 {
        self.live.load(Relaxed)
    }

    pub(crate) fn idle_count(&self) -> u32 {
        self.idle.load(Relaxed)
    }
}

/// Raises a counter until dropped (see [`State::demand`]).
#[derive(Debug)]
pub(crate) struct CountGuard<'a>(&'a AtomicU32);

impl<'a> CountGuard<'a> {
    fn new(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Relaxed);
        CountGuard(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
