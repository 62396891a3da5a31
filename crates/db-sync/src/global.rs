//! The process-wide pool and `get_database_connection()`, the shim legacy code calls.

use once_cell::sync::OnceCell;

use db_budget::DbError;

use crate::{DbConnection, SyncPool};

static GLOBAL: OnceCell<SyncPool> = OnceCell::new();

/// Installs the process-wide pool (the server does this at startup, on the budget it
/// also gives the async pool).
///
/// # Errors
///
/// Gives the pool back if one is already installed (or was built on first use).
pub fn install_global(pool: SyncPool) -> Result<(), SyncPool> {
    GLOBAL.set(pool)
}

/// The process-wide pool: the installed one, or else one built on first use from the
/// environment and the process-wide budget (`db_budget::global()`), the same budget
/// `db_async::global()` draws from. Building does no I/O.
///
/// # Errors
///
/// [`DbError::Config`] when the environment is bad; nothing is installed then.
pub fn global() -> Result<&'static SyncPool, DbError> {
    GLOBAL.get_or_try_init(|| {
        let (config, budget) = db_budget::global()?;
        SyncPool::from_config(config, budget.clone())
    })
}

/// **The shim for legacy code**: a pooled connection from the process-wide pool, in
/// place of the old `get_database_connection()` that opened a new server connection
/// on every call.
///
/// Deprecated in spirit: new code uses `db-async`, and `cargo xtask sync-usage` counts
/// every call of this function so the migration can be tracked and ratcheted down.
///
/// Call it from a plain thread, inside `tokio::task::spawn_blocking`, or on a
/// multi-thread runtime worker; the returned guard cleans up on drop (see
/// [`DbConnection`]).
///
/// ```no_run
/// use db_sync::get_database_connection;
///
/// # fn demo() -> Result<(), db_budget::DbError> {
/// let mut conn = get_database_connection()?;
/// let (n,): (i64,) = conn.fetch_one("SELECT COUNT(*) FROM saved_games WHERE player_id = ?", (7,))?;
/// # let _ = n; Ok(()) }
/// ```
///
/// # Errors
///
/// As [`global`] and [`SyncPool::get`].
#[track_caller]
pub fn get_database_connection() -> Result<DbConnection, DbError> {
    global()?.get()
}
