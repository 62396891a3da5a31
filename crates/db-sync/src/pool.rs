//! [`SyncPool`]: an r2d2 pool set up for the shared budget (its builder is in
//! `options.rs`).

use std::panic::Location;
use std::sync::{Arc, Weak, mpsc};
use std::time::Instant;

use db_budget::{Budget, Bulkhead, CloseReason, DatabaseUrl, DbError, Shrink, Side, TimeoutPhase};
use scheduled_thread_pool::{JobHandle, ScheduledThreadPool};

use crate::connection::Managed;
use crate::error::ConnectFailure;
use crate::guard::{SyncConn, wake_a_waiter};
use crate::manager::{BudgetedManager, WarnOnError};
use crate::state::State;

/// The blocking pool: r2d2 + r2d2_mysql, every connection owning one unit of a shared
/// [`Budget`] from before its handshake until after its socket is closed.
///
/// A cheap handle (`Arc`); clones share the pool. Use it from plain threads,
/// `tokio::task::spawn_blocking`, or multi-thread runtime workers; on the thread that
/// drives a current-thread runtime [`SyncPool::get`] refuses with
/// [`DbError::BlockingNotAllowed`].
///
/// Either side may use the whole budget, so r2d2's `max_size` is the budget's capacity;
/// the budget, not r2d2, bounds the connections. Idle connections are given back to
/// the async side the moment it waits ([`Shrink`]), and a connection returned while it
/// waits is closed instead of pooled ([`Budget::should_yield`]).
#[derive(Clone)]
pub struct SyncPool {
    shared: Arc<Shared>,
    /// The module bulkhead this handle admits its callers through, if any.
    bulkhead: Option<Bulkhead>,
}

struct Shared {
    pool: r2d2::Pool<BudgetedManager>,
    state: Arc<State>,
    /// Connections [`Shrink`] takes out of the idle list, to be closed on the closer
    /// thread; `None` if that thread could not be started (they are closed in place).
    closer: Option<mpsc::Sender<Job>>,
    /// The scheduled housekeeping pass (`housekeeping.rs`), cancelled when the pool goes.
    housekeeper: JobHandle,
}

/// How many connections a [`SyncPool`] has open, as its own counters read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolState {
    /// Open connections (each holds a budget unit), checked out or idle.
    pub connections: u32,
    /// Of those, the idle ones.
    pub idle: u32,
}

impl SyncPool {
    /// Checks out a connection, waiting at most the pool timeout (`DB_POOL_TIMEOUT`).
    ///
    /// An idle connection is taken if there is one (pinged first only when it sat idle
    /// longer than the validation bypass); otherwise r2d2 opens one after taking a
    /// budget unit, or a connection comes back, whichever is first. While the budget is
    /// suspended ([`Budget::suspend`]) the caller first waits in front of its gate:
    /// nothing is handed out then, not even an idle connection.
    ///
    /// # Errors
    ///
    /// - [`DbError::PoolTimeout`] after the pool timeout, with the budget's state; its
    ///   phase is `Connect` when the last connect attempt failed (the cause is logged)
    ///   or a connect is still under way, else `Wait`;
    /// - [`DbError::Connect`] when the server refused the connection for a reason
    ///   waiting will not fix (server down, access denied, unknown database);
    /// - [`DbError::Shed`] at once when `DB_MAX_WAITERS` callers of this side already
    ///   wait;
    /// - [`DbError::Suspended`] when the budget stays suspended until the pool timeout;
    /// - [`DbError::Closed`] after [`SyncPool::close`], or when the budget is closed;
    /// - [`DbError::BlockingNotAllowed`] on the thread of a current-thread runtime.
    #[track_caller]
    pub fn get(&self) -> Result<SyncConn, DbError> {
        let site = Location::caller();
        db_budget::block_safely(|| self.get_blocking(site))?
    }

