//! The blocking side of the connection budget: the shim legacy code calls,
//! [`get_database_connection()`], over an r2d2 + r2d2_mysql pool in which every physical
//! connection owns one [`db_budget`] unit.
//!
//! # Why
//!
//! The game backend's legacy modules (saved games, generated images) are written in
//! blocking style. Their old `get_database_connection()` opened a brand-new server
//! connection on every call, sized independently of the async pool, and was used as
//!
//! ```text
//! conn = get_database_connection()
//! cursor = conn.cursor()
//! cursor.execute(...)      # an exception here skipped the close below
//! conn.close()
//! ```
//!
//! Together that ended in `ERROR 1040: Too many connections`. This crate keeps the
//! call shape and removes the causes:
//!
//! - connections are pooled, and each holds a unit of the budget shared with the async
//!   side (`db-async`) from before its handshake until after its socket is closed, so
//!   the two sides together never exceed `MAX_CONNECTIONS` (invariant I1);
//! - the returned [`SyncConn`] guard is the `finally`: dropping it on any path
//!   (return, `?`, panic) rolls back an open transaction and returns or closes the
//!   connection (I3);
//! - a caller that cannot get a connection within `DB_POOL_TIMEOUT` gets a typed error
//!   showing the budget's state, never a hang (I4); a frozen server cannot hold a
//!   thread or a unit indefinitely either: the handshake, the validation ping and the
//!   `ROLLBACK` on return wait at most `DB_CONNECT_TIMEOUT`, statements at most the
//!   pool's I/O timeout (`DB_STATEMENT_TIMEOUT` + 2 s unless set, see
//!   [`SyncPoolBuilder::io_timeout`]), and a connection that overran one is closed;
//! - a statement runs at most `DB_STATEMENT_TIMEOUT`, stopped by the server (set on the
//!   session once when it opens, and again after a session reset): it fails with
//!   [`DbError::StatementTimeout`](db_budget::DbError::StatementTimeout) and the
//!   connection stays pooled; [`SyncConn::with_statement_timeout`] changes one
//!   statement's limit;
//! - idle connections go to the async side the moment it waits (I2).
//!
//! **Deprecated in spirit.** This crate exists so legacy code keeps working while it is
//! ported; new code uses `db-async`. `cargo xtask sync-usage` counts every use of this
//! crate, and a ratchet keeps the count from growing.
//!
//! # Example
//!
//! ```no_run
//! use db_sync::get_database_connection;
//!
//! # fn demo() -> Result<(), db_budget::DbError> {
//! let mut conn = get_database_connection()?;
//! let (name,): (String,) = conn.fetch_one("SELECT name FROM players WHERE id = ?", (7,))?;
//! let saved = conn.fetch_dict_all("SELECT id, slot, updated_at FROM saved_games WHERE player_id = ?", (7,))?;
//! conn.transaction(|tx| {
//!     tx.execute("UPDATE players SET coins = coins + ? WHERE id = ?", (10, 7))?;
//!     Ok(())
//! })?;
//! # let _ = (name, saved); Ok(())
//! } // <- the guard drops here: the connection goes back to the pool
//! ```
//!
//! Explicit pools (tests, or a server wiring both sides onto one budget):
//!
//! ```no_run
//! use std::time::Duration;
//! use db_budget::{Budget, DatabaseUrl};
//! use db_sync::SyncPool;
//!
//! # fn demo() -> Result<(), db_budget::DbError> {
//! let url = DatabaseUrl::parse("mysql://app:secret@127.0.0.1:3306/game")?;
//! let budget = Budget::new(20, Duration::from_secs(30));
//! let pool = SyncPool::builder(url, budget.clone()).build(); // no I/O yet
//! let done = pool.execute("DELETE FROM sessions WHERE expires_at < NOW()", ())?;
//! # let _ = done; Ok(()) }
//! ```
//!
//! # Threads and runtimes
//!
//! Use it from plain threads, inside `tokio::task::spawn_blocking`, or on a multi-thread
//! runtime's worker (the wait runs in `block_in_place`). On the thread that drives a
//! current-thread runtime, [`SyncPool::get`] refuses with
//! [`DbError::BlockingNotAllowed`](db_budget::DbError::BlockingNotAllowed): waiting there
//! would stall the very tasks that give connections back.
//!
//! **Architecture Invariant:** a `mysql::Conn` is created only in `manager.rs`, after a
//! unit was taken, and never leaves the `Slot` struct that owns that unit; `SyncConn`
//! lends it out by reference only.

mod connection;
mod dict;
mod error;
mod global;
mod guard;
mod helpers;
mod housekeeping;
mod lingering;
mod manager;
mod options;
mod pool;
mod raw;
mod state;
mod tx;

pub use db_budget::DictRow;
pub use dict::to_dict;
pub use global::{get_database_connection, global, install_global};
pub use guard::SyncConn;
pub use options::SyncPoolBuilder;
pub use pool::{PoolState, SyncPool};
pub use raw::RawConn;
pub use tx::Transaction;

/// The name legacy code and earlier docs use for [`SyncConn`] (the same type).
pub type DbConnection = SyncConn;
/// The name legacy code and earlier docs use for [`Transaction`] (the same type).
pub type Tx<'c> = Transaction<'c>;

/// The mysql crate the connections come from (r2d2_mysql 28's), for `Params`, `Value`,
/// `prelude::FromRow` and raw calls on a [`SyncConn`].
pub use r2d2_mysql::mysql;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn guards_and_pools_move_between_threads() {
        assert_send::<SyncConn>();
        assert_send::<SyncPool>();
        fn assert_sync<T: Sync>() {}
        assert_sync::<SyncPool>();
    }
}
