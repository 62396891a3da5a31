//! The pool: idle connections, each owning its budget unit.

use std::collections::VecDeque;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use db_budget::{
    Budget, CloseReason, DbError, Recorder, Shrink, Side, TimeoutPhase, Unit, WaitError,
};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{Connection, Executor, MySqlConnection};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::conn::{Conn, ConnState};
use crate::error::is_connection_limit;
use crate::guard::AsyncConn;
use crate::options::Settings;
use crate::slot::{Farewell, Slot};

/// The async side's connection pool. Cheap to clone (an `Arc`).
///
/// See the [crate docs](crate) for how it keeps the budget exact.
#[derive(Clone)]
pub struct AsyncPool {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) budget: Budget,
    /// This side's figures in the budget.
    pub(crate) recorder: Recorder,
    /// Holds the password: never printed (see the `Debug` impl).
    connect_options: MySqlConnectOptions,
    /// Where the pool connects, password redacted, for `Debug`.
    shown_url: String,
    pub(crate) settings: Settings,
    /// Idle connections and waiting callers, under one short lock.
    queues: Mutex<Queues>,
    closed: AtomicBool,
    runtime: Handle,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPool")
            .field("url", &self.shown_url)
            .field("settings", &self.settings)
            .field("idle", &self.lock().idle.len())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Idle {
    slot: Slot,
    since: Instant,
}

/// A returned connection goes to the caller that has waited longest, never to one that
/// arrived later: while anybody waits, newcomers queue too (no barging). Without this, a
/// task that returns a connection and asks again at once takes it back every time, and a
/// waiter can starve until its pool timeout although connections keep coming back
/// (measured: one 30 s timeout in 1.35 M calls under the load test).
#[derive(Debug, Default)]
struct Queues {
    /// Idle connections: newest at the back (reused first, warm), oldest at the front
    /// (given away or reaped first). Non-empty only while no live caller waits.
    idle: VecDeque<Idle>,
    /// Callers waiting for a connection, oldest first.
    waiters: VecDeque<oneshot::Sender<Idle>>,
}

impl Queues {
    /// Drops waiters at the front that gave up (their acquire was cancelled or served).
    fn prune(&mut self) {
        while self.waiters.front().is_some_and(|w| w.is_closed()) {
            self.waiters.pop_front();
        }
    }

    /// Hands idle connections to waiting callers, oldest caller first. Returns how many
    /// left the idle list.
    fn dispatch(&mut self) -> usize {
        let mut moved = 0;
        while !self.idle.is_empty() {
            self.prune();
            let Some(waiter) = self.waiters.pop_front() else {
                break;
            };
            let idle = self.idle.pop_back().expect("checked non-empty");
            match waiter.send(idle) {
                Ok(()) => moved += 1,
                Err(idle) => self.idle.push_back(idle),
            }
        }
        moved
    }
}

impl std::fmt::Debug for AsyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

impl AsyncPool {
    pub(crate) fn new(
        budget: Budget,
        connect_options: MySqlConnectOptions,
        shown_url: String,
        settings: Settings,
        runtime: Handle,
    ) -> AsyncPool {
        let shared = Arc::new(Shared {
            recorder: budget.recorder(Side::Async),
            budget,
            connect_options,
            shown_url,
            settings,
            queues: Mutex::new(Queues::default()),
            closed: AtomicBool::new(false),
            runtime,
        });
        let weak: Weak<dyn Shrink> = Arc::downgrade(&shared) as Weak<Shared>;
        shared.budget.register_shrinker(Side::Async, weak);
        shared.runtime.spawn(reap(Arc::downgrade(&shared)));
        AsyncPool { shared }
    }

