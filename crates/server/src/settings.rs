//! The settings `serve` runs with, resolved from the command line and the environment.
//!
//! Every setting is a flag ([`crate::cli::Flags`]) or else an environment variable or
//! else the default of its table: [`crate::variables::VARIABLES`] for the server's own,
//! [`db_budget::VARIABLES`] for the database's (`DATABASE_URL`, `MAX_CONNECTIONS`,
//! `DB_*`). The database variables are read by [`db_budget::Config::from_lookup`] with
//! the flags layered over the environment, and the server's own through db-budget's
//! parsers, so they are validated in one place and their errors look the same
//! everywhere: `invalid NAME="value": …`, naming the variable and what it accepts.
//!
//! Nothing here reads the process environment directly: [`Settings::from_args_and_lookup`]
//! takes the environment as a lookup function, so tests parse settings without touching
//! (or racing on) the real environment. `main` passes `std::env::var`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use db_budget::{ACCEPTS_DURATION, Config, ConfigError};

use crate::cli::{Cli, Flags};
use crate::secret::{AdminToken, MIN_SECRET_BYTES, Secret};
use crate::variables::{Accepts, variable};

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// API listener (`LISTEN_ADDR`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Admin listener (`ADMIN_ADDR`).
    pub admin_listen: SocketAddr,
    /// Token signing key (`SERVER_SECRET`).
    pub secret: Secret,
    /// Bearer token of the admin listener's control routes (`ADMIN_TOKEN`); `None`
    /// (the default) turns them off: they answer 403.
    pub admin_token: Option<AdminToken>,
    /// Server connections left for others (`DB_RESERVED_CONNECTIONS`).
    pub reserved_connections: u32,
    /// Instances of this server on the same database server (`DB_INSTANCES`).
    pub instances: u32,
    /// Physical connections all instances together may hold, leased between them
    /// (`DB_FLEET_BUDGET`); 0 is off.
    pub fleet_budget: u32,
    /// Time between readings of the database server's own view of connections
    /// (`DB_SERVER_VIEW_INTERVAL`); zero is off.
    pub server_view_interval: Duration,
    /// Longest wait for in-flight requests at shutdown (`SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// Hour at which the game day starts (`DAY_RESET_HOUR`).
    pub day_reset_hour: u8,
    /// The game day's zone, minutes east of UTC (`DAY_UTC_OFFSET_MINUTES`).
    pub day_utc_offset_minutes: i32,
    /// Daily quests per player (`QUESTS_PER_DAY`).
    pub quests_per_day: usize,
    /// The budget and both pools (`DATABASE_URL`, `MAX_CONNECTIONS`, `DB_*`).
    pub db: Config,
}

