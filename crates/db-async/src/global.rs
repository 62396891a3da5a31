//! The process-wide pool.

use db_budget::{DbError, Global, Installed};

use crate::AsyncPool;

static POOL: Global<AsyncPool> = Global::new("async pool");

/// Installs the process-wide async pool until the guard is dropped (the server does
/// this at startup, with `db_budget::install_global` and `db_sync::install_global` on
/// the same budget).
///
/// # Errors
///
/// [`DbError::AlreadyInstalled`] if one is installed (or was built on first use).
pub fn install_global(pool: AsyncPool) -> Result<Installed<AsyncPool>, DbError> {
    POOL.install(pool)
}

/// The process-wide async pool: the installed one, or else, in a process that
/// installed nothing and built no budget of its own, one built on first use from the
/// environment on the process-wide budget (`db_budget::global()`), the same budget the
/// blocking side's `get_database_connection()` draws from. Cheap: a clone of a handle.
///
/// # Errors
///
/// [`DbError::NotInstalled`] when a budget is installed without an async pool, or this
/// process built a budget of its own and installed none: never a second budget.
/// [`DbError::Config`] when the environment is bad; nothing is built then.
///
/// # Panics
///
/// Outside a tokio runtime, on the call that builds the pool.
pub fn global() -> Result<AsyncPool, DbError> {
    POOL.get_or_build(|| {
        if db_budget::is_installed() {
            return Err(DbError::NotInstalled { what: "async pool" });
        }
        let (config, budget) = db_budget::global()?;
        AsyncPool::from_config(&config, budget)
    })
}
