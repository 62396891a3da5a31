//! The command line and the settings it resolves to.
//!
//! Every flag is also an environment variable, and the flag wins. The database variables
//! (`DATABASE_URL`, `MAX_CONNECTIONS`, `DB_*`) are read by [`db_budget::Config::from_lookup`]
//! with the flags layered over the environment, so they are validated in one place and
//! their errors look the same everywhere: `invalid NAME="value": why; expected …`.
//!
//! Nothing here reads the process environment directly: [`Settings::from_args_and_lookup`]
//! takes the environment as a lookup function, so tests parse settings without touching
//! (or racing on) the real environment. `main` passes `std::env::var`.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use db_budget::{Config, ConfigError, DatabaseUrl};

/// `server [serve] [FLAGS]` or `server token <PLAYER_ID>`.
///
/// `Debug` shows no secret: see [`Flags`].
#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    about = "The game server: JSON API and WebSocket on LISTEN_ADDR, admin pages on ADMIN_ADDR, \
             one connection budget of MAX_CONNECTIONS for all database access."
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags (each also an environment variable).
    #[command(flatten)]
    pub flags: Flags,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API and the admin listener until SIGINT or SIGTERM (the default).
    Serve,
    /// Print the bearer token of a player (signed with SERVER_SECRET).
    Token {
        /// The player's id.
        player_id: u64,
    },
}

/// The flags. All are optional: an absent flag falls back to its environment variable,
/// then to its default. Values are validated by [`Settings::resolve`], not by clap, so
/// that an error names the environment variable whichever way the value came in.
///
/// `Debug` shows `--secret` as `***` and `--database-url` with its password replaced by
/// `***` (the whole URL when it does not parse, since then the password cannot be told
/// apart from the rest).
#[derive(Clone, Default, clap::Args)]
pub struct Flags {
    /// API listener address [env: LISTEN_ADDR] [default: 0.0.0.0:8080]
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Admin listener address (health, metrics, dashboard) [env: ADMIN_ADDR] [default: 127.0.0.1:9090]
    #[arg(long, global = true, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Key that signs player tokens, at least 16 bytes; prefer the environment, since flags show in `ps` [env: SERVER_SECRET] [required]
    #[arg(long, global = true, value_name = "SECRET")]
    pub secret: Option<String>,
    /// Connections of the database server left for others (admins, tools, other apps) [env: DB_RESERVED_CONNECTIONS] [default: 10]
    #[arg(long, global = true, value_name = "N")]
    pub reserved_connections: Option<String>,
    /// Instances of this server sharing the database server; multiplies the budget in the startup check [env: DB_INSTANCES] [default: 1]
    #[arg(long, global = true, value_name = "N")]
    pub instances: Option<String>,
    /// Longest wait for in-flight requests at shutdown [env: SHUTDOWN_TIMEOUT] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// Hour (0-23) at which the game day starts [env: DAY_RESET_HOUR] [default: 0]
    #[arg(long, global = true, value_name = "HOUR")]
    pub day_reset_hour: Option<String>,
    /// Offset of the game day's zone from UTC in minutes (-840..=840) [env: DAY_UTC_OFFSET_MINUTES] [default: 0]
    #[arg(
        long,
        global = true,
        value_name = "MINUTES",
        allow_hyphen_values = true
    )]
    pub day_utc_offset_minutes: Option<String>,
    /// Daily quests handed to each player (1-32) [env: QUESTS_PER_DAY] [default: 3]
    #[arg(long, global = true, value_name = "N")]
    pub quests_per_day: Option<String>,
    /// mysql://user:password@host:port/database[?socket=/path] [env: DATABASE_URL] [required]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// The budget: physical database connections, both pools together [env: MAX_CONNECTIONS] [default: 20]
    #[arg(long, global = true, value_name = "N")]
    pub max_connections: Option<String>,
    /// TCP connect + handshake timeout [env: DB_CONNECT_TIMEOUT] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_connect_timeout: Option<String>,
    /// Longest wait for a database connection [env: DB_POOL_TIMEOUT] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_pool_timeout: Option<String>,
    /// Idle connections close after this [env: DB_IDLE_TIMEOUT] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_idle_timeout: Option<String>,
    /// Connections close at this age [env: DB_MAX_LIFETIME] [default: 30m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_max_lifetime: Option<String>,
    /// A connection held longer is reported with its call site [env: DB_LEAK_THRESHOLD] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_leak_threshold: Option<String>,
    /// Slower statements are logged with their SQL [env: DB_SLOW_QUERY] [default: 200ms]
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_slow_query: Option<String>,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new flag cannot be forgotten here.
        let Flags {
            listen,
            admin_listen,
            secret,
            reserved_connections,
            instances,
            shutdown_timeout,
            day_reset_hour,
            day_utc_offset_minutes,
            quests_per_day,
            database_url,
            max_connections,
            db_connect_timeout,
            db_pool_timeout,
            db_idle_timeout,
            db_max_lifetime,
            db_leak_threshold,
            db_slow_query,
        } = self;
        f.debug_struct("Flags")
            .field("listen", listen)
            .field("admin_listen", admin_listen)
            .field("secret", &secret.as_ref().map(|_| Redacted("***")))
            .field("reserved_connections", reserved_connections)
            .field("instances", instances)
            .field("shutdown_timeout", shutdown_timeout)
            .field("day_reset_hour", day_reset_hour)
            .field("day_utc_offset_minutes", day_utc_offset_minutes)
            .field("quests_per_day", quests_per_day)
            .field(
                "database_url",
                &database_url.as_deref().map(redacted_database_url),
            )
            .field("max_connections", max_connections)
            .field("db_connect_timeout", db_connect_timeout)
            .field("db_pool_timeout", db_pool_timeout)
            .field("db_idle_timeout", db_idle_timeout)
            .field("db_max_lifetime", db_max_lifetime)
            .field("db_leak_threshold", db_leak_threshold)
            .field("db_slow_query", db_slow_query)
            .finish()
    }
}