/// Why the command line or the environment was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Not a valid command line (unknown flag, `--help`, `--version`): clap's own
    /// message and exit code.
    #[error(transparent)]
    Usage(#[from] clap::Error),
    /// A value is missing or wrong; the message names its variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Settings {
    /// Parses `args` (program name first) and resolves the serve settings with `lookup`
    /// standing for the environment.
    ///
    /// # Errors
    ///
    /// As [`Cli::try_parse_args`] and [`Settings::resolve`].
    pub fn from_args_and_lookup<I, T>(
        args: I,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_args(args)?;
        Ok(Settings::resolve(&cli.flags, lookup)?)
    }

    /// Resolves every setting: the flag if given, else `lookup(VARIABLE)`, else the
    /// default.
    ///
    /// # Errors
    ///
    /// The first missing or bad value, as a [`ConfigError`] naming its variable.
    pub fn resolve(
        flags: &Flags,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let given = |name: &str| flags.value(name).or_else(|| lookup(name));
        // The server's own variables fall back to their default in the table.
        let value = |name: &str| given(name).unwrap_or_else(|| variable(name).default.to_owned());
        let secret = resolve_secret(flags, &lookup)?;
        let admin_token = admin_token(given("ADMIN_TOKEN"), &secret)?;
        let db = Config::from_lookup(given)?;
        if db.database_url.is_none() {
            return Err(ConfigError::custom(
                "DATABASE_URL",
                "",
                "it is not set; give mysql://user:password@host:port/database \
                 (`cargo xtask run` starts a private MariaDB and sets it)",
            ));
        }
        let instances: u32 = number("DB_INSTANCES", value)?;
        let fleet_budget: u32 = number("DB_FLEET_BUDGET", value)?;
        let floors = u64::from(instances) * u64::from(db.max_connections);
        if fleet_budget > 0 && (u64::from(fleet_budget) <= floors || db.max_connections < 2) {
            return Err(ConfigError::custom(
                "DB_FLEET_BUDGET",
                fleet_budget,
                format!(
                    "it must be more than DB_INSTANCES × MAX_CONNECTIONS = {floors} (each \
                     instance keeps MAX_CONNECTIONS, at least 2, and leases from the rest)"
                ),
            ));
        }
        let server_view_interval = duration_or_off("DB_SERVER_VIEW_INTERVAL", value)?;
        // The reader's connection is one of the budget's; in a fleet the floor also
        // holds the control connection. The pools keep at least one.
        let needed = if fleet_budget > 0 { 3 } else { 2 };
        if !server_view_interval.is_zero() && db.max_connections < needed {
            return Err(ConfigError::custom(
                "DB_SERVER_VIEW_INTERVAL",
                value("DB_SERVER_VIEW_INTERVAL"),
                format!(
                    "the server-view reader takes one connection of the budget, and \
                     MAX_CONNECTIONS={} leaves the pools none; set MAX_CONNECTIONS to at \
                     least {needed} or DB_SERVER_VIEW_INTERVAL=0",
                    db.max_connections
                ),
            ));
        }
        // The floors are a guarantee only within the units the pools may use: the
        // server view's and a fleet's control connection are not theirs.
        let withheld = u32::from(!server_view_interval.is_zero()) + u32::from(fleet_budget > 0);
        let floors: u32 = db.bulkheads.iter().map(|b| b.floor).sum();
        if floors > 0 && floors > db.max_connections - withheld.min(db.max_connections) {
            return Err(ConfigError::custom(
                "DB_BULKHEADS",
                value("DB_BULKHEADS"),
                format!(
                    "the floors add up to {floors}, more than the {} connections of                      MAX_CONNECTIONS={} the pools may use ({withheld} taken by the                      server-view reader and the fleet's control connection)",
                    db.max_connections - withheld.min(db.max_connections),
                    db.max_connections
                ),
            ));
        }
        Ok(Settings {
            listen: addr("LISTEN_ADDR", value)?,
            admin_listen: addr("ADMIN_ADDR", value)?,
            secret,
            admin_token,
            reserved_connections: number("DB_RESERVED_CONNECTIONS", value)?,
            instances,
            fleet_budget,
            server_view_interval,
            shutdown_timeout: duration("SHUTDOWN_TIMEOUT", value)?,
            day_reset_hour: number("DAY_RESET_HOUR", value)?,
            day_utc_offset_minutes: number("DAY_UTC_OFFSET_MINUTES", value)?,
            quests_per_day: number("QUESTS_PER_DAY", value)?,
            db,
        })
    }
}

/// The token signing key alone (what `server token` needs).
///
/// # Errors
///
/// A [`ConfigError`] for `SERVER_SECRET` when it is missing or too short.
pub fn resolve_secret(
    flags: &Flags,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    match flags.secret.clone().or_else(|| lookup("SERVER_SECRET")) {
        Some(value) => Secret::new(value),
        None => Err(ConfigError::custom(
            "SERVER_SECRET",
            "",
            format!(
                "it is not set; it signs player tokens: set it to at least {MIN_SECRET_BYTES} \
                 random bytes (e.g. `export SERVER_SECRET=$(openssl rand -hex 32)`); \
                 `cargo xtask run` generates one for development"
            ),
        )),
    }
}

/// `ADMIN_TOKEN`, when given: at least 16 bytes, and not `SERVER_SECRET` (whoever holds
/// the key to the players' tokens need not hold the controls, and the other way round).
fn admin_token(given: Option<String>, secret: &Secret) -> Result<Option<AdminToken>, ConfigError> {
    let Some(value) = given else {
        return Ok(None);
    };
    if value.as_bytes() == secret.expose() {
        return Err(ConfigError::custom(
            "ADMIN_TOKEN",
            "(hidden)",
            "it is the same as SERVER_SECRET; give the control routes a token of their own \
             (e.g. `openssl rand -hex 32`)",
        ));
    }
    AdminToken::new(&value).map(Some)
}

