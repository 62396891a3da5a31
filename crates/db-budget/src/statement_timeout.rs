//! Statement timeouts both pools share: which server dialect a connection speaks, the
//! session statement that sets its limit once at open, the per-statement form of an
//! override, and the mapping of the server's "time limit exceeded" errors.
//!
//! The limit is enforced by the server, so a statement that runs out of time ends with
//! an ordinary error packet and its connection stays in step and pooled:
//!
//! - **MariaDB**: `max_statement_time` (seconds, fractions allowed), for every
//!   statement, error 1969. A per-call override is `SET STATEMENT max_statement_time = N
//!   FOR <statement>`, which MariaDB 10.11 prepares like the statement itself (checked on
//!   the binary protocol both drivers use by `tests/statement_timeout.rs`). MariaDB
//!   documents stored procedures as excluded, and 10.11 behaves so: a `CALL` runs on
//!   past the limit (a `SLEEP` inside is cut short without an error), bounded by the
//!   client's backstop only (`tests/statement_timeout.rs`).
//! - **MySQL**: `max_execution_time` (milliseconds) covers read-only `SELECT`s only,
//!   and not those inside stored programs; error 3024. A per-call override is the
//!   optimizer hint `SELECT /*+ MAX_EXECUTION_TIME(N) */ …`, added only to a statement
//!   that starts with `SELECT`. Other statements have no server-side limit there: only
//!   the client's backstop bounds them.
//!
//! A server that does not answer at all is bounded by the client's backstop: the limit
//! plus [`PoolSettings::statement_timeout_margin`](crate::PoolSettings), after which the
//! connection is closed (a [`DbError::StatementTimeout`] with [`StoppedBy::Client`]).

use std::borrow::Cow;
use std::panic::Location;
use std::time::Duration;

use crate::error::{DbError, StoppedBy};

/// The SQL dialect of the server a connection talks to, read from `VERSION()` when the
/// connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFlavor {
    /// MariaDB: `max_statement_time`, every statement.
    MariaDb,
    /// MySQL: `max_execution_time`, `SELECT` only.
    MySql,
}

impl ServerFlavor {
    /// The statement that asks the server for its version string; its answer goes to
    /// [`ServerFlavor::from_version`].
    pub const VERSION_QUERY: &'static str = "SELECT VERSION()";

    /// MariaDB when the version string says so (`10.11.6-MariaDB-0+deb12u1`), else MySQL.
    pub fn from_version(version: &str) -> ServerFlavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            ServerFlavor::MariaDb
        } else {
            ServerFlavor::MySql
        }
    }

    /// The statement that sets the session's limit, run once when a connection opens
    /// (and on the blocking side after each session reset). `Duration::ZERO` sets
    /// "no limit".
    pub fn session_statement(self, limit: Duration) -> String {
        match self {
            ServerFlavor::MariaDb => {
                format!("SET SESSION max_statement_time = {}", seconds(limit))
            }
            ServerFlavor::MySql => format!("SET SESSION max_execution_time = {}", millis(limit)),
        }
    }

    /// `sql` to run under `limit` instead of the session's: MariaDB's `SET STATEMENT …
    /// FOR`, MySQL's optimizer hint (a `SELECT` only; other statements are returned as
    /// they are).
    pub fn with_limit(self, sql: &str, limit: Duration) -> Cow<'_, str> {
        match self {
            ServerFlavor::MariaDb => Cow::Owned(format!(
                "SET STATEMENT max_statement_time = {} FOR {sql}",
                seconds(limit)
            )),
            ServerFlavor::MySql => match select_keyword_end(sql) {
                Some(end) => Cow::Owned(format!(
                    "{} /*+ MAX_EXECUTION_TIME({}) */{}",
                    &sql[..end],
                    millis(limit),
                    &sql[end..]
                )),
                None => Cow::Borrowed(sql),
            },
        }
    }
}

/// What a checkout's statements run under: the server's dialect, the limit set on the
/// session when the connection opened, and the backstop's margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementLimits {
    /// The server's dialect.
    pub flavor: ServerFlavor,
    /// The session's limit (`DB_STATEMENT_TIMEOUT`); zero: none.
    pub session: Duration,
    /// The client waits this much longer than the limit before it gives up on the
    /// server and closes the connection.
    pub margin: Duration,
}

impl StatementLimits {
    /// The SQL to send for `sql` when the caller asked for `limit` (an override, or
    /// the session's): `sql` itself when it equals the session's, or when `sql` is a
    /// transaction statement (`BEGIN`, `COMMIT`, …; not every server takes a limit on
    /// those, and they do not run long).
    pub fn statement<'s>(&self, sql: &'s str, limit: Duration) -> Cow<'s, str> {
        if limit == self.session || crate::sql::tx_control(sql).is_some() {
            Cow::Borrowed(sql)
        } else {
            self.flavor.with_limit(sql, limit)
        }
    }

    /// How long the client waits for a statement under `limit` before it closes the
    /// connection: the limit plus the margin, or `None` (no backstop) for no limit.
    pub fn backstop(&self, limit: Duration) -> Option<Duration> {
        (!limit.is_zero()).then(|| limit + self.margin)
    }
}

