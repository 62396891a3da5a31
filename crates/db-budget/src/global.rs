//! The process-wide budget, and the install-once slot the pools' globals are made of.
//!
//! Legacy code reaches the database through process-wide functions
//! (`db_sync::get_database_connection()`, `db_async::global()`), so the budget behind
//! them must be the one the process really uses. Two ways lead there:
//!
//! - a program that builds its own budget and pools (the server's `Application`)
//!   **installs** them ([`install_global`], `db_sync::install_global`,
//!   `db_async::install_global`); the returned [`Installed`] guard uninstalls them when
//!   dropped, so the next application in the same process (tests) can install its own;
//! - a program that builds nothing (a legacy script) gets a budget built from the
//!   environment on first use, for the life of the process.
//!
//! **Architecture Invariant:** a process never has two budgets behind its global
//! functions. Once any budget was built with [`Budget::new`](crate::Budget::new) (or
//! `from_config`), the environment is never used to build another: without an
//! installation, [`global`] fails with [`DbError::NotInstalled`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

use crate::{Budget, Config, DbError};

/// Set by every budget built outside [`global`]'s environment path.
static OWN_BUDGET_BUILT: AtomicBool = AtomicBool::new(false);

/// Notes that the process builds a budget of its own.
///
/// # Panics
///
/// If a process-wide budget was already built from the environment: the process would
/// then have two budgets, and together they could exceed the server's limit.
pub(crate) fn note_own_budget() {
    OWN_BUDGET_BUILT.store(true, Ordering::SeqCst);
    assert!(
        !BUDGET.built_from_env(),
        "a process-wide connection budget was already built from the environment \
         (db_budget::global()): building another makes two budgets; build the process's \
         budget first and install it (install_global), or use db_budget::global()"
    );
}

/// An install-once, process-wide value: installed by a program for as long as it holds
/// the [`Installed`] guard, or built on first use from the environment for the rest of
/// the process.
#[derive(Debug)]
pub struct Global<T: Clone + Send + Sync + 'static> {
    what: &'static str,
    installed: RwLock<Option<T>>,
    from_env: OnceLock<T>,
}

impl<T: Clone + Send + Sync + 'static> Global<T> {
    /// An empty slot; `what` names it in errors ("blocking pool").
    pub const fn new(what: &'static str) -> Self {
        Global {
            what,
            installed: RwLock::new(None),
            from_env: OnceLock::new(),
        }
    }

    /// Installs `value` until the returned guard is dropped.
    ///
    /// # Errors
    ///
    /// [`DbError::AlreadyInstalled`] when a value is installed, or one was built from
    /// the environment (it lives as long as the process).
    pub fn install(&'static self, value: T) -> Result<Installed<T>, DbError> {
        let mut slot = self.write();
        if slot.is_some() || self.from_env.get().is_some() {
            return Err(DbError::AlreadyInstalled { what: self.what });
        }
        *slot = Some(value);
        Ok(Installed { global: self })
    }

    /// The installed value, if any.
    pub fn installed(&self) -> Option<T> {
        self.read().clone()
    }

    /// The installed value, or the one built from the environment, building it with
    /// `build` on first use. `build` runs at most once successfully; an error leaves
    /// nothing behind, so a later call can succeed.
    ///
    /// # Errors
    ///
    /// `build`'s error.
    pub fn get_or_build(&self, build: impl FnOnce() -> Result<T, DbError>) -> Result<T, DbError> {
        if let Some(v) = self.installed() {
            return Ok(v);
        }
        if let Some(v) = self.from_env.get() {
            return Ok(v.clone());
        }
        // Under the lock `install` takes: an installation cannot slip in between the
        // checks and the build, so the process never has both. Building does no I/O
        // (a budget, a pool handle), so the lock is held for microseconds.
        let slot = self.write();
        if let Some(v) = slot.as_ref() {
            return Ok(v.clone());
        }
        if let Some(v) = self.from_env.get() {
            return Ok(v.clone());
        }
        let built = build()?;
        Ok(self.from_env.get_or_init(|| built).clone())
    }

    /// `true` once a value was built from the environment (it lives as long as the
    /// process).
    pub fn built_from_env(&self) -> bool {
        self.from_env.get().is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<T>> {
        // Nothing panics while holding it: recover rather than poison the process.
        self.installed.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<T>> {
        self.installed.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a value installed in its [`Global`]; dropping it uninstalls the value (the
/// value itself, e.g. a pool, lives on in its other handles).
#[must_use = "the value is uninstalled as soon as the guard is dropped"]
#[derive(Debug)]
pub struct Installed<T: Clone + Send + Sync + 'static> {
    global: &'static Global<T>,
}

impl<T: Clone + Send + Sync + 'static> Drop for Installed<T> {
    fn drop(&mut self) {
        *self.global.write() = None;
    }
}

static BUDGET: Global<(Config, Budget)> = Global::new("connection budget");

/// Installs the process-wide configuration and budget until the guard is dropped. The
/// server does this at startup, with its pools (`db_sync::install_global`,
/// `db_async::install_global`), so that the global functions legacy code calls draw
/// from the server's one budget.
///
/// # Errors
///
/// [`DbError::AlreadyInstalled`] if a budget is installed (or was built from the
/// environment by [`global`]).
pub fn install_global(
    config: Config,
    budget: Budget,
) -> Result<Installed<(Config, Budget)>, DbError> {
    BUDGET.install((config, budget))
}

/// `true` while a budget is installed with [`install_global`].
pub fn is_installed() -> bool {
    BUDGET.installed().is_some()
}

/// The process-wide configuration and budget: the installed one, or else, in a process
/// that built no budget of its own, one built from the environment
/// ([`Config::from_env`]) on first use.
///
/// # Errors
///
/// [`DbError::NotInstalled`] when nothing is installed and this process built a budget
/// of its own (building one more would be a second budget); else a
/// [`DbError::Config`] naming the bad variable (nothing is built then, so a later call
/// after fixing the environment can succeed).
pub fn global() -> Result<(Config, Budget), DbError> {
    BUDGET.get_or_build(|| {
        if OWN_BUDGET_BUILT.load(Ordering::SeqCst) {
            return Err(DbError::NotInstalled {
                what: "connection budget",
            });
        }
        let config = Config::from_env()?;
        let budget = Budget::unlisted(config.max_connections, config.leak_threshold);
        budget.set_slow_query_threshold(config.slow_query);
        Ok((config, budget))
    })
}
