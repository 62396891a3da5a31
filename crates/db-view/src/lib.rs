//! The database server's own view of connections, beside the budget's.
//!
//! The budget knows what this process holds; only the server knows what it is serving.
//! "The pool says 10, the server shows 121" is the question the person paged at 3 a.m.
//! asks first, and the answer is on the server: other instances, a deploy's overlap, a
//! forgotten cron job on the application's account, a leak in code that bypasses the
//! pools. This crate reads that view at a modest interval on **one connection inside the
//! budget** and reconciles it with the budget:
//!
//! - the server's limits: `max_connections`, this account's `max_user_connections`;
//! - its counters: `Threads_connected`, `Max_used_connections`, `Aborted_connects`,
//!   `Connections` (whose rate is the connects per second that churn shows up in);
//! - the process list by account and host (this account only, without `PROCESS`);
//! - and **drift**: connections of this account that the budgets cannot explain, for
//!   longer than the lag (see [`Drift`]).
//!
//! ```no_run
//! # use std::time::Duration;
//! # use db_budget::{Budget, DatabaseUrl};
//! use db_view::{Explained, ServerView, ViewSettings};
//!
//! let budget = Budget::new(8, Duration::from_secs(30));
//! let url = DatabaseUrl::parse("mysql://app:secret@127.0.0.1:3306/game").unwrap();
//! // Two instances of 8: the other's 8 are explained too.
//! let settings = ViewSettings::new(Duration::from_secs(10), Explained::Static { others: 8 });
//! let view = ServerView::start(&budget, &url, settings).expect("a free unit");
//! // The pools now have 7 units: the reader's connection counts in the budget.
//! assert_eq!(budget.usable(), 7);
//! if let Some(r) = view.latest() {
//!     println!("{} of {} connections are this account's", r.account_connections, r.threads_connected);
//! }
//! ```
//!
//! # The reader's connection
//!
//! [`ServerView::start`] withholds one unit of the budget ([`Budget::withhold`]) for as
//! long as the view runs, so the pools have one fewer and the process as a whole never
//! holds more than the budget. It needs no privilege: every statement reads session or
//! global variables, `information_schema.GLOBAL_STATUS` and the process list. Each read
//! is bounded (a socket timeout, and `max_statement_time` at half of it); a failed read
//! closes the connection and the next interval opens a new one, so a server in trouble
//! sees at most one attempt per interval from it.

mod drift;
mod reader;
mod reading;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use db_budget::{Budget, DatabaseUrl};

pub use drift::{Drift, Explained};
pub use reading::{AccountHost, MAX_ROWS, Reading};

/// How the view reads and what it reconciles with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSettings {
    /// Time between readings.
    pub interval: Duration,
    /// What the budgets explain.
    pub explained: Explained,
    /// The longest a connect or a reading may take.
    pub timeout: Duration,
    /// Connections of this process beside the pools' and the reader's own, each on a
    /// withheld unit: a fleet's control connection. Counted in `process`. Defaults to 0.
    pub beside: u32,
}

impl ViewSettings {
    /// Readings every `interval`, reconciled with `explained`.
    ///
    /// # Panics
    ///
    /// If `interval` is zero (to turn the view off, do not start it).
    pub fn new(interval: Duration, explained: Explained) -> ViewSettings {
        assert!(!interval.is_zero(), "the view's interval must not be zero");
        ViewSettings {
            interval,
            explained,
            // A reading is three small statements; 5 s is a server in trouble.
            timeout: Duration::from_secs(5),
            beside: 0,
        }
    }

    /// How long an excess must last to be drift: two intervals, and at least 1 s
    /// (the server counts a closed connection for a few milliseconds after it is gone,
    /// and the budget is sampled a moment apart from the process list).
    pub fn lag(&self) -> Duration {
        (self.interval * 2).max(Duration::from_secs(1))
    }
}