    fn get_blocking(&self, site: &'static Location<'static>) -> Result<SyncConn, DbError> {
        let started = Instant::now();
        let state = &self.shared.state;
        let deadline = started + state.settings.pool_timeout;
        loop {
            state
                .budget
                .wait_while_suspended_blocking(Side::Sync, started, deadline, || {
                    !state.is_closed()
                })?;
            let conn = self.get_admitted(site, started, deadline)?;
            if !state.budget.is_suspended() {
                return Ok(conn);
            }
            // Suspended while this caller waited: nothing is handed out while suspended.
            // The connection goes back, and this caller waits at the gate.
            drop(conn);
        }
    }

    /// Admission by the caller's bulkhead, if any, then a connection.
    fn get_admitted(
        &self,
        site: &'static Location<'static>,
        started: Instant,
        deadline: Instant,
    ) -> Result<SyncConn, DbError> {
        let bulkhead = self
            .bulkhead
            .clone()
            .or_else(|| self.shared.state.budget.unassigned());
        let admission = match bulkhead {
            Some(b) => Some(
                b.admit_blocking_while(deadline, || !self.shared.state.is_closed())
                    .map_err(|e| self.shared.state.recorder.admission_error(e, started))?,
            ),
            None => None,
        };
        let mut conn = self.get_within(site, started, deadline)?;
        conn.admission = admission;
        Ok(conn)
    }

    fn get_within(
        &self,
        site: &'static Location<'static>,
        started: Instant,
        deadline: Instant,
    ) -> Result<SyncConn, DbError> {
        let state = &self.shared.state;
        // Fast path: an idle connection, without registering as a waiter. Each stale
        // one costs a ping; past the deadline, `wait` reports the timeout.
        while Instant::now() < deadline
            && let Some(pooled) = self.shared.pool.try_get()
        {
            if let Some(conn) = self.adopt(pooled, started, deadline, site)? {
                return Ok(self.acquired(conn, started));
            }
        }
        let result = self.wait(started, deadline, site);
        if matches!(result, Err(DbError::Closed)) && state.waiters() > 0 {
            // r2d2 woke only this caller; pass the news on to the next one.
            wake_a_waiter(&self.shared.pool);
        }
        result
    }

    /// The slow path: counted as waiting, until a connection or the deadline.
    fn wait(
        &self,
        started: Instant,
        deadline: Instant,
        site: &'static Location<'static>,
    ) -> Result<SyncConn, DbError> {
        let state = &self.shared.state;
        // Beyond DB_MAX_WAITERS: refused before joining the queue.
        let _waiting = state.recorder.try_waiting()?;
        let _demand = state.demand();
        loop {
            if state.is_closed() {
                return Err(DbError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timeout(started));
            }
            // r2d2 starts a connect on its worker threads if it has room, then waits
            // for whichever comes first: that connection or a returned one.
            match self.shared.pool.get_timeout(deadline - now) {
                Ok(pooled) => {
                    if let Some(conn) = self.adopt(pooled, started, deadline, site)? {
                        return Ok(self.acquired(conn, started));
                    }
                }
                Err(_) if state.is_closed() => return Err(DbError::Closed),
                // r2d2's error is a bare "timed out"; ours shows the budget.
                Err(_) => return Err(self.timeout(started)),
            }
        }
    }

