//! The pool's private state, shared by its handles, checkouts and background tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use db_budget::{Budget, Recorder, ServerFlavor};
use sqlx::mysql::MySqlConnectOptions;
use tokio::runtime::Handle;

use super::queues::Queues;
use crate::options::AsyncSettings;

pub(crate) struct Shared {
    pub(crate) budget: Budget,
    /// This side's figures in the budget.
    pub(crate) recorder: Recorder,
    /// Holds the password: never printed (see the `Debug` impl).
    pub(super) connect_options: MySqlConnectOptions,
    /// Where the pool connects, password redacted, for `Debug`.
    pub(super) shown_url: String,
    pub(crate) settings: AsyncSettings,
    /// Idle connections and waiting callers, under one short lock.
    pub(super) queues: Mutex<Queues>,
    pub(super) closed: AtomicBool,
    /// Woken when the pool closes: ends callers' waits for a bulkhead's admission.
    pub(super) closing: tokio::sync::Notify,
    pub(super) runtime: Handle,
    /// The server's dialect, read by the first connect (`connect.rs`): one URL, one
    /// dialect, so later connects skip the question.
    pub(super) flavor: OnceLock<ServerFlavor>,
    /// A reap of lingering sessions runs (`lingering.rs`): one at a time.
    pub(super) reaping: AtomicBool,
    /// No reap starts before this (`lingering.rs`).
    pub(super) reap_not_before: Mutex<Instant>,
    /// The pause after the next reap that leaves sessions (`lingering.rs`).
    pub(super) reap_pause: Mutex<std::time::Duration>,
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

impl Shared {
    /// `true` once the pool, or the budget under it, is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.budget.is_closed()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Queues> {
        // Nothing panics while holding this lock; recover rather than poison the pool.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}
