//! Building a [`SyncPool`]: its builder, and the builder's entry points
//! ([`SyncPool::builder`], [`SyncPool::from_config`]).

use std::time::Duration;

use db_budget::{Budget, Config, DatabaseUrl, DbError, PoolSettings};

use crate::pool::SyncPool;
use crate::state::State;

impl SyncPool {
    /// A builder for a pool on `budget`, connecting to `url`.
    pub fn builder(url: DatabaseUrl, budget: Budget) -> SyncPoolBuilder {
        SyncPoolBuilder {
            url,
            budget,
            settings: PoolSettings::default(),
            io_timeout: None,
        }
    }

    /// A pool set up from a validated [`Config`], on `budget`. Does no I/O.
    ///
    /// # Errors
    ///
    /// [`DbError::Config`] naming `DATABASE_URL` when it is not set.
    pub fn from_config(config: &Config, budget: Budget) -> Result<SyncPool, DbError> {
        let url = config.require_database_url()?;
        Ok(SyncPool::builder(url, budget)
            .settings(PoolSettings::from_config(config))
            .build())
    }
}

/// Builds a [`SyncPool`]. Building does no I/O: connections open on demand.
#[derive(Debug)]
pub struct SyncPoolBuilder {
    url: DatabaseUrl,
    budget: Budget,
    settings: PoolSettings,
    /// `None`: the max lifetime.
    io_timeout: Option<Duration>,
}

impl SyncPoolBuilder {
    db_budget::pool_settings_setters!(b => b.settings);

    /// Longest a statement waits for the server without any progress (the socket's
    /// read and write timeout while a statement runs, helpers and raw access alike).
    /// When it passes, the statement fails (a helper's with
    /// [`DbError::StatementTimeout`] stopped by the client when the pool has a
    /// statement timeout, else [`DbError::ConnectionLost`]) and the connection is
    /// closed, never pooled. Defaults to the statement timeout plus its margin
    /// (`DB_STATEMENT_TIMEOUT` + 2 s: the server has answered by then, with an error if
    /// it stopped the statement), or, with the statement timeout off, the max lifetime
    /// (`DB_MAX_LIFETIME`, 30 min by default).
    ///
    /// Not itself a statement timeout: a result that keeps arriving is never cut, and
    /// the server is not told to stop (the server's own limit does that). It bounds how
    /// long a frozen or vanished server can hold a thread and its budget unit.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn io_timeout(mut self, d: Duration) -> Self {
        self.io_timeout = Some(PoolSettings::nonzero(d, "io_timeout"));
        self
    }

    /// Sets every shared timing at once, e.g. [`PoolSettings::from_config`]. Defaults to
    /// [`PoolSettings::default`].
    pub fn settings(mut self, settings: PoolSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Builds the pool. Starts r2d2's worker threads but opens no connection.
    pub fn build(self) -> SyncPool {
        // A statement under a server-side limit answers by then; one that did not is
        // on a server that stopped answering.
        let backstop = (!self.settings.statement_timeout.is_zero())
            .then(|| self.settings.statement_timeout + self.settings.statement_timeout_margin);
        let io_timeout = self
            .io_timeout
            .or(backstop)
            .unwrap_or(self.settings.max_lifetime);
        let database = self.url.database().to_owned();
        let state = State::new(self.budget, self.settings, io_timeout, database);
        SyncPool::new(&self.url, state)
    }
}
