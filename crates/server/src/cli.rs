//! The command line: `server [serve] [FLAGS]` or `server token <PLAYER_ID>`.
//!
//! Every flag stands for an environment variable of [`crate::variables::VARIABLES`] or
//! [`db_budget::VARIABLES`], whose help text and default come from that table. clap only
//! collects the text: values are validated by [`Settings::resolve`], so that an error
//! names the environment variable whichever way the value came in.
//!
//! [`Settings::resolve`]: crate::settings::Settings::resolve

use std::ffi::OsString;
use std::fmt;

use clap::{Parser, Subcommand};
use db_budget::DatabaseUrl;

use crate::variables::help;

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
/// then to its default. Values are validated by [`Settings::resolve`].
///
/// `Debug` shows `--secret` and `--admin-token` as `***` and `--database-url` with its password replaced by
/// `***` (the whole URL when it does not parse, since then the password cannot be told
/// apart from the rest).
#[derive(Clone, Default, clap::Args)]
pub struct Flags {
    /// `LISTEN_ADDR`.
    #[arg(long, global = true, value_name = "ADDR", help = help("LISTEN_ADDR"))]
    pub listen: Option<String>,
    /// `ADMIN_ADDR`.
    #[arg(long, global = true, value_name = "ADDR", help = help("ADMIN_ADDR"))]
    pub admin_listen: Option<String>,
    /// `SERVER_SECRET`.
    #[arg(long, global = true, value_name = "SECRET", help = help("SERVER_SECRET"))]
    pub secret: Option<String>,
    /// `ADMIN_TOKEN`.
    #[arg(long, global = true, value_name = "TOKEN", help = help("ADMIN_TOKEN"))]
    pub admin_token: Option<String>,
    /// `DB_RESERVED_CONNECTIONS`.
    #[arg(long, global = true, value_name = "N", help = help("DB_RESERVED_CONNECTIONS"))]
    pub reserved_connections: Option<String>,
    /// `DB_INSTANCES`.
    #[arg(long, global = true, value_name = "N", help = help("DB_INSTANCES"))]
    pub instances: Option<String>,
    /// `DB_FLEET_BUDGET`.
    #[arg(long, global = true, value_name = "N", help = help("DB_FLEET_BUDGET"))]
    pub fleet_budget: Option<String>,
    /// `DB_SERVER_VIEW_INTERVAL`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_SERVER_VIEW_INTERVAL"))]
    pub server_view_interval: Option<String>,
    /// `SHUTDOWN_TIMEOUT`.
    #[arg(long, global = true, value_name = "DURATION", help = help("SHUTDOWN_TIMEOUT"))]
    pub shutdown_timeout: Option<String>,
    /// `DAY_RESET_HOUR`.
    #[arg(long, global = true, value_name = "HOUR", help = help("DAY_RESET_HOUR"))]
    pub day_reset_hour: Option<String>,
    /// `DAY_UTC_OFFSET_MINUTES`.
    #[arg(
        long,
        global = true,
        value_name = "MINUTES",
        allow_hyphen_values = true,
        help = help("DAY_UTC_OFFSET_MINUTES")
    )]
    pub day_utc_offset_minutes: Option<String>,
    /// `QUESTS_PER_DAY`.
    #[arg(long, global = true, value_name = "N", help = help("QUESTS_PER_DAY"))]
    pub quests_per_day: Option<String>,
    /// `DATABASE_URL`.
    #[arg(long, global = true, value_name = "URL", help = help("DATABASE_URL"))]
    pub database_url: Option<String>,
    /// `MAX_CONNECTIONS`.
    #[arg(long, global = true, value_name = "N", help = help("MAX_CONNECTIONS"))]
    pub max_connections: Option<String>,
    /// `DB_CONNECT_TIMEOUT`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_CONNECT_TIMEOUT"))]
    pub db_connect_timeout: Option<String>,
    /// `DB_POOL_TIMEOUT`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_POOL_TIMEOUT"))]
    pub db_pool_timeout: Option<String>,
    /// `DB_IDLE_TIMEOUT`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_IDLE_TIMEOUT"))]
    pub db_idle_timeout: Option<String>,
    /// `DB_MAX_LIFETIME`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_MAX_LIFETIME"))]
    pub db_max_lifetime: Option<String>,
    /// `DB_KEEPALIVE`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_KEEPALIVE"))]
    pub db_keepalive: Option<String>,
    /// `DB_STATEMENT_TIMEOUT`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_STATEMENT_TIMEOUT"))]
    pub db_statement_timeout: Option<String>,
    /// `DB_LEAK_THRESHOLD`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_LEAK_THRESHOLD"))]
    pub db_leak_threshold: Option<String>,
    /// `DB_SLOW_QUERY`.
    #[arg(long, global = true, value_name = "DURATION", help = help("DB_SLOW_QUERY"))]
    pub db_slow_query: Option<String>,
    /// `DB_MAX_WAITERS`.
    #[arg(long, global = true, value_name = "N", help = help("DB_MAX_WAITERS"))]
    pub db_max_waiters: Option<String>,
    /// `DB_BULKHEADS`.
    #[arg(long, global = true, value_name = "LIST", help = help("DB_BULKHEADS"))]
    pub db_bulkheads: Option<String>,
    /// `DB_HANDOVER`.
    #[arg(long, global = true, value_name = "POLICY", help = help("DB_HANDOVER"))]
    pub db_handover: Option<String>,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new flag cannot be forgotten here.
        let Flags {
            listen,
            admin_listen,
            secret,
            admin_token,
            reserved_connections,
            instances,
            fleet_budget,
            server_view_interval,
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
            db_keepalive,
            db_statement_timeout,
            db_leak_threshold,
            db_slow_query,
            db_max_waiters,
            db_bulkheads,
            db_handover,
        } = self;
        f.debug_struct("Flags")
            .field("listen", listen)
            .field("admin_listen", admin_listen)
            .field("secret", &secret.as_ref().map(|_| Redacted("***")))
            .field(
                "admin_token",
                &admin_token.as_ref().map(|_| Redacted("***")),
            )
            .field("reserved_connections", reserved_connections)
            .field("instances", instances)
            .field("fleet_budget", fleet_budget)
            .field("server_view_interval", server_view_interval)
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
            .field("db_keepalive", db_keepalive)
            .field("db_statement_timeout", db_statement_timeout)
            .field("db_leak_threshold", db_leak_threshold)
            .field("db_slow_query", db_slow_query)
            .field("db_max_waiters", db_max_waiters)
            .field("db_bulkheads", db_bulkheads)
            .field("db_handover", db_handover)
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
    /// The flag that stands for variable `name` (of either table), if it was given.
    pub fn value(&self, name: &str) -> Option<String> {
        let flag = match name {
            "LISTEN_ADDR" => &self.listen,
            "ADMIN_ADDR" => &self.admin_listen,
            "SERVER_SECRET" => &self.secret,
            "ADMIN_TOKEN" => &self.admin_token,
            "DB_RESERVED_CONNECTIONS" => &self.reserved_connections,
            "DB_INSTANCES" => &self.instances,
            "DB_FLEET_BUDGET" => &self.fleet_budget,
            "DB_SERVER_VIEW_INTERVAL" => &self.server_view_interval,
            "SHUTDOWN_TIMEOUT" => &self.shutdown_timeout,
            "DAY_RESET_HOUR" => &self.day_reset_hour,
            "DAY_UTC_OFFSET_MINUTES" => &self.day_utc_offset_minutes,
            "QUESTS_PER_DAY" => &self.quests_per_day,
            "DATABASE_URL" => &self.database_url,
            "MAX_CONNECTIONS" => &self.max_connections,
            "DB_CONNECT_TIMEOUT" => &self.db_connect_timeout,
            "DB_POOL_TIMEOUT" => &self.db_pool_timeout,
            "DB_IDLE_TIMEOUT" => &self.db_idle_timeout,
            "DB_MAX_LIFETIME" => &self.db_max_lifetime,
            "DB_KEEPALIVE" => &self.db_keepalive,
            "DB_STATEMENT_TIMEOUT" => &self.db_statement_timeout,
            "DB_LEAK_THRESHOLD" => &self.db_leak_threshold,
            "DB_SLOW_QUERY" => &self.db_slow_query,
            "DB_MAX_WAITERS" => &self.db_max_waiters,
            "DB_BULKHEADS" => &self.db_bulkheads,
            "DB_HANDOVER" => &self.db_handover,
            _ => &None,
        };
        flag.clone()
    }
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
