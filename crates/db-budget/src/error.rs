//! The one error type both pools return.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::cause::WaitCause;
use crate::config::ConfigError;
use crate::holders::Holder;
use crate::side::Side;
use crate::snapshot::Snapshot;

/// A boxed cause, kept so callers can inspect it (`std::error::Error::source`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong between a caller and the database, for both call styles.
///
/// Messages never contain SQL text, parameter values or credentials: a [`DbError::Query`]
/// shows the server's error code and SQLSTATE only (the server's own message can quote
/// row values, so it stays in the [`source`](std::error::Error::source) for code that
/// needs it, and out of `Display`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// No connection could be had before the pool timeout (`DB_POOL_TIMEOUT`). The
    /// message says why callers wait, names the longest holders by call site and
    /// carries the budget's state when the caller gave up (invariant I4):
    ///
    /// `timed out after 10s waiting for a database connection (async): leaked holders —
    /// src/legacy/saved_games.rs:88 held 12.3s (×6); budget 20/20 in use (…)`
    #[error(
        "timed out after {} {} ({side}): {cause}{}; {snapshot}",
        HumanDuration(*.waited),
        .phase.describe(),
        HoldersText(.holders)
    )]
    PoolTimeout {
        /// The side the caller was on.
        side: Side,
        /// What the caller was doing when time ran out.
        phase: TimeoutPhase,
        /// How long the caller waited in all.
        waited: Duration,
        /// The budget as it was at that moment (its `slow_statements` left empty).
        snapshot: Box<Snapshot>,
        /// Why this side's callers wait (see [`WaitCause`] for the rule).
        cause: WaitCause,
        /// The longest current holders by call site, longest first (at most three).
        holders: Vec<Holder>,
    },

    /// Load shedding: `limit` callers of this side already wait for a connection
    /// (`DB_MAX_WAITERS`), so this one is refused at once instead of joining the queue.
    /// An HTTP layer answers 503 with `Retry-After`.
    #[error(
        "{limit} callers already wait for a database connection on the {side} side \
         (DB_MAX_WAITERS): refused at once"
    )]
    Shed {
        /// The side the caller was on.
        side: Side,
        /// `DB_MAX_WAITERS`.
        limit: u32,
    },

    /// The budget is suspended ([`Budget::suspend`](crate::Budget::suspend), e.g. for a
    /// database failover) and was not resumed before the pool timeout: the caller waited
    /// in front of the gate, holding nothing, or was still queued for a connection (it
    /// would have been sent back to the gate with it). An HTTP layer answers 503 with
    /// `Retry-After`. Not counted as a pool timeout: no connection was short.
    #[error(
        "the connection budget is suspended (a database failover or an incident): gave up \
         after {} on the {side} side; it serves again once resumed",
        HumanDuration(*.waited)
    )]
    Suspended {
        /// The side the caller was on.
        side: Side,
        /// How long the caller waited in all.
        waited: Duration,
    },

    /// Opening a connection failed (refused, access denied, handshake error). A server
    /// that keeps answering "too many connections" until the deadline gives a
    /// [`DbError::PoolTimeout`] in phase [`TimeoutPhase::Connect`] instead (counted
    /// as an acquire timeout, on both sides).
    #[error("could not connect to the database server: {cause}")]
    Connect {
        /// The driver's error.
        #[source]
        cause: BoxError,
    },

    /// The server rejected a statement.
    #[error("database error {} (SQLSTATE {})", OrUnknown(.code.map(u32::from)), OrUnknown(.sqlstate.as_deref()))]
    Query {
        /// The server's error number, e.g. 1062 for a duplicate key.
        code: Option<u16>,
        /// The five-character SQLSTATE.
        sqlstate: Option<String>,
        /// The driver's error (its message may quote row values: do not show it to clients).
        #[source]
        cause: BoxError,
    },

    /// The connection broke while a statement ran (server restarted, connection killed,
    /// network error). The statement may or may not have taken effect.
    #[error("lost the connection to the database server")]
    ConnectionLost {
        /// The driver's error.
        #[source]
        cause: BoxError,
    },

    /// A statement ran past its time limit (`DB_STATEMENT_TIMEOUT`, or the checkout's
    /// override for that statement). Stopped by the server, the connection is in step
    /// and stays pooled; stopped by the client (the server did not answer by the limit
    /// plus the backstop's margin), the connection is closed on return, as a cut-off
    /// statement's is. Either way the statement may or may not have taken effect if it
    /// wrote (MariaDB rolls back the statement itself, not an open transaction).
    #[error(
        "the statement at {site} ran past its time limit of {} ({})",
        HumanDuration(*.limit),
        .stopped_by.describe()
    )]
    StatementTimeout {
        /// The limit the statement ran under.
        limit: Duration,
        /// The call site of the statement's helper.
        site: &'static Location<'static>,
        /// Who gave up on it.
        stopped_by: StoppedBy,
        /// The server's error (1969 on MariaDB, 3024 on MySQL); `None` when the client
        /// gave up.
        #[source]
        cause: Option<BoxError>,
    },

    /// `fetch_one` found no row.
    #[error("the query returned no rows")]
    RowNotFound,

    /// A column could not be read into the requested Rust type.
    #[error("could not decode the query result: {cause}")]
    Decode {
        /// The driver's error (names the column and types, not values).
        #[source]
        cause: BoxError,
    },

    /// Bad configuration; see [`ConfigError`].
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The pool (or the whole budget) was closed, e.g. during shutdown.
    #[error("the database pool is closed")]
    Closed,

    /// A blocking call was made on the thread that drives a current-thread tokio
    /// runtime, where waiting would stall every task, including the ones that would
    /// give a connection back.
    #[error(
        "blocking database call on a current-thread tokio runtime's thread: \
         run it inside tokio::task::spawn_blocking, or use db-async"
    )]
    BlockingNotAllowed,

    /// A statement on this connection was cut off (its future was dropped, or its
    /// deadline passed, before the server's answer was read), or the connection was
    /// handed out raw: its protocol state is unknown, so the helpers refuse every later
    /// statement. Drop it (the pool closes it) and acquire another.
    #[error(
        "this connection runs no more statements: one was cut off before its result was \
         read, or the connection was used raw; drop it and acquire another"
    )]
    Interrupted,

    /// A process-wide pool or budget was asked for, none is installed, and building one
    /// from the environment would make a second budget, because this process already
    /// built its own (e.g. a server's `Application`). Install the one the process uses
    /// (`install_global`), or use the handle you built.
    #[error(
        "no process-wide {what} is installed, and this process built its own connection \
         budget: building another from the environment would be a second budget; \
         install the process's own with install_global"
    )]
    NotInstalled {
        /// What was asked for: "connection budget", "blocking pool", "async pool".
        what: &'static str,
    },

    /// A process-wide pool or budget is installed already; there is one per process.
    #[error("a process-wide {what} is already installed; there is one per process")]
    AlreadyInstalled {
        /// What was installed twice.
        what: &'static str,
    },
}

