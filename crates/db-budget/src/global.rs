//! The process-wide budget both global pools draw from.

use std::sync::OnceLock;

use crate::{Budget, Config, DbError};

static GLOBAL: OnceLock<(Config, Budget)> = OnceLock::new();

/// Installs the process-wide configuration and budget. The server calls this once at
/// startup; `db_async::global()` and `db_sync::get_database_connection()` then build
/// their pools on this one budget, which is what keeps the two sides under one limit.
///
/// # Errors
///
/// Gives the pair back if a global budget was already installed (or built from the
/// environment by [`global`]).
pub fn install_global(config: Config, budget: Budget) -> Result<(), Box<(Config, Budget)>> {
    GLOBAL.set((config, budget)).map_err(Box::new)
}

/// The process-wide configuration and budget: the installed one, or else one built from
/// the environment ([`Config::from_env`]) on first use.
///
/// # Errors
///
/// A [`DbError::Config`] naming the bad variable. Nothing is installed then, so a later
/// call after fixing the environment, or an [`install_global`], can still succeed.
pub fn global() -> Result<&'static (Config, Budget), DbError> {
    if let Some(g) = GLOBAL.get() {
        return Ok(g);
    }
    let config = Config::from_env()?;
    let budget = Budget::from_config(&config);
    // Another thread may have won the race; either way there is exactly one budget.
    let _ = GLOBAL.set((config, budget));
    Ok(GLOBAL.get().expect("set just above"))
}
