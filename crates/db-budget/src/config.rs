//! Configuration from the environment ([`VARIABLES`]), validated at startup.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::allocation::HandOver;
use crate::bulkhead::{BulkheadSpec, parse_bulkheads};
use crate::url::DatabaseUrl;

/// One environment variable the pools read: its name, default, meaning and accepted
/// form. This table is the one place each of them is written: [`Config::default`] parses
/// the defaults, the server's `--help` shows them, and a tidy test checks the README's
/// configuration table against it.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The environment variable.
    pub name: &'static str,
    /// Its default, as written in the README (`none` when there is none).
    pub default: &'static str,
    /// What it sets, in a few words (the server's `--help`).
    pub meaning: &'static str,
    /// What a valid value looks like (used in error messages).
    pub accepts: &'static str,
}

/// The accepted form of every duration variable, as error messages show it.
pub const ACCEPTS_DURATION: &str = "a positive duration with a unit: 250ms, 10s, 5m or 1h";

/// The accepted form of a duration variable that `0` turns off.
pub const ACCEPTS_DURATION_OR_OFF: &str =
    "0 (off) or a positive duration with a unit: 250ms, 10s, 5m or 1h";

/// Every variable [`Config::from_env`] reads, in README order.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "DATABASE_URL",
        default: "none",
        meaning: "The database server: mysql://user:password@host:port/database[?socket=/path]",
        accepts: "mysql://user:password@host:port/database, optionally ?socket=/path/to/mysqld.sock",
    },
    Variable {
        name: "MAX_CONNECTIONS",
        default: "20",
        meaning: "The budget: physical database connections, both pools together",
        accepts: "a whole number from 1 to 10000",
    },
    Variable {
        name: "DB_CONNECT_TIMEOUT",
        default: "10s",
        meaning: "TCP connect + handshake timeout",
        accepts: ACCEPTS_DURATION,
    },
    Variable {
        name: "DB_POOL_TIMEOUT",
        default: "30s",
        meaning: "Longest wait for a database connection",
        accepts: ACCEPTS_DURATION,
    },
    Variable {
        name: "DB_IDLE_TIMEOUT",
        // Short, so that the sync side's idle connections (r2d2 reaps every 30 s) never
        // meet the server's wait_timeout (28800 s by default).
        default: "10s",
        meaning: "Idle connections close after this",
        accepts: ACCEPTS_DURATION,
    },
    Variable {
        name: "DB_MAX_LIFETIME",
        default: "30m",
        meaning: "Connections close at this age (async side: each up to 5 % earlier, at random)",
        accepts: ACCEPTS_DURATION,
    },
    Variable {
        name: "DB_KEEPALIVE",
        default: "2m",
        meaning: "Idle connections idle this long are pinged in the background; 0 turns it off",
        accepts: ACCEPTS_DURATION_OR_OFF,
    },
    Variable {
        name: "DB_STATEMENT_TIMEOUT",
        default: "10s",
        meaning: "Longest a statement may run, enforced by the database server; 0 turns it off",
        accepts: ACCEPTS_DURATION_OR_OFF,
    },
    Variable {
        name: "DB_LEAK_THRESHOLD",
        default: "30s",
        meaning: "A connection held longer is reported with its call site",
        accepts: ACCEPTS_DURATION,
    },
    Variable {
        name: "DB_SLOW_QUERY",
        default: "200ms",
        meaning: "Slower statements are logged with their SQL",
        accepts: ACCEPTS_DURATION,
    },
    Variable {
        name: "DB_MAX_WAITERS",
        default: "0",
        meaning: "Callers allowed to wait per side; one more fails at once (0: no limit)",
        accepts: "a whole number from 0 to 1000000",
    },
    Variable {
        name: "DB_BULKHEADS",
        default: "none",
        meaning: "Per-module floors and caps of checkouts inside the budget: name=floor..cap,...",
        accepts: "none, or name=floor..cap[,name=floor..cap]… with floor ≤ cap ≤ MAX_CONNECTIONS and the floors adding up to at most MAX_CONNECTIONS",
    },
    Variable {
        name: "DB_HANDOVER",
        default: "damped",
        meaning: "When a connection changes side: damped (shares follow demand) or eager (the old per-request policy)",
        accepts: "damped or eager",
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
    /// Idle connections idle this long are pinged in the background (async side);
    /// zero: never.
    pub keepalive: Duration,
    /// Longest a statement may run (the server stops it; see
    /// [`PoolSettings::statement_timeout`](crate::PoolSettings)); zero: no limit.
    pub statement_timeout: Duration,
    /// A checkout held longer is logged once with its call site.
    pub leak_threshold: Duration,
    /// Statements slower than this are logged with their SQL text (no values).
    pub slow_query: Duration,
    /// Callers allowed to wait for a connection on each side; `None`: no limit. One
    /// more gets [`DbError::Shed`](crate::DbError::Shed) at once.
    pub max_waiters: Option<u32>,
    /// When a connection changes side ([`HandOver`]).
    pub hand_over: HandOver,
    /// Module bulkheads inside the budget (`DB_BULKHEADS`); empty: none.
    pub bulkheads: Vec<BulkheadSpec>,
}

