//! The async side's pool: a public handle ([`AsyncPool`], this file) over private state
//! ([`Shared`](shared::Shared)), split as sqlx splits its pool: the idle list and
//! waiters (`queues.rs`), checking out (`acquire.rs`), opening connections
//! (`connect.rs`), the return policy (`release.rs`) and the background reaper and
//! hand-over (`reaper.rs`).

use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use db_budget::{Budget, Bulkhead, CloseReason, DbError, Shrink, Side};
use sqlx::mysql::MySqlConnectOptions;
use tokio::runtime::Handle;

use crate::guard::AsyncConn;
use crate::options::AsyncSettings;
use crate::slot::Farewell;

mod acquire;
mod connect;
mod keepalive;
mod lingering;
mod queues;
mod reaper;
mod release;
mod shared;

use queues::{Idle, Queues};
pub(crate) use shared::Shared;

/// The async side's connection pool. Cheap to clone (an `Arc`).
///
/// See the [crate docs](crate) for how it keeps the budget exact.
#[derive(Clone)]
pub struct AsyncPool {
    pub(crate) shared: Arc<Shared>,
    /// The module bulkhead this handle admits its callers through, if any.
    bulkhead: Option<Bulkhead>,
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
        settings: AsyncSettings,
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
            closing: tokio::sync::Notify::new(),
            runtime,
            flavor: std::sync::OnceLock::new(),
            reaping: AtomicBool::new(false),
            reap_not_before: Mutex::new(std::time::Instant::now()),
            reap_pause: Mutex::new(lingering::REAP_PAUSE),
        });
        let weak: Weak<dyn Shrink> = Arc::downgrade(&shared) as Weak<Shared>;
        shared.budget.register_shrinker(Side::Async, weak);
        shared.runtime.spawn(reaper::reap(Arc::downgrade(&shared)));
        AsyncPool {
            shared,
            bulkhead: None,
        }
    }

    /// This pool as module `name` uses it: every acquire is first admitted by the
    /// module's bulkhead (`DB_BULKHEADS`: its floor and cap; the shared part of the
    /// budget for a module without one), within the same pool timeout. Same
    /// connections, same budget.
    pub fn for_module(&self, name: &str) -> AsyncPool {
        AsyncPool {
            shared: self.shared.clone(),
            bulkhead: self.shared.budget.bulkhead(name),
        }
    }

    /// Checks out a connection: an idle one if there is one (pinged first only if it sat
    /// idle longer than the validation bypass window), else a new one once the budget
    /// has a unit for it. Waits at most the pool timeout (`DB_POOL_TIMEOUT`), first in
    /// front of the budget's gate while it is suspended ([`Budget::suspend`]: nothing is
    /// handed out then, not even an idle connection).
    ///
    /// The call site is recorded for leak reports.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled acquire leaves the gate or the queue, and a connection it
    /// was opening is closed and its unit returned.
    ///
    /// # Errors
    ///
    /// [`DbError::PoolTimeout`] (with the budget's state) when time runs out,
    /// [`DbError::Connect`] when the server refuses, [`DbError::Shed`] at once when
    /// `DB_MAX_WAITERS` callers of this side already wait, [`DbError::Suspended`] when the
    /// budget stays suspended until the pool timeout, [`DbError::Closed`] after
    /// [`AsyncPool::close`]. A handle of [`AsyncPool::for_module`] that waits out the
    /// timeout for its bulkhead gets a [`DbError::PoolTimeout`] in phase `Bulkhead`.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<AsyncConn, DbError>> + Send + 'static {
        let site = Location::caller();
        let bulkhead = self
            .bulkhead
            .clone()
            .or_else(|| self.shared.budget.unassigned());
        self.shared.clone().acquire(site, bulkhead)
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
            self.shared.closing.notify_waiters();
            // Dropping the senders wakes every waiter with "closed".
            q.waiters.clear();
            let drained: Vec<Idle> = q.idle.drain(..).collect();
            self.shared.recorder.add_idle(-(drained.len() as i32));
            drained
        };
        let limit = self.shared.settings.return_timeout;
        let mut drained = drained;
        // Sessions cut off before the close must not run on after it: the first idle
        // connection ends them before it closes (`lingering.rs`).
        if self.shared.budget.sessions_to_end() > 0
            && let Some(first) = drained.first_mut()
        {
            let _ = tokio::time::timeout(limit, self.shared.end_lingering(&mut first.slot)).await;
        }
        let closes = drained.into_iter().map(|idle| {
            self.shared.recorder.record_closed(CloseReason::PoolClosed);
            idle.slot.close(Farewell::Graceful, limit)
        });
        futures_util::future::join_all(closes).await;
    }

    /// `true` after [`AsyncPool::close`], or once the budget itself is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}
