//! Building an [`AsyncPool`].

use std::time::Duration;

use db_budget::{Budget, Config, ConfigError, DatabaseUrl, DbError};
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;

use crate::pool::AsyncPool;

/// Timing settings; each default is set (and explained) in [`Settings::default`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) validation_bypass: Duration,
    pub(crate) return_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let config = Config::default();
        Settings {
            // DESIGN §5: DB_CONNECT_TIMEOUT, DB_POOL_TIMEOUT, DB_IDLE_TIMEOUT, DB_MAX_LIFETIME.
            connect_timeout: config.connect_timeout,
            pool_timeout: config.pool_timeout,
            idle_timeout: config.idle_timeout,
            max_lifetime: config.max_lifetime,
            // HikariCP's aliveBypassWindowMs: a connection used within the last 500 ms is
            // alive; pinging it anyway costs a third of point-select throughput.
            validation_bypass: Duration::from_millis(500),
            // Bounds rollback-on-return and close; a desynced stream must not hold its
            // unit forever (sqlx #563).
            return_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds an [`AsyncPool`]. Building does no I/O: connections open on demand.
#[derive(Debug)]
pub struct AsyncPoolBuilder {
    url: DatabaseUrl,
    budget: Budget,
    settings: Settings,
}

fn nonzero(d: Duration, what: &str) -> Duration {
    assert!(!d.is_zero(), "{what} must be more than zero");
    d
}

impl AsyncPoolBuilder {
    /// Longest TCP connect + handshake. Defaults to 10 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.settings.connect_timeout = nonzero(d, "connect_timeout");
        self
    }

    /// Longest wait for a connection before [`DbError::PoolTimeout`]. Defaults to 30 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.settings.pool_timeout = nonzero(d, "pool_timeout");
        self
    }

    /// Idle connections close after this. Defaults to 10 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.settings.idle_timeout = nonzero(d, "idle_timeout");
        self
    }

    /// Connections close after this age. Defaults to 30 min.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        self.settings.max_lifetime = nonzero(d, "max_lifetime");
        self
    }

    /// An idle connection is pinged before reuse only when it sat idle longer than this.
    /// Defaults to 500 ms. `Duration::ZERO` pings every time.
    pub fn validation_bypass(mut self, d: Duration) -> Self {
        self.settings.validation_bypass = d;
        self
    }

    /// Bounds the work done when a connection comes back (rollback, validation, close).
    /// Defaults to 5 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn return_timeout(mut self, d: Duration) -> Self {
        self.settings.return_timeout = nonzero(d, "return_timeout");
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
            settings: Settings::default(),
        }
    }

    /// A pool set up from a validated [`Config`] (DESIGN §5), on `budget`.
    ///
    /// # Errors
    ///
    /// [`DbError::Config`] naming `DATABASE_URL` when it is not set.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn from_config(config: &Config, budget: Budget) -> Result<AsyncPool, DbError> {
        let url = config.database_url.clone().ok_or_else(|| {
            ConfigError::custom(
                "DATABASE_URL",
                "",
                "it is not set (`cargo xtask run` starts a private MariaDB and sets it)",
            )
        })?;
        Ok(AsyncPool::builder(url, budget)
            .connect_timeout(config.connect_timeout)
            .pool_timeout(config.pool_timeout)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(config.max_lifetime)
            .build())
    }
}
