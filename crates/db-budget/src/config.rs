//! Configuration from the environment ([`VARIABLES`]), validated at startup.

use std::fmt;
use std::time::Duration;

use crate::url::DatabaseUrl;

/// One environment variable the pools read: its name, default and meaning. The README's
/// configuration table is checked against this list by a tidy test.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The environment variable.
    pub name: &'static str,
    /// Its default, as written in the README (`none` when there is none).
    pub default: &'static str,
    /// What a valid value looks like (used in error messages).
    pub accepts: &'static str,
}

const DURATION: &str = "a positive duration with a unit: 250ms, 10s, 5m or 1h";

/// Every variable [`Config::from_env`] reads, in README order.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "DATABASE_URL",
        default: "none",
        accepts: "mysql://user:password@host:port/database, optionally ?socket=/path/to/mysqld.sock",
    },
    Variable {
        name: "MAX_CONNECTIONS",
        default: "20",
        accepts: "a whole number from 1 to 10000",
    },
    Variable {
        name: "DB_CONNECT_TIMEOUT",
        default: "10s",
        accepts: DURATION,
    },
    Variable {
        name: "DB_POOL_TIMEOUT",
        default: "30s",
        accepts: DURATION,
    },
    Variable {
        name: "DB_IDLE_TIMEOUT",
        default: "10s",
        accepts: DURATION,
    },
    Variable {
        name: "DB_MAX_LIFETIME",
        default: "30m",
        accepts: DURATION,
    },
    Variable {
        name: "DB_LEAK_THRESHOLD",
        default: "30s",
        accepts: DURATION,
    },
    Variable {
        name: "DB_SLOW_QUERY",
        default: "200ms",
        accepts: DURATION,
    },
];

/// Durations above this are surely typos (a pool timeout of a week hangs callers).
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The validated settings of both pools and the budget.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Where the server is. `None` means: nobody said; `cargo xtask run` starts a private
    /// MariaDB and sets it.
    pub database_url: Option<DatabaseUrl>,
    /// The budget: physical connections, both sides together.
    pub max_connections: u32,
    /// Longest TCP connect + handshake.
    pub connect_timeout: Duration,
    /// Longest wait for a connection before a [`DbError::PoolTimeout`](crate::DbError).
    pub pool_timeout: Duration,
    /// Idle connections close after this; keep it below the server's `wait_timeout`.
    pub idle_timeout: Duration,
    /// Connections close after this age, at their next return.
    pub max_lifetime: Duration,
    /// A checkout held longer is logged once with its call site.
    pub leak_threshold: Duration,
    /// Statements slower than this are logged with their SQL text (no values).
    pub slow_query: Duration,
}

impl Default for Config {
    /// The defaults (the `default` column of [`VARIABLES`]).
    fn default() -> Self {
        Config {
            database_url: None,
            max_connections: 20,
            connect_timeout: Duration::from_secs(10),
            pool_timeout: Duration::from_secs(30),
            // Short, so that the sync side's idle connections (r2d2 reaps every 30 s)
            // never meet the server's wait_timeout (28800 s by default).
            idle_timeout: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(30 * 60),
            leak_threshold: Duration::from_secs(30),
            slow_query: Duration::from_millis(200),
        }
    }
}

impl Config {
    /// Reads every variable of [`VARIABLES`] from the process environment.
    ///
    /// # Errors
    ///
    /// The first bad value, as a [`ConfigError`] naming the variable and the accepted form.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Like [`Config::from_env`], with the variables looked up by `lookup` (tests,
    /// command-line flags layered over the environment).
    ///
    /// # Errors
    ///
    /// The first bad value, as a [`ConfigError`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(v) = lookup("DATABASE_URL") {
            c.database_url = Some(DatabaseUrl::parse(&v)?);
        }
        if let Some(v) = lookup("MAX_CONNECTIONS") {
            c.max_connections = parse_count("MAX_CONNECTIONS", &v, 10_000)?;
        }
        let durations: [(&'static str, &mut Duration); 6] = [
            ("DB_CONNECT_TIMEOUT", &mut c.connect_timeout),
            ("DB_POOL_TIMEOUT", &mut c.pool_timeout),
            ("DB_IDLE_TIMEOUT", &mut c.idle_timeout),
            ("DB_MAX_LIFETIME", &mut c.max_lifetime),
            ("DB_LEAK_THRESHOLD", &mut c.leak_threshold),
            ("DB_SLOW_QUERY", &mut c.slow_query),
        ];
        for (name, slot) in durations {
            if let Some(v) = lookup(name) {
                *slot = parse_duration_var(name, &v)?;
            }
        }
        Ok(c)
    }
}