fn addr(name: &'static str, value: impl Fn(&str) -> String) -> Result<SocketAddr, ConfigError> {
    debug_assert_eq!(variable(name).accepts, Accepts::Address);
    let raw = value(name);
    raw.trim().parse().map_err(|_| {
        ConfigError::custom(
            name,
            &raw,
            "it is not an address; expected IP:PORT, e.g. 0.0.0.0:8080 or [::1]:8080 (port 0 picks a free port)",
        )
    })
}

/// A whole number in the range of `name`'s table entry, by db-budget's parser.
fn number<T: TryFrom<i64>>(
    name: &'static str,
    value: impl Fn(&str) -> String,
) -> Result<T, ConfigError> {
    let Accepts::WholeNumber { min, max } = variable(name).accepts else {
        panic!("{name} is not a number in the table of variables");
    };
    let raw = value(name);
    let refused = || {
        ConfigError::custom(
            name,
            &raw,
            format!("expected a whole number from {min} to {max}"),
        )
    };
    let n = db_budget::parse_whole_number(&raw, min..=max).map_err(|_| refused())?;
    T::try_from(n).map_err(|_| refused())
}

/// A duration, by db-budget's parser.
fn duration(name: &'static str, value: impl Fn(&str) -> String) -> Result<Duration, ConfigError> {
    debug_assert_eq!(variable(name).accepts, Accepts::Duration);
    let raw = value(name);
    db_budget::parse_duration(&raw).map_err(|why| {
        ConfigError::custom(name, raw, format!("{why}; expected {ACCEPTS_DURATION}"))
    })
}