    /// Turns what r2d2 handed out into a checked-out connection: `Ok(None)` means try
    /// again (a stale connection failed its ping, or a connect placeholder that is no
    /// answer for this caller).
    fn adopt(
        &self,
        mut pooled: r2d2::PooledConnection<BudgetedManager>,
        started: Instant,
        deadline: Instant,
        site: &'static Location<'static>,
    ) -> Result<Option<SyncConn>, DbError> {
        let state = &self.shared.state;
        let p = match &mut *pooled {
            Managed::Live(p) => p,
            Managed::Failed { failure, at } => {
                let (failure, at) = (failure.clone(), *at);
                drop(pooled); // has_broken: placeholders are always destroyed
                return match failure {
                    // An older failure is no answer for this caller: the server may be back.
                    _ if at < started => Ok(None),
                    ConnectFailure::NoDemand
                    | ConnectFailure::BudgetTimedOut
                    | ConnectFailure::ServerBusy(_) => Ok(None),
                    ConnectFailure::Closed => Err(DbError::Closed),
                    ConnectFailure::Failed(e) => Err(DbError::Connect { cause: Box::new(e) }),
                };
            }
        };
        let idle_for = p.leave_idle();
        if state.is_closed() {
            p.doom(CloseReason::PoolClosed);
            return Err(DbError::Closed);
        }
        if p.is_evicted() {
            p.doom(CloseReason::Evicted);
            return Ok(None);
        }
        if p.has_retired() {
            // Past its jittered lifetime, which r2d2's reaper does not know.
            p.doom(CloseReason::MaxLifetime);
            return Ok(None);
        }
        // The ping waits for a frozen server at most the connect timeout, and never
        // past this caller's deadline (a ping that overruns it fails: the connection
        // is closed, and the caller times out).
        let limit = state
            .settings
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        if idle_for > state.settings.validation_bypass
            && let Err(e) = p.bounded(limit, |c| c.ping())
        {
            tracing::debug!(error = %e, "db-sync: idle connection failed its ping; closing it");
            p.doom_lost();
            return Ok(None);
        }
        if p.is_evicted() {
            // Evicted while the ping was under way: the old session is not handed out.
            p.doom(CloseReason::Evicted);
            return Ok(None);
        }
        let ticket = state.recorder.checkout(site);
        let pool = self.shared.pool.clone();
        Ok(Some(SyncConn::new(pooled, ticket, pool, site)))
    }

    fn acquired(&self, conn: SyncConn, started: Instant) -> SyncConn {
        self.shared.state.recorder.record_acquire(started.elapsed());
        conn
    }

    fn timeout(&self, started: Instant) -> DbError {
        let state = &self.shared.state;
        // Only a failure during this caller's wait says the wait was spent connecting.
        let last_failure = state.last_failure().filter(|(at, _)| *at >= started);
        let phase = if last_failure.is_some() || state.is_connecting() {
            TimeoutPhase::Connect
        } else {
            TimeoutPhase::Wait
        };
        if let Some((_, failure)) = last_failure {
            // `DbError::PoolTimeout` has no room for a cause: log it here.
            tracing::warn!(
                last_connect_error = %failure,
                "db-sync: timed out; the last connect attempt had failed",
            );
        }
        state.recorder.timeout_error(phase, started)
    }

    /// The budget this pool draws from.
    pub fn budget(&self) -> &Budget {
        &self.shared.state.budget
    }

    /// How many connections this pool holds now.
    pub fn state(&self) -> PoolState {
        PoolState {
            connections: self.shared.state.live_count(),
            idle: self.shared.state.idle_count(),
        }
    }

    /// Closes the pool: later [`SyncPool::get`]s fail with [`DbError::Closed`], idle
    /// connections are closed now, checked-out ones when they are returned. Callers
    /// already waiting get `Closed` as soon as r2d2 wakes them (a connect it starts for
    /// them, or a returned connection); a connect that is itself waiting for a budget
    /// unit cannot be interrupted, so its callers get `Closed` when it ends, at their
    /// deadline at the latest. The budget itself stays open (the async side keeps
    /// working).
    pub fn close(&self) {
        self.shared.state.close();
        self.shared.drain_idle(CloseReason::PoolClosed);
        for _ in 0..self.shared.state.waiters() {
            wake_a_waiter(&self.shared.pool);
        }
    }

    /// `true` after [`SyncPool::close`], or once the budget itself is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.state.is_closed()
    }
}