/// Why the view could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ViewError {
    /// No unit of the budget was free for the reader's connection.
    NoUnit {
        /// The budget's capacity.
        capacity: u32,
        /// Units in use or withheld when it was asked.
        taken: u32,
    },
    /// The reader thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for ViewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewError::NoUnit { capacity, taken } => write!(
                f,
                "no unit of the budget is free for the server-view reader ({taken} of {capacity} taken)"
            ),
            ViewError::Thread(e) => write!(f, "cannot start the server-view reader: {e}"),
        }
    }
}

impl std::error::Error for ViewError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ViewError::Thread(e) => Some(e),
            ViewError::NoUnit { .. } => None,
        }
    }
}

/// What the reader thread shares with the handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    latest: Mutex<Option<Reading>>,
    up: AtomicBool,
    reads: AtomicU64,
    failures: AtomicU64,
}

/// The running view: the reader thread and its unit, until dropped.
#[must_use = "the view stops when dropped"]
#[derive(Debug)]
pub struct ServerView {
    budget: Budget,
    settings: ViewSettings,
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The view's state now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ViewStatus {
    /// Whether the last attempt to read succeeded.
    pub up: bool,
    /// Readings taken since the view started.
    pub reads_total: u64,
    /// Failed attempts (connect or read) since the view started.
    pub failures_total: u64,
    /// Seconds between readings.
    pub interval_seconds: f64,
    /// Seconds an excess must last to be drift.
    pub lag_seconds: f64,
}

impl ServerView {
    /// Withholds one unit of `budget` for the reader's connection and starts the reader
    /// thread; the first reading is taken at once.
    ///
    /// Start it after anything that must find the budget whole (a fleet's `join`): it
    /// withholds a unit at once.
    ///
    /// # Errors
    ///
    /// [`ViewError::NoUnit`] when no unit is free; [`ViewError::Thread`] if the thread
    /// cannot start (the unit is given back).
    pub fn start(
        budget: &Budget,
        url: &DatabaseUrl,
        settings: ViewSettings,
    ) -> Result<ServerView, ViewError> {
        if budget.withhold(1) != 1 {
            return Err(ViewError::NoUnit {
                capacity: budget.capacity(),
                taken: budget.capacity().saturating_sub(budget.available()),
            });
        }
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = mpsc::channel();
        let spawned = {
            let (budget, url, shared) = (budget.clone(), url.clone(), shared.clone());
            std::thread::Builder::new()
                .name("db-view".into())
                .spawn(move || reader::run(budget, url, settings, shared, stopped))
        };
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                budget.grant(1);
                return Err(ViewError::Thread(e));
            }
        };
        Ok(ServerView {
            budget: budget.clone(),
            settings,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A handle that reads the view's figures (for the admin pages) without keeping the
    /// reader running.
    pub fn handle(&self) -> ViewHandle {
        ViewHandle {
            settings: self.settings,
            shared: self.shared.clone(),
        }
    }

    /// The last successful reading, if any (see [`ViewHandle::latest`]).
    pub fn latest(&self) -> Option<Reading> {
        self.handle().latest()
    }

    /// Whether the view is up, and its counters.
    pub fn status(&self) -> ViewStatus {
        self.handle().status()
    }
}

/// Reads what a [`ServerView`] has seen; cheap to clone. After the view is dropped it
/// keeps the last reading and reports the view down.
#[derive(Debug, Clone)]
pub struct ViewHandle {
    settings: ViewSettings,
    shared: Arc<Shared>,
}

impl ViewHandle {
    /// The last successful reading, if any (it may be older than the interval when the
    /// server cannot be read: see [`ViewHandle::status`]).
    pub fn latest(&self) -> Option<Reading> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the view is up, and its counters.
    pub fn status(&self) -> ViewStatus {
        ViewStatus {
            up: self.shared.up.load(Relaxed),
            reads_total: self.shared.reads.load(Relaxed),
            failures_total: self.shared.failures.load(Relaxed),
            interval_seconds: self.settings.interval.as_secs_f64(),
            lag_seconds: self.settings.lag().as_secs_f64(),
        }
    }
}

impl Drop for ServerView {
    /// Stops the reader (at most one reading's timeout), which closes its connection,
    /// then gives its unit back to the pools.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.up.store(false, Relaxed);
        self.budget.grant(1);
    }
}
