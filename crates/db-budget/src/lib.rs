//! One process-wide budget of physical database connections, shared by a blocking pool
//! and an async pool.
//!
//! # Why
//!
//! A MySQL server refuses connection number `max_connections + 1` with
//! `ERROR 1040: Too many connections`. A process that runs two pools (an async one for
//! new code, a blocking one for legacy code) sized independently will, on a busy day,
//! ask for more than the server allows. Splitting the limit statically wastes it: the
//! side under load starves while the other side's connections sit idle.
//!
//! This crate holds the limit itself: a [`Budget`] of `MAX_CONNECTIONS` [`Unit`]s. Each
//! physical connection of either pool owns one unit from before it connects until after
//! its socket is closed, so the process can never hold more (invariant I1). Either side
//! can take every unit; when one side waits, the other gives back idle connections at
//! once ([`Shrink`], [`Budget::should_yield`]; invariant I2). While both sides are busy,
//! each keeps a share that follows its demand slowly ([`HandOver`]), because a unit changes
//! side only by closing a connection and opening another: per request, that would be
//! the connect-per-call pattern again.
//!
//! The crate also holds what both pools share: the environment [`Config`] ([`VARIABLES`]),
//! the one error type [`DbError`] (whose pool timeout shows the budget, why callers
//! wait and who holds the connections, I4), the
//! [`Snapshot`] read by metrics and the live page (I5), what each pool records about
//! its side ([`Recorder`]), and leak detection ([`CheckoutTicket`]). It knows nothing
//! of sqlx or the mysql crate.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use db_budget::{Budget, Side};
//!
//! let budget = Budget::new(20, Duration::from_secs(30));
//! let deadline = Instant::now() + Duration::from_secs(30);
//! // A pool takes a unit before it opens a connection and keeps it inside the connection.
//! let unit = budget.acquire_blocking(Side::Sync, deadline).unwrap();
//! assert_eq!(budget.snapshot().to_string(),
//!     "budget 1/20 in use (async: 0 active, 0 idle, 0 waiting; sync: 0 active, 0 idle, 0 waiting)");
//! drop(unit); // after the socket is closed
//! ```
//!
//! # Proofs
//!
//! The invariants are proven against a real MariaDB by the workspace's tests: I1 in
//! `tests/budget_bound.rs` (an LD_PRELOAD oracle counts every connect and close of the
//! process) and `crates/server/tests/global_shim.rs`, I2 in `tests/capacity_flow.rs`, I3
//! in `tests/nothing_leaks.rs`, `tests/cancellation.rs`, `tests/transaction_state.rs` and
//! `tests/session_*.rs`, I4 in `tests/fail_fast.rs` and `crates/db-sync/tests/frozen.rs`,
//! I5 in `tests/observability.rs`. `ARCHITECTURE.md` says where each condition is
//! enforced.
//!
//! **Architecture Invariant:** no type in this crate opens a connection, and nothing
//! outside `db-async` and `db-sync` takes units: a unit taken anywhere else would be a
//! connection the pools cannot see (tidy test `only_the_pools_take_budget_units`).

mod allocation;
mod blocking;
mod budget;
mod bulkhead;
mod cause;
mod checkout;
mod config;
pub mod dict;
mod error;
mod evict;
mod fairness;
mod global;
mod holders;
mod leak;
pub mod linger;
mod outcome;
mod pool_settings;
mod recorder;
mod resize;
mod shared;
mod shrink;
mod side;
mod slow;
mod snapshot;
pub mod sql;
mod statement;
pub mod statement_timeout;
mod stats;
mod suspend;
mod unit;
mod url;
mod withheld;

pub use allocation::HandOver;
pub use blocking::block_safely;
pub use budget::{Budget, WaitError};
pub use bulkhead::{
    Admission, AdmitError, Bulkhead, BulkheadSnapshot, BulkheadSpec, Bulkheads, parse_bulkheads,
};
pub use cause::{RECENT_CONNECT_FAILURE, WaitCause};
pub use checkout::CheckoutTicket;
pub use config::{
    ACCEPTS_DURATION, ACCEPTS_DURATION_OR_OFF, Config, ConfigError, VARIABLES, Variable,
    parse_duration, parse_duration_or_off, parse_whole_number,
};
pub use dict::DictRow;
pub use error::{BoxError, DbError, HumanDuration, StoppedBy, TimeoutPhase};
pub use evict::Eviction;
pub use global::{Global, Installed, global, install_global, is_installed};
pub use holders::Holder;
pub use outcome::ExecResult;
pub use pool_settings::PoolSettings;
pub use recorder::Recorder;
pub use resize::{ResizeError, Resized};
pub use shrink::Shrink;
pub use side::Side;
pub use slow::SlowStatement;
pub use snapshot::{HistogramSnapshot, SideSnapshot, Snapshot};
pub use statement::{InStatement, StatementMark};
pub use statement_timeout::{ServerFlavor, StatementLimits};
pub use stats::{CloseReason, GaugeGuard, LATENCY_BUCKETS_US};
pub use unit::Unit;
pub use url::DatabaseUrl;