impl Shared {
    /// Closes idle connections (never opens one; `try_get` only pops the idle list).
    /// Stops after the first live one when `one` is set; hands the closes to the closer
    /// thread when `elsewhere` is set. Returns how many were (or will be) closed.
    fn close_idle(&self, reason: CloseReason, one: bool, elsewhere: bool) -> u32 {
        let mut closed = 0;
        while let Some(mut pooled) = self.pool.try_get() {
            let live = match &mut *pooled {
                Managed::Live(p) => {
                    p.leave_idle();
                    p.doom(reason);
                    closed += 1;
                    true
                }
                Managed::Failed { .. } => false,
            };
            // Dropping it returns it to r2d2, whose `has_broken` sees it doomed and
            // destroys it: the socket closes, then the unit returns. A placeholder has
            // no socket: dropping it here does no I/O.
            match &self.closer {
                Some(closer) if live && elsewhere => {
                    // If the closer is gone (it only ends with us), the job drops here, and the
                    // connection with it.
                    drop(closer.send(Job::Close(Box::new(pooled))));
                }
                _ => drop(pooled),
            }
            if one && closed > 0 {
                break;
            }
        }
        closed
    }

    fn drain_idle(&self, reason: CloseReason) {
        self.close_idle(reason, false, false);
    }
}

impl Shared {
    /// On the closer thread: takes an idle connection, if one is idle, ends the
    /// lingering sessions over it, and puts it back unused.
    fn reap_with_idle(&self) {
        if self.state.budget.sessions_to_end() == 0 {
            return;
        }
        let Some(mut pooled) = self.pool.try_get() else {
            return;
        };
        if let Managed::Live(p) = &mut *pooled {
            p.leave_idle();
            crate::lingering::reap(p);
            p.put_back_unused();
        }
        drop(pooled);
    }
}

impl Shrink for Shared {
    /// Hands a reap to the closer thread: the caller may be inside r2d2's return path
    /// (a cut-off connection closing), where taking a connection could deadlock.
    fn reap_lingering(self: Arc<Self>) {
        if let Some(closer) = &self.closer {
            let _ = closer.send(Job::Reap(Arc::downgrade(&self)));
        }
    }

    /// The async side waits for a unit: take one idle connection out of the pool now
    /// and have the closer thread close it. Does no I/O on the caller's thread (which
    /// may be a runtime worker): closing sends `COM_QUIT`, which a frozen server would
    /// make wait. The unit returns once that socket is closed (I1), and the waiter's
    /// budget queue hands it over then.
    fn shrink_idle(&self) -> bool {
        self.close_idle(CloseReason::Yielded, true, true) > 0
    }

    /// Takes the idle connections out of r2d2's idle list (at most as many as are idle),
    /// has the closer thread close the evicted ones, and puts the others back unused.
    /// No I/O on the caller's thread.
    fn evict_idle(&self) -> u32 {
        let mut keep = Vec::new();
        let mut evicted = 0;
        for _ in 0..self.state.idle_count() {
            let Some(mut pooled) = self.pool.try_get() else {
                break;
            };
            match &mut *pooled {
                Managed::Live(p) if p.is_evicted() => {
                    p.leave_idle();
                    p.doom(CloseReason::Evicted);
                    evicted += 1;
                    match &self.closer {
                        Some(closer) => {
                            // If the closer is gone (it only ends with us), the job drops here, and the
                            // connection with it.
                            drop(closer.send(Job::Close(Box::new(pooled))));
                        }
                        None => drop(pooled),
                    }
                }
                Managed::Live(p) => {
                    p.leave_idle();
                    p.put_back_unused();
                    keep.push(pooled);
                }
                // A failed connect's placeholder: destroyed when dropped (`has_broken`), as
                // `close_idle` does.
                Managed::Failed { .. } => keep.push(pooled),
            }
        }
        // r2d2's idle list is a stack: the first taken out goes back last.
        keep.into_iter().rev().for_each(drop);
        evicted
    }
}