    /// Checks out a connection: an idle one if there is one (pinged first only if it sat
    /// idle longer than the validation bypass window), else a new one once the budget
    /// has a unit for it. Waits at most the pool timeout (`DB_POOL_TIMEOUT`).
    ///
    /// The call site is recorded for leak reports.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled acquire leaves the queue, and a connection it was
    /// opening is closed and its unit returned.
    ///
    /// # Errors
    ///
    /// [`DbError::PoolTimeout`] (with the budget's state) when time runs out,
    /// [`DbError::Connect`] when the server refuses, [`DbError::Closed`] after
    /// [`AsyncPool::close`].
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<AsyncConn, DbError>> + Send + 'static {
        let site = Location::caller();
        self.shared.clone().acquire(site)
    }

    /// The budget this pool draws from.
    pub fn budget(&self) -> &Budget {
        &self.shared.budget
    }

    /// Idle connections right now.
    pub fn idle_count(&self) -> usize {
        self.shared.lock().idle.len()
    }

    /// Closes the pool: waiters and later acquires fail with [`DbError::Closed`], idle
    /// connections are closed now (each bounded in time), and connections in use are
    /// closed when returned. Other pools on the same budget are unaffected.
    pub async fn close(&self) {
        let drained: Vec<Idle> = {
            let mut q = self.shared.lock();
            // Under the lock, so that `push_idle` (which checks it under the lock)
            // cannot pool a connection after the drain below.
            self.shared.closed.store(true, Ordering::SeqCst);
            // Dropping the senders wakes every waiter with "closed".
            q.waiters.clear();
            let drained: Vec<Idle> = q.idle.drain(..).collect();
            self.shared.recorder.add_idle(-(drained.len() as i32));
            drained
        };
        let limit = self.shared.settings.return_timeout;
        let closes = drained.into_iter().map(|idle| {
            self.shared.recorder.record_closed(CloseReason::PoolClosed);
            idle.slot.close(Farewell::Graceful, limit)
        });
        futures_util::future::join_all(closes).await;
    }

    /// `true` after [`AsyncPool::close`].
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Nothing panics while holding this lock; recover rather than poison the pool.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn acquire(
        self: Arc<Self>,
        site: &'static Location<'static>,
    ) -> Result<AsyncConn, DbError> {
        let started = Instant::now();
        let deadline = started + self.settings.pool_timeout;
        if let Some(slot) = self.take_idle(started, deadline).await? {
            return Ok(self.checkout(slot, started, site));
        }
        let _waiting = self.recorder.waiting();
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(DbError::Closed);
            }
            // Queue up; if a connection is idle and nobody is ahead, it comes at once.
            let (tx, mut handed) = oneshot::channel::<Idle>();
            {
                let mut q = self.lock();
                q.waiters.push_back(tx);
                let moved = q.dispatch();
                // The idle gauge changes with the idle list, under its lock: a reader
                // never sees it below zero.
                self.recorder.add_idle(-(moved as i32));
            }
            let got = tokio::select! {
                biased;
                idle = &mut handed => match idle {
                    Ok(idle) => Got::Connection(idle),
                    Err(_) => return Err(DbError::Closed),
                },
                unit = self.budget.acquire(Side::Async, deadline) => Got::Unit(unit),
            };
            let idle = match got {
                Got::Connection(idle) => idle,
                Got::Unit(unit) => {
                    // Leave the queue; a connection handed over meanwhile is preferred to
                    // opening a new one (the unit then goes straight back).
                    handed.close();
                    match handed.try_recv() {
                        Ok(idle) => idle,
                        Err(_) => {
                            let unit = match unit {
                                Ok(unit) => unit,
                                Err(WaitError::TimedOut | WaitError::CalledOff) => {
                                    return Err(self
                                        .recorder
                                        .timeout_error(TimeoutPhase::Wait, started));
                                }
                                Err(WaitError::Closed) => return Err(DbError::Closed),
                            };
                            let slot = self.connect(unit, started, deadline).await?;
                            return Ok(self.checkout(slot, started, site));
                        }
                    }
                }
            };
            if let Some(slot) = self.fit(idle, started, deadline).await? {
                return Ok(self.checkout(slot, started, site));
            }
        }
    }

    /// Pops idle connections (newest first) until one is fit for use; takes none while
    /// callers are queued (they come first).
    async fn take_idle(
        &self,
        started: Instant,
        deadline: Instant,
    ) -> Result<Option<Slot>, DbError> {
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(DbError::Closed);
            }
            let idle = {
                let mut q = self.lock();
                q.prune();
                if !q.waiters.is_empty() {
                    return Ok(None);
                }
                let idle = q.idle.pop_back();
                if idle.is_some() {
                    self.recorder.add_idle(-1);
                }
                idle
            };
            let Some(idle) = idle else {
                return Ok(None);
            };
            if let Some(slot) = self.fit(idle, started, deadline).await? {
                return Ok(Some(slot));
            }
        }
    }

    /// Checks a connection that sat idle: too old → closed; idle longer than the
    /// validation bypass → pinged first. `None`: it was closed, try another.
    async fn fit(
        &self,
        Idle { mut slot, since }: Idle,
        started: Instant,
        deadline: Instant,
    ) -> Result<Option<Slot>, DbError> {
        if slot.opened_at.elapsed() >= self.settings.max_lifetime {
            self.discard(slot, CloseReason::MaxLifetime, Farewell::Graceful);
            return Ok(None);
        }
        if since.elapsed() <= self.settings.validation_bypass {
            return Ok(Some(slot));
        }
        let now = Instant::now();
        if now >= deadline {
            self.push_idle(slot);
            return Err(self.recorder.timeout_error(TimeoutPhase::Validate, started));
        }
        let limit = self.settings.connect_timeout.min(deadline - now);
        match tokio::time::timeout(limit, slot.conn.ping()).await {
            Ok(Ok(())) => Ok(Some(slot)),
            _ => {
                self.discard(slot, CloseReason::Broken, Farewell::Hard);
                Ok(None)
            }
        }
    }

    /// Opens a connection paid for by `unit`. "Too many connections" is retried while
    /// holding the unit, until the deadline (the server may still count sockets this
    /// process has closed; DESIGN §4), and is then a pool timeout in phase `Connect`.
    async fn connect(
        &self,
        unit: Unit,
        started: Instant,
        deadline: Instant,
    ) -> Result<Slot, DbError> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let now = Instant::now();
            let attempt_deadline = deadline.min(now + self.settings.connect_timeout);
            let attempt = MySqlConnection::connect_with(&self.connect_options);
            match tokio::time::timeout_at(attempt_deadline.into(), attempt).await {
                Ok(Ok(conn)) => {
                    self.recorder.record_opened();
                    return Ok(Slot {
                        conn,
                        opened_at: Instant::now(),
                        unit,
                    });
                }
                Ok(Err(e)) if is_connection_limit(&e) => {
                    if Instant::now() + backoff < deadline {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(100));
                        continue;
                    }
                    // Refused until the deadline: a pool timeout (counted, with the
                    // budget's state), as on the blocking side; the cause is logged here.
                    tracing::warn!(
                        last_connect_error = %e,
                        "db-async: timed out; the server kept refusing connections",
                    );
                    return Err(self.recorder.timeout_error(TimeoutPhase::Connect, started));
                }
                Ok(Err(e)) => return Err(DbError::Connect { cause: e.into() }),
                Err(_) => {
                    return Err(self.recorder.timeout_error(TimeoutPhase::Connect, started));
                }
            }
        }
    }

    fn checkout(
        self: &Arc<Self>,
        slot: Slot,
        started: Instant,
        site: &'static Location<'static>,
    ) -> AsyncConn {
        self.recorder.record_acquire(started.elapsed());
        AsyncConn {
            conn: Conn {
                slot: Some(slot),
                recorder: self.recorder.clone(),
                state: ConnState::default(),
            },
            ticket: self.recorder.checkout(site),
            shared: self.clone(),
        }
    }

    /// A connection comes back from a caller. Decides, without I/O on this thread,
    /// whether it is pooled, settled first (rollback/validation in a background task),
    /// or closed.
    pub(crate) fn release(self: &Arc<Self>, slot: Slot, state: ConnState) {
        let farewell = if self.closed.load(Ordering::SeqCst) {
            Some((CloseReason::PoolClosed, Farewell::Graceful))
        } else if state.busy || std::thread::panicking() {
            Some((CloseReason::Cancelled, Farewell::Hard))
        } else if state.broken {
            Some((CloseReason::Broken, Farewell::Hard))
        } else if state.session_dirty {
            // `ROLLBACK` first is not needed: closing ends any transaction too.
            Some((CloseReason::SessionState, Farewell::Graceful))
        } else if slot.opened_at.elapsed() >= self.settings.max_lifetime {
            Some((CloseReason::MaxLifetime, Farewell::Graceful))
        } else if self.budget.should_yield(Side::Async) {
            Some((CloseReason::Yielded, Farewell::Graceful))
        } else {
            None
        };
        if let Some((reason, how)) = farewell {
            self.discard(slot, reason, how);
        } else if state.tx_open || slot.conn.should_flush() {
            self.settle(slot, state);
        } else {
            self.push_idle(slot);
        }
    }

    /// Rolls back a transaction left open (or flushes unsent bytes), bounded by the
    /// return timeout, then pools the connection; closes it on failure.
    fn settle(self: &Arc<Self>, mut slot: Slot, state: ConnState) {
        let shared = self.clone();
        self.spawn(async move {
            let limit = shared.settings.return_timeout;
            let work = async {
                if state.tx_open {
                    slot.conn.execute("ROLLBACK").await.map(|_| ())
                } else {
                    slot.conn.flush().await
                }
            };
            match tokio::time::timeout(limit, work).await {
                Ok(Ok(())) => shared.push_idle(slot),
                _ => shared.discard(slot, CloseReason::Broken, Farewell::Hard),
            }
        });
    }

    /// Pools a connection: to the caller that has waited longest, or onto the idle list.
    fn push_idle(&self, slot: Slot) {
        let mut idle = Idle {
            slot,
            since: Instant::now(),
        };
        let mut q = self.lock();
        // Checked under the lock `close` sets it under: no idle connection is left
        // in a closed pool.
        if self.closed.load(Ordering::SeqCst) {
            drop(q);
            self.discard(idle.slot, CloseReason::PoolClosed, Farewell::Graceful);
            return;
        }
        while let Some(waiter) = q.waiters.pop_front() {
            match waiter.send(idle) {
                Ok(()) => return,
                // That caller gave up meanwhile: the next one.
                Err(back) => idle = back,
            }
        }
        q.idle.push_back(idle);
        self.recorder.add_idle(1);
    }

    /// Closes a connection in the background; its unit returns once the socket is
    /// closed. If no runtime can run the task, the slot is dropped, which closes the
    /// socket before the unit returns all the same.
    fn discard(&self, slot: Slot, reason: CloseReason, how: Farewell) {
        self.recorder.record_closed(reason);
        let limit = self.settings.return_timeout;
        self.spawn(slot.close(how, limit));
    }

    /// Runs pool work (closes, settles) on the pool's own runtime, never on the
    /// caller's: a caller may sit on another runtime that nobody drives once it is
    /// done (a test's, a `block_on`'s), and the work would never run. If the pool's
    /// runtime has shut down, the future is dropped at once, which still closes the
    /// socket before the unit returns (field order in `Slot`).
    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtime.spawn(fut));
    }
}