impl Default for Config {
    /// The `default` column of [`VARIABLES`], parsed.
    fn default() -> Self {
        Config::from_lookup(|_| None).expect("every default of VARIABLES parses")
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
        // A variable not set is its default in VARIABLES, through the same parser.
        let value = |name: &str| lookup(name).unwrap_or_else(|| default_of(name).to_owned());
        let duration = |name| parse_duration_var(name, &value(name));
        let max_connections = parse_count("MAX_CONNECTIONS", &value("MAX_CONNECTIONS"), 10_000)?;
        let bulkheads = value("DB_BULKHEADS");
        let bulkheads = parse_bulkheads(&bulkheads, max_connections)
            .map_err(|reason| ConfigError::new("DB_BULKHEADS", &bulkheads, &reason))?;
        Ok(Config {
            database_url: lookup("DATABASE_URL")
                .map(|v| DatabaseUrl::parse(&v))
                .transpose()?,
            max_connections,
            connect_timeout: duration("DB_CONNECT_TIMEOUT")?,
            pool_timeout: duration("DB_POOL_TIMEOUT")?,
            idle_timeout: duration("DB_IDLE_TIMEOUT")?,
            max_lifetime: duration("DB_MAX_LIFETIME")?,
            keepalive: parse_duration_or_off("DB_KEEPALIVE", &value("DB_KEEPALIVE"))?,
            statement_timeout: parse_duration_or_off(
                "DB_STATEMENT_TIMEOUT",
                &value("DB_STATEMENT_TIMEOUT"),
            )?,
            leak_threshold: duration("DB_LEAK_THRESHOLD")?,
            slow_query: duration("DB_SLOW_QUERY")?,
            max_waiters: parse_max_waiters(&value("DB_MAX_WAITERS"))?,
            hand_over: parse_hand_over(&value("DB_HANDOVER"))?,
            bulkheads,
        })
    }
}

/// The `default` of variable `name` in [`VARIABLES`].
///
/// # Panics
///
/// When `name` is not in the table (a bug of this file, caught by its tests).
fn default_of(name: &str) -> &'static str {
    match VARIABLES.iter().find(|v| v.name == name) {
        Some(var) => var.default,
        None => panic!("{name} is not in VARIABLES"),
    }
}

fn parse_max_waiters(raw: &str) -> Result<Option<u32>, ConfigError> {
    let n = parse_whole_number(raw, 0..=1_000_000)
        .map_err(|reason| ConfigError::new("DB_MAX_WAITERS", raw, &reason))?;
    Ok((n > 0).then_some(n))
}

fn parse_hand_over(raw: &str) -> Result<HandOver, ConfigError> {
    HandOver::parse(raw.trim())
        .ok_or_else(|| ConfigError::new("DB_HANDOVER", raw, "it is neither damped nor eager"))
}

fn parse_count(name: &'static str, raw: &str, max: u32) -> Result<u32, ConfigError> {
    parse_whole_number(raw, 1..=max).map_err(|reason| ConfigError::new(name, raw, &reason))
}

