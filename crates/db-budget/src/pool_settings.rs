//! The timings both pools share.

use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::url::DatabaseUrl;

/// Timings of one pool. Both `db-async` and `db-sync` take these: their builders have
/// the same setters as `PoolSettings` (each documents its default and panics), or take
/// them all at once, e.g. from the environment with [`PoolSettings::from_config`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use db_budget::PoolSettings;
///
/// let settings = PoolSettings::default().pool_timeout(Duration::from_secs(5));
/// assert_eq!(settings.pool_timeout, Duration::from_secs(5));
/// assert_eq!(settings.idle_timeout, Duration::from_secs(10)); // the default
/// ```
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
    /// Longest a statement may run, enforced by the server (`DB_STATEMENT_TIMEOUT`);
    /// zero: no limit.
    pub statement_timeout: Duration,
    /// How much longer than a statement's limit the client waits before it gives up on
    /// the server and closes the connection.
    pub statement_timeout_margin: Duration,
    /// Idle connections idle this long are pinged in the background (`DB_KEEPALIVE`);
    /// zero: never.
    pub keepalive: Duration,
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
            statement_timeout: config.statement_timeout,
            // The server checks its timer between rows and inside waits: its error
            // comes within milliseconds of the limit. Two seconds more is a server
            // that does not answer at all.
            statement_timeout_margin: Duration::from_secs(2),
            keepalive: config.keepalive,
        }
    }

    /// A random part of the max lifetime, from zero to 5 % of it, drawn anew for each
    /// connection: it retires that much earlier, so that connections opened together
    /// (a fleet deployed at once) do not all reconnect at once.
    pub fn lifetime_jitter(&self) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        // Randomly keyed per `RandomState`: enough to spread retirements.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.max_lifetime.as_nanos() as u64);
        let fraction = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        self.max_lifetime.mul_f64(0.05 * fraction)
    }

    /// The limits a connection of this pool runs its statements under, on a server of
    /// `flavor`.
    pub fn statement_limits(&self, flavor: crate::ServerFlavor) -> crate::StatementLimits {
        crate::StatementLimits {
            flavor,
            session: self.statement_timeout,
            margin: self.statement_timeout_margin,
        }
    }

    /// `d`, which must be more than zero (every pool timing but `validation_bypass`).
    ///
    /// # Panics
    ///
    /// If `d` is zero, with a message naming `what`.
    pub fn nonzero(d: Duration, what: &str) -> Duration {
        assert!(!d.is_zero(), "{what} must be more than zero");
        d
    }

    crate::pool_settings_setters!(s => s);
}

