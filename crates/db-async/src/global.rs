//! The process-wide pool.

use once_cell::sync::OnceCell;

use db_budget::DbError;

use crate::AsyncPool;

static GLOBAL: OnceCell<AsyncPool> = OnceCell::new();

/// Installs the process-wide pool (the server does this at startup, on the budget it
/// also gives the blocking pool).
///
/// # Errors
///
/// Gives the pool back if one is already installed.
pub fn install_global(pool: AsyncPool) -> Result<(), AsyncPool> {
    GLOBAL.set(pool)
}

/// The process-wide pool: the installed one, or else one built on first use from the
/// environment and the process-wide budget (`db_budget::global()`), the same budget the
/// blocking side's `get_database_connection()` draws from.
///
/// # Errors
///
/// [`DbError::Config`] when the environment is bad; nothing is installed then.
///
/// # Panics
///
/// Outside a tokio runtime, on the call that builds the pool.
pub fn global() -> Result<&'static AsyncPool, DbError> {
    GLOBAL.get_or_try_init(|| {
        let (config, budget) = db_budget::global()?;
        AsyncPool::from_config(config, budget.clone())
    })
}