fn parse_count(name: &'static str, raw: &str, max: u32) -> Result<u32, ConfigError> {
    let v = raw.trim();
    let err = |reason: &str| ConfigError::new(name, raw, reason);
    if v.is_empty() {
        return Err(err("it is empty"));
    }
    let n: i64 = v.parse().map_err(|_| err("it is not a whole number"))?;
    if n <= 0 {
        return Err(err("it must be at least 1"));
    }
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| err(&format!("it must be at most {max}")))
}

fn parse_duration_var(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(raw).map_err(|reason| ConfigError::new(name, raw, reason))?;
    if d > MAX_DURATION {
        return Err(ConfigError::new(name, raw, "it must be at most 24h"));
    }
    Ok(d)
}

/// Parses `250ms`, `10s`, `5m`, `1h` (a whole number and a unit; surrounding space is
/// ignored). Zero is refused: a zero timeout fails every call.
///
/// # Errors
///
/// Why the text is not such a duration.
pub fn parse_duration(raw: &str) -> Result<Duration, &'static str> {
    let v = raw.trim();
    if v.is_empty() {
        return Err("it is empty");
    }
    if v.starts_with('-') {
        return Err("it is negative");
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    if digits.is_empty() {
        return Err("it does not start with a number");
    }
    let n: u64 = digits.parse().map_err(|_| "the number is too large")?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "" => return Err("it has no unit"),
        _ => return Err("its unit is not one of ms, s, m, h"),
    };
    if d.is_zero() {
        return Err("it must be more than zero");
    }
    Ok(d)
}

/// A bad configuration value: which variable, what was wrong, and what it accepts.
///
/// The value is shown as given, except that anything shaped like a URL with a password
/// has the password replaced (in any variable, in case one was pasted into the wrong one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    variable: &'static str,
    shown_value: String,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, raw: &str, reason: &str) -> Self {
        // Redacted whatever the variable: a URL pasted into the wrong variable must not
        // print its password either.
        let shown_value = crate::url::redact(raw);
        ConfigError {
            variable,
            shown_value,
            reason: reason.to_owned(),
        }
    }

    /// A configuration error found outside this crate (e.g. a budget larger than the
    /// server allows), with the same message shape.
    pub fn custom(
        variable: &'static str,
        value: impl fmt::Display,
        reason: impl fmt::Display,
    ) -> Self {
        ConfigError {
            variable,
            shown_value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The environment variable at fault.
    pub fn variable(&self) -> &'static str {
        self.variable
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.variable, self.shown_value, self.reason
        )?;
        if let Some(var) = VARIABLES.iter().find(|v| v.name == self.variable) {
            write!(f, "; expected {}", var.accepts)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn nothing_set_gives_the_documented_defaults() {
        let c = with(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.max_connections, 20);
        assert_eq!(c.pool_timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.max_lifetime, Duration::from_secs(1800));
        assert_eq!(c.slow_query, Duration::from_millis(200));
    }

    #[test]
    fn durations_accept_the_documented_forms() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn every_bad_value_of_every_variable_names_the_variable() {
        let bad_durations = [
            "",
            "0s",
            "0",
            "-5s",
            "abc",
            "10",
            "10parsecs",
            "1.5s",
            "99999h",
        ];
        for var in VARIABLES.iter().filter(|v| v.name.starts_with("DB_")) {
            for bad in bad_durations {
                let err = with(&[(var.name, bad)]).unwrap_err();
                assert_eq!(err.variable(), var.name, "{bad:?}");
                let msg = err.to_string();
                assert!(msg.starts_with(&format!("invalid {}=", var.name)), "{msg}");
                assert!(msg.contains("250ms, 10s, 5m"), "{msg}");
            }
        }
        for bad in ["", "0", "-3", "twenty", "1.5", "10001", "99999999999"] {
            let err = with(&[("MAX_CONNECTIONS", bad)]).unwrap_err();
            assert_eq!(err.variable(), "MAX_CONNECTIONS", "{bad:?}");
            assert!(err.to_string().contains("whole number from 1 to 10000"));
        }
    }

    #[test]
    fn a_valid_environment_is_read_in_full() {
        let c = with(&[
            ("DATABASE_URL", "mysql://app:pw@127.0.0.1:3307/game"),
            ("MAX_CONNECTIONS", "8"),
            ("DB_POOL_TIMEOUT", "250ms"),
            ("DB_IDLE_TIMEOUT", "5s"),
        ])
        .unwrap();
        assert_eq!(c.max_connections, 8);
        assert_eq!(c.pool_timeout, Duration::from_millis(250));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.database_url.unwrap().port(), 3307);
    }
}