/// The setters of the [`PoolSettings`] timings, written once for every type that holds
/// them: `PoolSettings` itself and both pool builders. `$s => $place` names, inside the
/// value `$s` being built, the `PoolSettings` to set.
#[doc(hidden)]
#[macro_export]
macro_rules! pool_settings_setters {
    ($s:ident => $place:expr) => {
        $crate::pool_settings_setters! { @set $s => $place, nonzero connect_timeout,
            /// Longest TCP connect + handshake (`DB_CONNECT_TIMEOUT`). Defaults to 10 s.
            ///
            /// A connect to a server that accepts but answers nothing fails after it and
            /// gives its budget unit back. It also bounds the validation ping of an idle
            /// connection (one that overruns it is closed), and on the blocking side the
            /// pool's other exchanges: the `ROLLBACK` on return and the farewell on close
            /// (the async side bounds those by its `return_timeout`). Statements have
            /// their own bound (the blocking side's `io_timeout`).
            ///
            /// # Panics
            ///
            /// If `d` is zero.
        }
        $crate::pool_settings_setters! { @set $s => $place, nonzero pool_timeout,
            /// Longest wait for a connection before a pool timeout
            /// (`DbError::PoolTimeout`, `DB_POOL_TIMEOUT`). Defaults to 30 s.
            ///
            /// # Panics
            ///
            /// If `d` is zero.
        }
        $crate::pool_settings_setters! { @set $s => $place, nonzero idle_timeout,
            /// Idle connections close after this (`DB_IDLE_TIMEOUT`). Defaults to 10 s.
            ///
            /// Each side checks at intervals (the blocking side every half of this, or
            /// of the keepalive if shorter, while its pool is idle, and every 30 s while
            /// it is in use), so a connection may idle up to half as long again (30 s on
            /// a busy blocking pool); without a keepalive, keep that below the server's
            /// `wait_timeout`.
            ///
            /// # Panics
            ///
            /// If `d` is zero.
        }
        $crate::pool_settings_setters! { @set $s => $place, nonzero max_lifetime,
            /// Connections close at their first return (or reaper run) after this age
            /// (`DB_MAX_LIFETIME`). Defaults to 30 min. Each connection retires
            /// up to 5 % earlier, at random
            /// ([`PoolSettings::lifetime_jitter`]), so that connections opened together
            /// do not reconnect together.
            ///
            /// # Panics
            ///
            /// If `d` is zero.
        }
        $crate::pool_settings_setters! { @set $s => $place, any validation_bypass,
            /// An idle connection is pinged before reuse only when it sat idle longer
            /// than this (HikariCP's `aliveBypassWindowMs`): pinging every checkout costs
            /// a round trip per statement for code that checks out per statement.
            /// Defaults to 500 ms. `Duration::ZERO` pings every reused connection.
        }
        $crate::pool_settings_setters! { @set $s => $place, any keepalive,
            /// Idle connections idle this long (since their last use or ping) are
            /// pinged in the background (`DB_KEEPALIVE`), so that a firewall's idle cut
            /// or the server's `wait_timeout` never hands a caller a dead connection.
            /// Defaults to 2 min. `Duration::ZERO` turns it off. Both sides ping; the
            /// blocking side only while nobody uses its pool (on a busy one, a connection
            /// the server dropped is found by the ping at checkout, as before). It
            /// matters only when `idle_timeout` is longer than this.
        }
        $crate::pool_settings_setters! { @set $s => $place, any statement_timeout,
            /// Longest a statement may run (`DB_STATEMENT_TIMEOUT`). Defaults to 10 s.
            /// `Duration::ZERO` turns it off.
            ///
            /// Enforced by the database server, set once per connection when it opens
            /// (MariaDB's `max_statement_time`, every statement; MySQL's
            /// `max_execution_time`, `SELECT` only), so a statement that runs out of time
            /// fails with `DbError::StatementTimeout` and its connection stays pooled. A
            /// checkout can give one statement another limit (`with_statement_timeout`).
            /// The client gives up on a server that does not answer at all after the
            /// limit plus [`statement_timeout_margin`](Self::statement_timeout_margin)
            /// and closes that connection.
        }
        $crate::pool_settings_setters! { @set $s => $place, nonzero statement_timeout_margin,
            /// How much longer than a statement's limit the client waits for the server
            /// before it closes the connection (the backstop against a frozen or
            /// partitioned server). Defaults to 2 s.
            ///
            /// # Panics
            ///
            /// If `d` is zero.
        }
    };
    (@set $s:ident => $place:expr, $check:ident $name:ident, $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn $name(mut self, d: ::std::time::Duration) -> Self {
            let $s = &mut self;
            $place.$name = $crate::pool_settings_setters!(@check $check $name d);
            self
        }
    };
    (@check nonzero $name:ident $d:ident) => {
        $crate::PoolSettings::nonzero($d, stringify!($name))
    };
    (@check any $name:ident $d:ident) => {
        $d
    };
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PoolSettings;

    #[test]
    fn each_setter_sets_its_timing_and_only_validation_bypass_may_be_zero() {
        let s = PoolSettings::default()
            .connect_timeout(Duration::from_secs(1))
            .pool_timeout(Duration::from_secs(2))
            .idle_timeout(Duration::from_secs(3))
            .max_lifetime(Duration::from_secs(4))
            .validation_bypass(Duration::ZERO)
            .statement_timeout(Duration::ZERO)
            .statement_timeout_margin(Duration::from_millis(300));
        assert_eq!(
            (
                s.connect_timeout,
                s.pool_timeout,
                s.idle_timeout,
                s.max_lifetime
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(4)
            )
        );
        assert_eq!(s.validation_bypass, Duration::ZERO);
        assert_eq!(s.statement_timeout, Duration::ZERO);
        assert_eq!(s.statement_timeout_margin, Duration::from_millis(300));
        assert_eq!(
            PoolSettings::default().statement_timeout,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_lifetime_jitter_is_up_to_five_percent_and_differs_between_connections() {
        let s = PoolSettings::default().max_lifetime(Duration::from_secs(1000));
        let draws: Vec<Duration> = (0..50).map(|_| s.lifetime_jitter()).collect();
        assert!(
            draws.iter().all(|d| *d <= Duration::from_secs(50)),
            "{draws:?}"
        );
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
    }

    #[test]
    #[should_panic(expected = "idle_timeout must be more than zero")]
    fn a_zero_timeout_panics_naming_the_setting() {
        let _ = PoolSettings::default().idle_timeout(Duration::ZERO);
    }
}
