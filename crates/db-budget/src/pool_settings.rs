//! The timings both pools share.

use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::url::DatabaseUrl;

/// Timings of one pool. Both `db-async` and `db-sync` take these (their builders set
/// them one by one, or all at once from the environment with
/// [`PoolSettings::from_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSettings {
    /// Longest TCP connect + handshake (`DB_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Longest wait for a connection before a pool timeout (`DB_POOL_TIMEOUT`).
    pub pool_timeout: Duration,
    /// Idle connections close after this (`DB_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// Connections close after this age (`DB_MAX_LIFETIME`).
    pub max_lifetime: Duration,
    /// An idle connection is pinged before reuse only when it sat idle longer than this.
    pub validation_bypass: Duration,
}

impl Default for PoolSettings {
    /// The defaults, as [`Config::default`] has them.
    fn default() -> Self {
        PoolSettings::from_config(&Config::default())
    }
}

impl PoolSettings {
    /// The pool timings of a validated [`Config`].
    pub fn from_config(config: &Config) -> Self {
        PoolSettings {
            connect_timeout: config.connect_timeout,
            pool_timeout: config.pool_timeout,
            idle_timeout: config.idle_timeout,
            max_lifetime: config.max_lifetime,
            // HikariCP's aliveBypassWindowMs: a connection used within the last 500 ms is
            // alive; pinging it anyway costs a third of point-select throughput.
            validation_bypass: Duration::from_millis(500),
        }
    }
}

impl Config {
    /// `DATABASE_URL`, which a pool cannot do without.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `DATABASE_URL` when it is not set.
    pub fn require_database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        self.database_url.clone().ok_or_else(|| {
            ConfigError::custom(
                "DATABASE_URL",
                "",
                "it is not set (`cargo xtask run` starts a private MariaDB and sets it)",
            )
        })
    }
}
