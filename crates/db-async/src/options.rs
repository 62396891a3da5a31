//! Building an [`AsyncPool`]: its builder, and the builder's entry points
//! ([`AsyncPool::builder`], [`AsyncPool::from_config`]).

use std::time::Duration;

use db_budget::{Budget, Config, DatabaseUrl, DbError, PoolSettings};
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;

use crate::pool::AsyncPool;

/// The shared pool timings, plus how long returning a connection may take.
#[derive(Debug, Clone)]
pub(crate) struct AsyncSettings {
    pub(crate) timings: PoolSettings,
    pub(crate) return_timeout: Duration,
}

impl Default for AsyncSettings {
    fn default() -> Self {
        AsyncSettings {
            timings: PoolSettings::default(),
            // Bounds rollback-on-return and close; a desynced stream must not hold its
            // unit forever (sqlx #563).
            return_timeout: Duration::from_secs(5),
        }
    }
}

impl std::ops::Deref for AsyncSettings {
    type Target = PoolSettings;
    fn deref(&self) -> &PoolSettings {
        &self.timings
    }
}

/// Builds an [`AsyncPool`]. Building does no I/O: connections open on demand.
#[derive(Debug)]
pub struct AsyncPoolBuilder {
    url: DatabaseUrl,
    budget: Budget,
    settings: AsyncSettings,
}

impl AsyncPoolBuilder {
    db_budget::pool_settings_setters!(b => b.settings.timings);

    /// Bounds the work done when a connection comes back (rollback, validation, close).
    /// Defaults to 5 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn return_timeout(mut self, d: Duration) -> Self {
        self.settings.return_timeout = PoolSettings::nonzero(d, "return_timeout");
        self
    }

    /// Sets every shared timing at once, e.g. [`PoolSettings::from_config`]. Defaults to
    /// [`PoolSettings::default`].
    pub fn settings(mut self, settings: PoolSettings) -> Self {
        self.settings.timings = settings;
        self
    }

    /// Builds the pool and starts its reaper on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> AsyncPool {
        let runtime = tokio::runtime::Handle::try_current()
            .expect("AsyncPool::build must be called within a tokio runtime");
        AsyncPool::new(
            self.budget,
            connect_options(&self.url),
            self.url.to_string(),
            self.settings,
            runtime,
        )
    }
}

/// sqlx options for `url`, set up to behave like the blocking side's connections:
/// the server's own `sql_mode` and time zone (sqlx would otherwise change both, and
/// the two sides would disagree about `||` and `TIMESTAMP` values), no statement
/// logging by sqlx (the pool logs slow statements itself, without values).
fn connect_options(url: &DatabaseUrl) -> MySqlConnectOptions {
    let mut o = MySqlConnectOptions::new()
        .username(url.user())
        .database(url.database())
        .timezone(None)
        .pipes_as_concat(false)
        .no_engine_substitution(false);
    if let Some(p) = url.password() {
        o = o.password(p);
    }
    o = match url.socket() {
        Some(path) => o.socket(path),
        None => o.host(url.host()).port(url.port()),
    };
    o.disable_statement_logging()
}

impl AsyncPool {
    /// A builder for a pool on `budget`, connecting to `url`.
    pub fn builder(url: DatabaseUrl, budget: Budget) -> AsyncPoolBuilder {
        AsyncPoolBuilder {
            url,
            budget,
            settings: AsyncSettings::default(),
        }
    }

    /// A pool set up from a validated [`Config`] ([`db_budget::VARIABLES`]), on `budget`.
    ///
    /// # Errors
    ///
    /// [`DbError::Config`] naming `DATABASE_URL` when it is not set.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn from_config(config: &Config, budget: Budget) -> Result<AsyncPool, DbError> {
        let url = config.require_database_url()?;
        Ok(AsyncPool::builder(url, budget)
            .settings(PoolSettings::from_config(config))
            .build())
    }
}