/// `true` for the server's "statement ran past its time limit": 1969 (MariaDB,
/// `ER_STATEMENT_TIMEOUT`), 3024 (MySQL, `ER_QUERY_TIMEOUT`). The connection is fine.
pub fn is_statement_timeout_code(code: u16) -> bool {
    matches!(code, 1969 | 3024)
}

/// `e` as a [`DbError::StatementTimeout`] stopped by the server when it is the server's
/// time-limit error, else `e` unchanged.
pub fn classify(e: DbError, limit: Duration, site: &'static Location<'static>) -> DbError {
    match e {
        DbError::Query {
            code: Some(code),
            cause,
            ..
        } if is_statement_timeout_code(code) => DbError::StatementTimeout {
            limit,
            site,
            stopped_by: StoppedBy::Server,
            cause: Some(cause),
        },
        e => e,
    }
}

/// MariaDB's form: seconds with up to six decimals, trailing zeros dropped.
fn seconds(d: Duration) -> String {
    let micros = d.as_micros();
    let (whole, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:06}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// MySQL's form: whole milliseconds, at least 1 for a nonzero limit (0 means none).
fn millis(d: Duration) -> u128 {
    if d.is_zero() { 0 } else { d.as_millis().max(1) }
}

/// The end of the leading `SELECT` keyword of `sql` (after leading whitespace), when
/// `sql` starts with one.
fn select_keyword_end(sql: &str) -> Option<usize> {
    let start = sql.len() - sql.trim_start().len();
    let end = start + "SELECT".len();
    let keyword = sql.get(start..end)?;
    let next = sql[end..].chars().next();
    (keyword.eq_ignore_ascii_case("SELECT")
        && next.is_none_or(|c| !c.is_alphanumeric() && c != '_'))
    .then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: StatementLimits = StatementLimits {
        flavor: ServerFlavor::MariaDb,
        session: Duration::from_secs(10),
        margin: Duration::from_secs(2),
    };

    #[test]
    fn the_flavor_is_read_from_the_version_string() {
        assert_eq!(
            ServerFlavor::from_version("10.11.19-MariaDB-0+deb12u1"),
            ServerFlavor::MariaDb
        );
        assert_eq!(
            ServerFlavor::from_version("5.5.5-10.6.12-MariaDB-log"),
            ServerFlavor::MariaDb
        );
        assert_eq!(
            ServerFlavor::from_version("8.0.36-0ubuntu0.22.04.1"),
            ServerFlavor::MySql
        );
    }

    #[test]
    fn the_session_statement_speaks_each_dialect_in_its_unit() {
        let d = Duration::from_millis(1500);
        assert_eq!(
            ServerFlavor::MariaDb.session_statement(d),
            "SET SESSION max_statement_time = 1.5"
        );
        assert_eq!(
            ServerFlavor::MySql.session_statement(d),
            "SET SESSION max_execution_time = 1500"
        );
        assert_eq!(
            ServerFlavor::MariaDb.session_statement(Duration::ZERO),
            "SET SESSION max_statement_time = 0"
        );
        assert_eq!(
            ServerFlavor::MariaDb.session_statement(Duration::from_micros(250)),
            "SET SESSION max_statement_time = 0.00025"
        );
    }

    #[test]
    fn an_override_wraps_the_statement_and_the_session_limit_leaves_it_alone() {
        let sql = "SELECT SLEEP(?)";
        assert_eq!(MARIADB.statement(sql, Duration::from_secs(10)), sql);
        assert_eq!(
            MARIADB.statement(sql, Duration::from_secs(1)),
            "SET STATEMENT max_statement_time = 1 FOR SELECT SLEEP(?)"
        );
        assert_eq!(
            MARIADB.statement(sql, Duration::ZERO),
            "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(?)"
        );
        assert_eq!(
            MARIADB.statement("COMMIT", Duration::from_secs(1)),
            "COMMIT"
        );
    }

    #[test]
    fn on_mysql_only_a_select_takes_the_hint() {
        let d = Duration::from_secs(2);
        assert_eq!(
            ServerFlavor::MySql.with_limit("  select id FROM t", d),
            "  select /*+ MAX_EXECUTION_TIME(2000) */ id FROM t"
        );
        assert_eq!(
            ServerFlavor::MySql.with_limit("UPDATE t SET v = 1", d),
            "UPDATE t SET v = 1"
        );
        assert_eq!(
            ServerFlavor::MySql.with_limit("SELECTED", d),
            "SELECTED",
            "not the SELECT keyword"
        );
    }

    #[test]
    fn the_backstop_is_the_limit_plus_the_margin_and_none_without_a_limit() {
        assert_eq!(
            MARIADB.backstop(Duration::from_secs(1)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(MARIADB.backstop(Duration::ZERO), None);
    }

    #[test]
    fn the_servers_time_limit_errors_become_a_statement_timeout_and_others_do_not() {
        let site = Location::caller();
        let limit = Duration::from_secs(1);
        for code in [1969, 3024] {
            let e = classify(DbError::query(Some(code), None, "interrupted"), limit, site);
            assert!(
                matches!(
                    e,
                    DbError::StatementTimeout {
                        stopped_by: StoppedBy::Server,
                        ..
                    }
                ),
                "{code}: {e:?}"
            );
            assert!(e.is_statement_timeout());
        }
        let other = classify(DbError::query(Some(1317), None, "killed"), limit, site);
        assert_eq!(other.code(), Some(1317));
    }
}