impl DbError {
    /// Builds a [`DbError::Query`] from a server error.
    pub fn query(code: Option<u16>, sqlstate: Option<String>, cause: impl Into<BoxError>) -> Self {
        DbError::Query {
            code,
            sqlstate,
            cause: cause.into(),
        }
    }

    /// The server's error number, when the server rejected a statement.
    pub fn code(&self) -> Option<u16> {
        match self {
            DbError::Query { code, .. } => *code,
            _ => None,
        }
    }

    /// `true` for an error number that means the connection is gone although it
    /// arrives as an ordinary error packet: the server is shutting down (1053), the
    /// connection was killed (1927, MariaDB) or disconnected for inactivity (4031,
    /// MySQL 8), a network read/write failed or was aborted (1158–1161, 1184), or the
    /// client library's "server has gone away" family, which proxies (ProxySQL,
    /// MaxScale) relay as error packets: 2006 (`CR_SERVER_GONE_ERROR`), 2013
    /// (`CR_SERVER_LOST`), 2055 (`CR_SERVER_LOST_EXTENDED`). Both pools close a
    /// connection that saw one, never pool it, and report [`DbError::ConnectionLost`].
    pub fn is_connection_gone_code(code: u16) -> bool {
        matches!(
            code,
            1053 | 1927 | 4031 | 1158..=1161 | 1184 | 2006 | 2013 | 2055
        )
    }

    /// `true` for a duplicate-key violation (1062, SQLSTATE 23000).
    pub fn is_duplicate_key(&self) -> bool {
        self.code() == Some(1062)
    }