/// A value shown as-is by `Debug`, without quotes.
struct Redacted<T>(T);

impl<T: fmt::Display> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `raw` with its password replaced by `***`, or only `***` when it does not parse.
fn redacted_database_url(raw: &str) -> Redacted<String> {
    Redacted(match DatabaseUrl::parse(raw) {
        Ok(url) => url.to_string(),
        Err(_) => "*** (not a valid URL; hidden)".to_owned(),
    })
}

impl Flags {
    /// The flag that stands for database variable `name`, if it was given.
    fn database_override(&self, name: &str) -> Option<String> {
        let flag = match name {
            "DATABASE_URL" => &self.database_url,
            "MAX_CONNECTIONS" => &self.max_connections,
            "DB_CONNECT_TIMEOUT" => &self.db_connect_timeout,
            "DB_POOL_TIMEOUT" => &self.db_pool_timeout,
            "DB_IDLE_TIMEOUT" => &self.db_idle_timeout,
            "DB_MAX_LIFETIME" => &self.db_max_lifetime,
            "DB_LEAK_THRESHOLD" => &self.db_leak_threshold,
            "DB_SLOW_QUERY" => &self.db_slow_query,
            _ => &None,
        };
        flag.clone()
    }
}

/// The shortest accepted `SERVER_SECRET`, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The key that signs player tokens. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` after checking its length.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for `SERVER_SECRET` (not showing the value) when it is shorter
    /// than [`MIN_SECRET_BYTES`].
    pub fn new(value: impl Into<String>) -> Result<Secret, ConfigError> {
        let value = value.into();
        if value.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::custom(
                "SERVER_SECRET",
                "(hidden)",
                format!(
                    "it is {} bytes long; use at least {MIN_SECRET_BYTES} random bytes \
                     (e.g. the output of `openssl rand -hex 32`)",
                    value.len()
                ),
            ));
        }
        Ok(Secret(value))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

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
    /// Server connections left for others (`DB_RESERVED_CONNECTIONS`).
    pub reserved_connections: u32,
    /// Instances of this server on the same database server (`DB_INSTANCES`).
    pub instances: u32,
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