/// Work for the closer thread.
enum Job {
    /// Close a connection [`Shrink`] took out of the idle list.
    Close(Box<r2d2::PooledConnection<BudgetedManager>>),
    /// End lingering sessions over an idle connection (`lingering.rs`).
    Reap(Weak<Shared>),
}

/// Starts the thread that closes the connections [`Shrink`] takes back (and ends
/// lingering sessions over idle ones). It ends when
/// the pool is dropped (the sender with it), after closing what was still queued.
fn spawn_closer() -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("db-sync-closer".to_owned())
        .spawn(move || {
            for job in rx {
                match job {
                    Job::Close(pooled) => drop(*pooled),
                    Job::Reap(shared) => {
                        if let Some(shared) = shared.upgrade() {
                            shared.reap_with_idle();
                        }
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "db-sync: cannot start the closer thread; idle connections given back to the async side are closed on its thread");
            None
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Connections still checked out are closed when they come back, and idle ones
        // count as closed by the pool when r2d2 drops them.
        self.state.close();
        self.housekeeper.cancel();
    }
}

impl std::fmt::Debug for SyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPool")
            .field("state", &self.state())
            .field("closed", &self.is_closed())
            .field("budget", self.budget())
            .finish_non_exhaustive()
    }
}

impl SyncPool {
    /// The pool for `state`, connecting to `url`. Starts r2d2's worker threads (one per
    /// unit the budget serves with at first, since a connect may wait on the budget,
    /// plus one for r2d2's reaper and one for our housekeeping pass) but opens no
    /// connection. A budget built to grow at run time (`Budget::set_capacity`) serves
    /// with less than its limit: connects beyond the threads then queue for one.
    pub(crate) fn new(url: &DatabaseUrl, state: Arc<State>) -> SyncPool {
        // The most the budget may hold: r2d2 must not bound the side below it.
        let capacity = state.budget.capacity();
        let serving = state.budget.capacity_target();
        let settings = state.settings;
        let threads = Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(serving as usize + 2)
                .thread_name_pattern("db-sync-{}")
                .build(),
        );
        let pool = r2d2::Pool::builder()
            // Either side may use the whole budget; the budget bounds connections.
            .max_size(capacity)
            // r2d2's default (None) would open max_size connections eagerly.
            .min_idle(Some(0))
            // The pool pings only connections idle longer than the validation bypass.
            .test_on_check_out(false)
            .connection_timeout(settings.pool_timeout)
            .idle_timeout(Some(settings.idle_timeout))
            .max_lifetime(Some(settings.max_lifetime))
            .thread_pool(threads.clone())
            .error_handler(Box::new(WarnOnError))
            .build_unchecked(BudgetedManager::new(url, state.clone()));
        let shared = Arc::new_cyclic(|me: &Weak<Shared>| {
            let me = me.clone();
            let every = crate::housekeeping::period(&settings);
            let housekeeper = threads.execute_at_fixed_rate(every, every, move || {
                if let Some(shared) = me.upgrade() {
                    crate::housekeeping::pass(&shared.pool, &shared.state);
                }
            });
            Shared {
                pool,
                state,
                closer: spawn_closer(),
                housekeeper,
            }
        });
        let shrinker: Weak<Shared> = Arc::downgrade(&shared);
        shared
            .state
            .budget
            .register_shrinker(Side::Sync, shrinker as Weak<dyn Shrink>);
        SyncPool {
            shared,
            bulkhead: None,
        }
    }

    /// This pool as module `name` uses it: every checkout is first admitted by the
    /// module's bulkhead (`DB_BULKHEADS`: its floor and cap; the shared part of the
    /// budget for a module without one), within the same pool timeout. Same
    /// connections, same budget.
    pub fn for_module(&self, name: &str) -> SyncPool {
        SyncPool {
            shared: self.shared.clone(),
            bulkhead: self.shared.state.budget.bulkhead(name),
        }
    }
}