fn duration_or_off(
    name: &'static str,
    value: impl Fn(&str) -> String,
) -> Result<Duration, ConfigError> {
    debug_assert_eq!(variable(name).accepts, Accepts::DurationOrOff);
    db_budget::parse_duration_or_off(name, &value(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    const URL: &str = "mysql://app:pw@127.0.0.1:3307/game";
    const SECRET: &str = "0123456789abcdef0123";
    const ADMIN_TOKEN: &str = "admin-token-0123456789";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn minimal() -> impl Fn(&str) -> Option<String> {
        env(&[("DATABASE_URL", URL), ("SERVER_SECRET", SECRET)])
    }

    #[test]
    fn bulkhead_floors_that_need_the_server_view_s_connection_are_refused_naming_the_variable() {
        let lookup = |view: &'static str| {
            env(&[
                ("DATABASE_URL", URL),
                ("SERVER_SECRET", SECRET),
                ("MAX_CONNECTIONS", "6"),
                ("DB_BULKHEADS", "retention=4..6,legacy=2..6"),
                ("DB_SERVER_VIEW_INTERVAL", view),
            ])
        };
        let e = Settings::from_args_and_lookup(["server"], lookup("10s")).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("DB_BULKHEADS"), "{message}");
        assert!(message.contains("the floors add up to 6"), "{message}");
        let s = Settings::from_args_and_lookup(["server"], lookup("0")).unwrap();
        assert_eq!(
            s.db.bulkheads.len(),
            2,
            "without the reader all 6 are the pools'"
        );
    }

    #[test]
    fn the_defaults_apply_when_only_the_required_variables_are_set() {
        let s = Settings::from_args_and_lookup(["server"], minimal()).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.admin_listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(s.reserved_connections, 5);
        assert_eq!(s.instances, 1);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(s.server_view_interval, Duration::from_secs(10));
        assert_eq!(s.quests_per_day, 3);
        assert_eq!(s.db.max_connections, 20);
        assert!(
            s.admin_token.is_none(),
            "the control routes are off by default"
        );
    }

    #[test]
    fn a_flag_wins_over_its_environment_variable() {
        let lookup = env(&[
            ("DATABASE_URL", URL),
            ("SERVER_SECRET", SECRET),
            ("MAX_CONNECTIONS", "30"),
            ("LISTEN_ADDR", "127.0.0.1:1"),
            ("DB_INSTANCES", "4"),
        ]);
        let s = Settings::from_args_and_lookup(
            [
                "server",
                "serve",
                "--max-connections",
                "7",
                "--listen",
                "127.0.0.1:0",
            ],
            lookup,
        )
        .unwrap();
        assert_eq!(s.db.max_connections, 7);
        assert_eq!(s.listen.port(), 0);
        assert_eq!(
            s.instances, 4,
            "the environment still applies where no flag is given"
        );
    }

    #[test]
    fn every_variable_of_both_tables_resolves_from_its_flag() {
        use crate::variables::VARIABLES;
        // Each variable given as a flag, with a value different from its default.
        let flags = Flags {
            listen: Some("127.0.0.1:1".into()),
            admin_listen: Some("127.0.0.1:2".into()),
            secret: Some(SECRET.into()),
            admin_token: Some(ADMIN_TOKEN.into()),
            reserved_connections: Some("11".into()),
            instances: Some("2".into()),
            fleet_budget: Some("50".into()),
            server_view_interval: Some("0".into()),
            shutdown_timeout: Some("11s".into()),
            day_reset_hour: Some("5".into()),
            day_utc_offset_minutes: Some("-60".into()),
            quests_per_day: Some("4".into()),
            database_url: Some(URL.into()),
            max_connections: Some("21".into()),
            db_connect_timeout: Some("11s".into()),
            db_pool_timeout: Some("31s".into()),
            db_idle_timeout: Some("11s".into()),
            db_max_lifetime: Some("31m".into()),
            db_keepalive: Some("0".into()),
            db_statement_timeout: Some("0".into()),
            db_leak_threshold: Some("31s".into()),
            db_slow_query: Some("201ms".into()),
            db_max_waiters: Some("300".into()),
            db_bulkheads: Some("retention=1..4".into()),
            db_handover: Some("eager".into()),
        };
        let names = VARIABLES.iter().map(|v| v.name);
        let names: Vec<_> = names
            .chain(db_budget::VARIABLES.iter().map(|v| v.name))
            .collect();
        assert_eq!(names.len(), 25, "one flag per variable");
        for name in names {
            assert!(flags.value(name).is_some(), "{name} has no flag");
        }
        let s = Settings::resolve(&flags, |_| None).unwrap();
        assert_eq!(s.listen.port(), 1);
        assert_eq!(s.admin_listen.port(), 2);
        assert!(
            s.admin_token
                .as_ref()
                .is_some_and(|t| t.matches(ADMIN_TOKEN))
        );
        assert_eq!(s.reserved_connections, 11);
        assert_eq!(s.instances, 2);
        assert_eq!(s.fleet_budget, 50, "above 2 × 21");
        assert_eq!(s.shutdown_timeout, Duration::from_secs(11));
        assert_eq!(s.server_view_interval, Duration::ZERO);
        assert_eq!(s.day_reset_hour, 5);
        assert_eq!(s.day_utc_offset_minutes, -60);
        assert_eq!(s.quests_per_day, 4);
        assert_eq!(s.db.max_connections, 21);
        assert_eq!(s.db.slow_query, Duration::from_millis(201));
        assert_eq!(s.db.hand_over, db_budget::HandOver::Eager);
        assert_eq!(s.db.max_waiters, Some(300));
        assert_eq!(s.db.bulkheads.len(), 1);
        assert_eq!(s.db.statement_timeout, Duration::ZERO);
        assert_eq!(s.db.keepalive, Duration::ZERO);
    }

    #[test]
    fn flags_may_come_before_or_after_the_subcommand() {
        let a = Cli::try_parse_args(["server", "--instances", "2", "serve"]).unwrap();
        let b = Cli::try_parse_args(["server", "serve", "--instances", "2"]).unwrap();
        assert_eq!(a.flags.instances.as_deref(), Some("2"));
        assert_eq!(b.flags.instances.as_deref(), Some("2"));
        assert_eq!(a.command(), Command::Serve);
        let none = Cli::try_parse_args(["server"]).unwrap();
        assert_eq!(none.command(), Command::Serve);
        let token = Cli::try_parse_args(["server", "token", "42"]).unwrap();
        assert_eq!(token.command(), Command::Token { player_id: 42 });
    }

    #[test]
    fn a_missing_secret_is_refused_naming_the_variable() {
        let err =
            Settings::from_args_and_lookup(["server"], env(&[("DATABASE_URL", URL)])).unwrap_err();
        let SettingsError::Config(err) = err else {
            panic!("expected a config error, got {err:?}")
        };
        assert_eq!(err.variable(), "SERVER_SECRET");
        assert!(err.to_string().contains("it is not set"), "{err}");
    }

    #[test]
    fn a_short_secret_is_refused_without_showing_it() {
        let err = Settings::from_args_and_lookup(
            ["server"],
            env(&[("DATABASE_URL", URL), ("SERVER_SECRET", "hunter2")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SERVER_SECRET"), "{err}");
        assert!(err.contains("at least 16"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(format!("{:?}", Secret::new(SECRET).unwrap()), "Secret(***)");
    }

    #[test]
    fn a_missing_database_url_is_refused_naming_the_variable() {
        let err = Settings::from_args_and_lookup(["server"], env(&[("SERVER_SECRET", SECRET)]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid DATABASE_URL="), "{err}");
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (name, bad) in [
            ("LISTEN_ADDR", "localhost"),
            ("ADMIN_ADDR", "9090"),
            ("ADMIN_TOKEN", ""),
            ("ADMIN_TOKEN", "too-short"),
            // The same as SERVER_SECRET.
            ("ADMIN_TOKEN", SECRET),
            ("DB_RESERVED_CONNECTIONS", "-1"),
            ("DB_INSTANCES", "0"),
            ("DB_INSTANCES", "two"),
            ("DB_FLEET_BUDGET", "lots"),
            // Not above DB_INSTANCES × MAX_CONNECTIONS (1 × 20): nothing to lease.
            ("DB_FLEET_BUDGET", "20"),
            ("SHUTDOWN_TIMEOUT", "10"),
            ("SHUTDOWN_TIMEOUT", "0s"),
            ("DAY_RESET_HOUR", "24"),
            ("DAY_UTC_OFFSET_MINUTES", "900"),
            ("QUESTS_PER_DAY", "0"),
            ("MAX_CONNECTIONS", "0"),
            ("DB_POOL_TIMEOUT", "soon"),
        ] {
            let lookup = env(&[
                ("DATABASE_URL", URL),
                ("SERVER_SECRET", SECRET),
                (name, bad),
            ]);
            let err = Settings::from_args_and_lookup(["server"], lookup)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("invalid {name}=")),
                "{name}={bad}: {err}"
            );
        }
    }

    #[test]
    fn a_bad_flag_value_names_the_variable_too() {
        let err = Settings::from_args_and_lookup(["server", "--instances", "many"], minimal())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid DB_INSTANCES=\"many\""), "{err}");
    }

    #[test]
    fn debug_of_the_parsed_command_line_shows_neither_the_password_nor_the_secret() {
        let password = "pw-4f9c2e";
        let url = format!("mysql://app:{password}@127.0.0.1:3307/game");
        let cli = Cli::try_parse_args([
            "server",
            "serve",
            "--database-url",
            url.as_str(),
            "--secret",
            SECRET,
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .unwrap();
        let settings = Settings::resolve(&cli.flags, |_| None).unwrap();
        let garbled = Cli::try_parse_args([
            "server",
            "--database-url",
            "app:pw-4f9c2e@nowhere",
            "--secret",
            "short-pw-4f9c2e",
        ])
        .unwrap();

        for shown in [
            format!("{cli:?}"),
            format!("{:?}", cli.flags),
            format!("{settings:?}"),
            format!("{cli:#?}"),
            format!("{garbled:?}"),
        ] {
            assert!(!shown.contains(password), "{shown}");
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains(ADMIN_TOKEN), "{shown}");
            assert!(
                shown.contains("127.0.0.1:3307") || shown.contains("***"),
                "{shown}"
            );
        }
        assert!(format!("{:?}", cli.flags).contains("mysql://app:***@127.0.0.1:3307/game"));
    }

    #[test]
    fn the_database_password_never_shows_in_debug_output() {
        let s = Settings::from_args_and_lookup(["server"], minimal()).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(":pw@"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