impl Cli {
    /// Parses a command line (the first item is the program name).
    ///
    /// # Errors
    ///
    /// clap's error for an unknown flag, a missing value, `--help` or `--version`.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(args)
    }

    /// The subcommand, `serve` when none was given.
    pub fn command(&self) -> Command {
        self.command.clone().unwrap_or(Command::Serve)
    }
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
        let get = |flag: &Option<String>, name: &str| flag.clone().or_else(|| lookup(name));
        let secret = resolve_secret(flags, &lookup)?;
        let db =
            Config::from_lookup(|name| flags.database_override(name).or_else(|| lookup(name)))?;
        if db.database_url.is_none() {
            return Err(ConfigError::custom(
                "DATABASE_URL",
                "",
                "it is not set; give mysql://user:password@host:port/database \
                 (`cargo xtask run` starts a private MariaDB and sets it)",
            ));
        }
        Ok(Settings {
            listen: addr(
                "LISTEN_ADDR",
                get(&flags.listen, "LISTEN_ADDR"),
                "0.0.0.0:8080",
            )?,
            admin_listen: addr(
                "ADMIN_ADDR",
                get(&flags.admin_listen, "ADMIN_ADDR"),
                "127.0.0.1:9090",
            )?,
            secret,
            reserved_connections: number(
                "DB_RESERVED_CONNECTIONS",
                get(&flags.reserved_connections, "DB_RESERVED_CONNECTIONS"),
                10,
                0..=100_000,
            )?,
            instances: number(
                "DB_INSTANCES",
                get(&flags.instances, "DB_INSTANCES"),
                1,
                1..=10_000,
            )?,
            shutdown_timeout: duration(
                "SHUTDOWN_TIMEOUT",
                get(&flags.shutdown_timeout, "SHUTDOWN_TIMEOUT"),
                Duration::from_secs(10),
            )?,
            day_reset_hour: number(
                "DAY_RESET_HOUR",
                get(&flags.day_reset_hour, "DAY_RESET_HOUR"),
                0,
                0..=23,
            )?,
            day_utc_offset_minutes: number(
                "DAY_UTC_OFFSET_MINUTES",
                get(&flags.day_utc_offset_minutes, "DAY_UTC_OFFSET_MINUTES"),
                0,
                -840..=840,
            )?,
            quests_per_day: number(
                "QUESTS_PER_DAY",
                get(&flags.quests_per_day, "QUESTS_PER_DAY"),
                3,
                1..=retention::MAX_QUESTS_PER_DAY,
            )?,
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

fn addr(name: &'static str, raw: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
    let raw = raw.unwrap_or_else(|| default.to_owned());
    raw.trim().parse().map_err(|_| {
        ConfigError::custom(
            name,
            &raw,
            "it is not an address; expected IP:PORT, e.g. 0.0.0.0:8080 or [::1]:8080 (port 0 picks a free port)",
        )
    })
}

fn number<T>(
    name: &'static str,
    raw: Option<String>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = raw else {
        return Ok(default);
    };
    let reason = || {
        format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        )
    };
    let n: T = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::custom(name, &raw, reason()))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(ConfigError::custom(name, &raw, reason()))
    }
}

fn duration(
    name: &'static str,
    raw: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    db_budget::parse_duration(&raw).map_err(|why| {
        ConfigError::custom(
            name,
            &raw,
            format!("{why}; expected a positive duration with a unit: 250ms, 10s, 5m or 1h"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "mysql://app:pw@127.0.0.1:3307/game";
    const SECRET: &str = "0123456789abcdef0123";

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
    fn the_defaults_apply_when_only_the_required_variables_are_set() {
        let s = Settings::from_args_and_lookup(["server"], minimal()).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.admin_listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(s.reserved_connections, 10);
        assert_eq!(s.instances, 1);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(s.quests_per_day, 3);
        assert_eq!(s.db.max_connections, 20);
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
            ("DB_RESERVED_CONNECTIONS", "-1"),
            ("DB_INSTANCES", "0"),
            ("DB_INSTANCES", "two"),
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