    /// `true` when retrying the whole transaction may succeed: deadlock (1213) or lock
    /// wait timeout (1205).
    pub fn is_transient(&self) -> bool {
        matches!(self.code(), Some(1213 | 1205))
    }

    /// `true` for a [`DbError::StatementTimeout`]: the statement ran out of time. An
    /// HTTP layer maps it to 503 too, but it is the statement's (or the database's
    /// load), not the pool's: retrying the same statement at once rarely helps.
    pub fn is_statement_timeout(&self) -> bool {
        matches!(self, DbError::StatementTimeout { .. })
    }

    /// `true` when no connection was available in time, the budget is suspended, or the
    /// connection was lost: the database is overloaded, unreachable or being switched,
    /// not the request wrong. An HTTP layer maps these to 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::PoolTimeout { .. }
                | DbError::Shed { .. }
                | DbError::Suspended { .. }
                | DbError::Connect { .. }
                | DbError::ConnectionLost { .. }
                | DbError::Closed
        )
    }
}

/// Who stopped a statement that ran past its limit ([`DbError::StatementTimeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoppedBy {
    /// The server (`max_statement_time`, `max_execution_time`): the connection answered
    /// with an error and stays pooled.
    Server,
    /// The client's backstop: the server had not answered by the limit plus the
    /// margin, so the connection is closed (a frozen or partitioned server).
    Client,
}

impl StoppedBy {
    fn describe(self) -> &'static str {
        match self {
            StoppedBy::Server => "stopped by the server; the connection is kept",
            StoppedBy::Client => "the server did not answer; the connection is closed",
        }
    }
}

/// The phase a timed-out caller was in (deadpool's split: waiting vs creating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Waiting for an idle connection or a free budget unit.
    Wait,
    /// Holding a unit, opening a connection (the server was slow, or kept refusing with
    /// "too many connections").
    Connect,
    /// Checking that an idle connection was still alive.
    Validate,
    /// Waiting to be admitted by the caller's module bulkhead: the module was at its
    /// cap, or no shared place was free (`DB_BULKHEADS`).
    Bulkhead,
}

impl TimeoutPhase {
    fn describe(self) -> &'static str {
        match self {
            TimeoutPhase::Wait => "waiting for a database connection",
            TimeoutPhase::Connect => "opening a database connection",
            TimeoutPhase::Validate => "checking a database connection",
            TimeoutPhase::Bulkhead => "waiting for a place in the module's bulkhead (DB_BULKHEADS)",
        }
    }
}

/// Formats `30s`, `1.5s`, `250ms`, `12µs`: what an operator reads in a log line.
#[derive(Debug, Clone, Copy)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d >= Duration::from_secs(1) {
            // One decimal, dropped when it is zero: 30.004 s reads "30s", 1.5 s "1.5s".
            let tenths = (d.as_millis() + 50) / 100;
            if tenths.is_multiple_of(10) {
                write!(f, "{}s", tenths / 10)
            } else {
                write!(f, "{}.{}s", tenths / 10, tenths % 10)
            }
        } else if d >= Duration::from_millis(1) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}µs", d.as_micros())
        }
    }
}

/// ` — a.rs:1 held 2s (×1), b.rs:7 held 1s (×3)`, or nothing without holders.
struct HoldersText<'a>(&'a [Holder]);

impl fmt::Display for HoldersText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { " — " } else { ", " })?;
            h.fmt(f)?;
        }
        Ok(())
    }
}

struct OrUnknown<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for OrUnknown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_read_as_an_operator_writes_them() {
        assert_eq!(HumanDuration(Duration::from_secs(30)).to_string(), "30s");
        assert_eq!(
            HumanDuration(Duration::from_millis(1500)).to_string(),
            "1.5s"
        );
        assert_eq!(
            HumanDuration(Duration::from_millis(250)).to_string(),
            "250ms"
        );
        assert_eq!(HumanDuration(Duration::from_micros(12)).to_string(), "12µs");
    }

    #[test]
    fn a_query_error_shows_code_and_sqlstate_but_not_the_server_text() {
        let e = DbError::query(
            Some(1062),
            Some("23000".into()),
            "Duplicate entry 'secret-value' for key 'name'",
        );
        assert_eq!(e.to_string(), "database error 1062 (SQLSTATE 23000)");
        assert!(e.is_duplicate_key());
        assert!(!e.is_unavailable());
    }
}