/// Parses a whole number in `range` (surrounding space is ignored; a leading `+` is
/// accepted).
///
/// # Errors
///
/// Why the text is not such a number: `it is empty`, `it is not a whole number`,
/// `it must be at least {start}` or `it must be at most {end}` (also for numbers too
/// large for `T`).
pub fn parse_whole_number<T>(raw: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    let v = raw.trim();
    if v.is_empty() {
        return Err("it is empty".to_owned());
    }
    let too_small = || format!("it must be at least {}", range.start());
    let too_large = || format!("it must be at most {}", range.end());
    match v.parse::<T>() {
        Ok(n) if n < *range.start() => Err(too_small()),
        Ok(n) if n > *range.end() => Err(too_large()),
        Ok(n) => Ok(n),
        // A whole number `T` cannot hold: out of range on its side.
        Err(_) => match v.strip_prefix('-') {
            Some(digits) if is_digits(digits) => Err(too_small()),
            None if is_digits(v.strip_prefix('+').unwrap_or(v)) => Err(too_large()),
            _ => Err("it is not a whole number".to_owned()),
        },
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_duration_var(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(raw).map_err(|reason| ConfigError::new(name, raw, reason))?;
    if d > MAX_DURATION {
        return Err(ConfigError::new(name, raw, "it must be at most 24h"));
    }
    Ok(d)
}

/// A duration variable where `0` (with or without a unit) means off: `Duration::ZERO`.
///
/// # Errors
///
/// A [`ConfigError`] naming `name` when `raw` is neither `0` nor a duration of at most
/// 24 h.
pub fn parse_duration_or_off(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let v = raw.trim();
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !digits.is_empty() && digits.bytes().all(|b| b == b'0') {
        return match parse_duration(&format!("1{}", &v[digits.len()..])) {
            Ok(_) | Err("it has no unit") => Ok(Duration::ZERO),
            Err(reason) => Err(ConfigError::new(name, raw, reason)),
        };
    }
    parse_duration_var(name, raw)
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
        assert_eq!(c.hand_over, HandOver::Damped);
        assert_eq!(c.max_waiters, None, "no limit unless asked");
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
        let durations = VARIABLES
            .iter()
            .filter(|v| v.accepts == ACCEPTS_DURATION || v.accepts == ACCEPTS_DURATION_OR_OFF);
        for var in durations {
            let zero_is_off = var.accepts == ACCEPTS_DURATION_OR_OFF;
            for bad in bad_durations {
                if zero_is_off && matches!(bad, "0s" | "0") {
                    continue; // `0` turns it off: see the test below
                }
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
        for bad in ["retention", "a=5..4", "a=1..21", "a=15..20,b=6..6"] {
            let err = with(&[("DB_BULKHEADS", bad)]).unwrap_err();
            assert_eq!(err.variable(), "DB_BULKHEADS", "{bad:?}");
            assert!(err.to_string().contains("name=floor..cap"), "{err}");
        }
        for bad in ["", "-1", "many", "1000001"] {
            let err = with(&[("DB_MAX_WAITERS", bad)]).unwrap_err();
            assert_eq!(err.variable(), "DB_MAX_WAITERS", "{bad:?}");
            assert!(err.to_string().contains("from 0 to 1000000"), "{err}");
        }
        for bad in ["", "Eager", "lazy", "damped,eager"] {
            let err = with(&[("DB_HANDOVER", bad)]).unwrap_err();
            assert_eq!(err.variable(), "DB_HANDOVER", "{bad:?}");
            assert!(err.to_string().contains("damped or eager"), "{err}");
        }
    }

    #[test]
    fn a_statement_timeout_of_zero_turns_it_off_and_other_values_are_durations() {
        assert_eq!(
            with(&[]).unwrap().statement_timeout,
            Duration::from_secs(10)
        );
        for off in ["0", "0s", " 0ms ", "00"] {
            let c = with(&[("DB_STATEMENT_TIMEOUT", off)]).unwrap();
            assert_eq!(c.statement_timeout, Duration::ZERO, "{off:?}");
        }
        let c = with(&[("DB_STATEMENT_TIMEOUT", "1500ms")]).unwrap();
        assert_eq!(c.statement_timeout, Duration::from_millis(1500));
        for bad in ["0parsecs", "-0", "off", "1", "25h"] {
            let err = with(&[("DB_STATEMENT_TIMEOUT", bad)]).unwrap_err();
            assert_eq!(err.variable(), "DB_STATEMENT_TIMEOUT", "{bad:?}");
            assert!(err.to_string().contains("0 (off) or a positive"), "{err}");
        }
    }

    #[test]
    fn whole_numbers_are_read_in_their_range_with_the_reason_for_a_refusal() {
        assert_eq!(parse_whole_number(" 7 ", 1..=10), Ok(7u32));
        assert_eq!(parse_whole_number("+7", 1..=10), Ok(7u32));
        assert_eq!(parse_whole_number("-840", -840..=840), Ok(-840i32));
        for (raw, why) in [
            ("", "it is empty"),
            ("1.5", "it is not a whole number"),
            ("-", "it is not a whole number"),
            ("0", "it must be at least 1"),
            ("-3", "it must be at least 1"),
            ("11", "it must be at most 10"),
            ("99999999999", "it must be at most 10"),
        ] {
            assert_eq!(
                parse_whole_number::<u32>(raw, 1..=10),
                Err(why.to_owned()),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_valid_environment_is_read_in_full() {
        let c = with(&[
            ("DATABASE_URL", "mysql://app:pw@127.0.0.1:3307/game"),
            ("MAX_CONNECTIONS", "8"),
            ("DB_POOL_TIMEOUT", "250ms"),
            ("DB_IDLE_TIMEOUT", "5s"),
            ("DB_HANDOVER", "eager"),
            ("DB_MAX_WAITERS", "200"),
            ("DB_BULKHEADS", "retention=2..6"),
        ])
        .unwrap();
        assert_eq!(c.bulkheads.len(), 1);
        assert_eq!((c.bulkheads[0].floor, c.bulkheads[0].cap), (2, 6));
        assert_eq!(c.max_waiters, Some(200));
        assert_eq!(c.hand_over, HandOver::Eager);
        assert_eq!(c.max_connections, 8);
        assert_eq!(c.pool_timeout, Duration::from_millis(250));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.database_url.unwrap().port(), 3307);
    }
}