impl Shrink for Shared {
    /// Gives the oldest idle connection back to the budget: the other side waits.
    fn shrink_idle(&self) -> bool {
        let idle = {
            let mut q = self.lock();
            let idle = q.idle.pop_front();
            if idle.is_some() {
                self.recorder.add_idle(-1);
            }
            idle
        };
        let Some(idle) = idle else {
            return false;
        };
        self.discard(idle.slot, CloseReason::Yielded, Farewell::Graceful);
        true
    }
}

/// Closes idle connections past `DB_IDLE_TIMEOUT` or `DB_MAX_LIFETIME`; ends when the
/// pool is dropped.
async fn reap(shared: Weak<Shared>) {
    let tick = match shared.upgrade() {
        Some(s) => {
            (s.settings.idle_timeout / 4).clamp(Duration::from_millis(25), Duration::from_secs(1))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(tick).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let expired: Vec<(Idle, CloseReason)> = {
            let mut q = shared.lock();
            let mut keep = VecDeque::with_capacity(q.idle.len());
            let mut expired = Vec::new();
            for i in q.idle.drain(..) {
                if i.slot.opened_at.elapsed() >= shared.settings.max_lifetime {
                    expired.push((i, CloseReason::MaxLifetime));
                } else if i.since.elapsed() >= shared.settings.idle_timeout {
                    expired.push((i, CloseReason::IdleTimeout));
                } else {
                    keep.push_back(i);
                }
            }
            q.idle = keep;
            shared.recorder.add_idle(-(expired.len() as i32));
            expired
        };
        for (i, reason) in expired {
            shared.discard(i.slot, reason, Farewell::Graceful);
        }
    }
}

/// How a waiting caller was served.
enum Got {
    Connection(Idle),
    Unit(Result<Unit, WaitError>),
}
