//! The async side of the connection budget: a MySQL pool of sqlx 0.9 connections in
//! which every physical connection owns one [`db_budget`] unit.
//!
//! # Why not `sqlx::Pool`
//!
//! The budget must hold exactly (invariant I1: never more physical connections than
//! `MAX_CONNECTIONS`, counting connects in progress, summed with the blocking side).
//! `sqlx::Pool` 0.9 has no hook before it connects and none after it closes, so a unit
//! cannot be tied to its connections; the workaround (reserve a unit before
//! each `acquire`, reconcile against `pool.size()` later) rests on undocumented internals
//! and gives units back late. This crate instead pools `sqlx::MySqlConnection`s itself:
//!
//! - a unit is taken **before** `MySqlConnection::connect_with` starts, and lives in the
//!   same struct as the connection (declared after it), so it returns only after the
//!   socket is closed, whether the connection is closed on purpose, dropped on a
//!   cancelled connect, or dropped by a panicking task;
//! - a waiter waits for whichever comes first: an idle connection returned to this pool,
//!   or a free unit (then it connects);
//! - a waiter asks the blocking side to close an idle connection at once, and every
//!   returned connection is closed rather than pooled when the blocking side waits and
//!   this side can spare it ([`db_budget::Budget::should_yield`]), so capacity flows
//!   within milliseconds (I2).
//!
//! Conditions: sqlx is pinned to `=0.9.0` (the helpers use its hidden
//! `Connection::should_flush`/`flush`, and the I1 tests must re-run before it moves);
//! only this crate opens async connections; nothing here detaches a connection from its
//! unit.
//!
//! # Cancellation and returns
//!
//! sqlx's MySQL connection is not safe to reuse after a statement's future is dropped
//! mid-result (the stream desyncs; sqlx #563, #4349). Every helper marks the connection
//! busy for the duration of its statement; a connection still busy refuses every later
//! statement of its holder ([`DbError::Interrupted`]) and is shut on return without
//! reading from it. Every helper reads its result to the end before it returns (sqlx's
//! `fetch_optional` stops after the first row, which would leave the server holding the
//! statement and its table's metadata lock while the connection sits idle).
//!
//! Transaction state is explicit: open from a successful `BEGIN` to a successful
//! `COMMIT`/`ROLLBACK`. A dropped [`Transaction`] (or a dropped `commit()` future, even
//! unpolled) leaves it open and abandoned: its `ROLLBACK` runs before the connection's
//! next statement or, on return, in a background task bounded by the return timeout. A
//! committed transaction costs nothing on return. Session state the pool cannot reset
//! (`SET`, `LOCK TABLES`, `GET_LOCK`, user variables, temporary tables, raw use) closes
//! the connection on return. Returning never does network I/O in the caller's task, and
//! the pool's background work runs on the runtime the pool was built on.
//!
//! # Statement timeouts
//!
//! Every connection's session gets the pool's statement timeout (`DB_STATEMENT_TIMEOUT`)
//! once, when it opens (`pool/connect.rs`: MariaDB's `max_statement_time`, MySQL's
//! `max_execution_time`), so the server stops a statement past it and the connection
//! stays in step and pooled ([`DbError::StatementTimeout`]); the hot path pays nothing.
//! [`Conn::with_statement_timeout`] changes one statement's limit (`SET STATEMENT …
//! FOR`, prepared like the statement). A server that does not answer by the limit plus
//! the margin is given up on: the statement is cut off as a dropped future is, and the
//! connection closed. A `tokio::time::timeout` around a statement would instead cost the
//! connection every time (sqlx #563).
//!
//! # Validation
//!
//! An idle connection is pinged before reuse only when it sat idle longer than the
//! validation bypass window (500 ms, as HikariCP's `aliveBypassWindowMs`); sqlx's pool
//! pings on every acquire by default, which costs about a third of point-select
//! throughput.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use db_async::{AsyncPool, args};
//! use db_budget::{Budget, DatabaseUrl};
//!
//! # async fn demo() -> Result<(), db_budget::DbError> {
//! let url = DatabaseUrl::parse("mysql://app:secret@127.0.0.1:3306/game")?;
//! let budget = Budget::new(20, Duration::from_secs(30));
//! let pool = AsyncPool::builder(url, budget.clone()).build();
//!
//! let mut conn = pool.acquire().await?;
//! let (name,): (String,) = conn.fetch_one("SELECT name FROM players WHERE id = ?", args![7]).await?;
//! let mut tx = conn.begin().await?;
//! tx.execute("UPDATE players SET coins = coins + ? WHERE id = ?", args![10, 7]).await?;
//! tx.commit().await?;
//! # let _ = name; Ok(()) }
//! ```
//!
//! **Architecture Invariant:** `MySqlConnection::connect_with` is called in exactly one
//! place (`pool/connect.rs`), after a unit was taken, and a `MySqlConnection` never
//! leaves its `Slot` (tidy test `only_the_pools_open_database_connections`).

mod args;
mod backstop;
mod conn;
mod dict;
mod error;
mod global;
mod guard;
mod options;
mod pool;
mod slot;
mod tx;

pub use args::Args;
pub use conn::Conn;
pub use db_budget::DictRow;
pub use global::{global, install_global};
pub use guard::AsyncConn;
pub use options::AsyncPoolBuilder;
pub use pool::AsyncPool;
pub use tx::Transaction;

pub use db_budget::{DbError, ExecResult};
/// sqlx, as this crate uses it (for `FromRow` derives and `AssertSqlSafe`).
pub use sqlx;
