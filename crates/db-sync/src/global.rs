//! The process-wide pool and `get_database_connection()`, the shim legacy code calls.

use db_budget::{DbError, Global, Installed};

use crate::{SyncConn, SyncPool};

static POOL: Global<SyncPool> = Global::new("blocking pool");

/// Installs the process-wide blocking pool until the guard is dropped (the server does
/// this at startup, with `db_budget::install_global` and `db_async::install_global` on
/// the same budget).
///
/// # Errors
///
/// [`DbError::AlreadyInstalled`] if one is installed (or was built on first use).
pub fn install_global(pool: SyncPool) -> Result<Installed<SyncPool>, DbError> {
    POOL.install(pool)
}

/// The process-wide blocking pool: the installed one, or else, in a process that
/// installed nothing and built no budget of its own, one built on first use from the
/// environment on the process-wide budget (`db_budget::global()`), the same budget
/// `db_async::global()` draws from. Building does no I/O. Cheap: a clone of a handle.
///
/// # Errors
///
/// [`DbError::NotInstalled`] when a budget is installed without a blocking pool, or
/// this process built a budget of its own and installed none: never a second budget.
/// [`DbError::Config`] when the environment is bad; nothing is built then.
pub fn global() -> Result<SyncPool, DbError> {
    POOL.get_or_build(|| {
        if db_budget::is_installed() {
            return Err(DbError::NotInstalled {
                what: "blocking pool",
            });
        }
        let (config, budget) = db_budget::global()?;
        SyncPool::from_config(&config, budget)
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
/// [`SyncConn`]).
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
pub fn get_database_connection() -> Result<SyncConn, DbError> {
    global()?.get()
}
