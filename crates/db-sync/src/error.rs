//! `mysql::Error` → [`DbError`], and why a connect attempt produced no connection.
//!
//! Messages never carry SQL text, parameter values or credentials: a server error keeps
//! its text (which may quote row values) only in the error's `source`, and a decode
//! error names columns and types, never values.

use std::fmt;
use std::sync::Arc;

use db_budget::DbError;
use r2d2_mysql::mysql::{self, DriverError};

/// Refusals during connect that go away when another client disconnects: too many
/// connections (1040), `max_user_connections` (1203), per-account limit (1226).
/// The server counts a closed connection for a few milliseconds after the client's
/// close, so these are retried while holding the unit.
const SERVER_BUSY: [u16; 3] = [1040, 1203, 1226];

/// Maps a driver error to the shared error type.
///
/// A [`DbError::ConnectionLost`] means the connection must not be reused; callers
/// holding one doom it ([`is_lost`]).
pub(crate) fn map_error(e: mysql::Error) -> DbError {
    if let mysql::Error::MySqlError(server) = &e {
        // Both sides share one list ([`DbError::is_connection_gone_code`]).
        if DbError::is_connection_gone_code(server.code) {
            return DbError::ConnectionLost { cause: Box::new(e) };
        }
        let (code, state) = (server.code, server.state.clone());
        return DbError::query(Some(code), Some(state), e);
    }
    if let mysql::Error::DriverError(
        DriverError::MismatchedStmtParams(..) | DriverError::Params(_) | DriverError::MixedParams,
    ) = &e
    {
        // The caller's mistake, found before anything was sent: the connection is fine.
        // 07001 is the SQL standard's "wrong number of parameters".
        return DbError::query(None, Some("07001".to_owned()), e);
    }
    if let mysql::Error::FromRowError(row) = &e {
        return decode_error(&row_shape(row), "the requested type");
    }
    if let mysql::Error::FromValueError(value) = &e {
        return decode_error(
            &format!("a {} value", value_kind(value)),
            "the requested type",
        );
    }
    // I/O, codec, protocol and TLS errors: the stream is in an unknown state.
    DbError::ConnectionLost { cause: Box::new(e) }
}

/// `true` when the error says the connection is unusable.
pub(crate) fn is_lost(e: &DbError) -> bool {
    matches!(e, DbError::ConnectionLost { .. })
}

/// `true` for a connect refusal worth retrying while holding the unit.
pub(crate) fn is_server_busy(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(s) if SERVER_BUSY.contains(&s.code))
}

/// A row that did not convert into `target` (a Rust type name).
pub(crate) fn decode_error(what: &str, target: &str) -> DbError {
    DbError::Decode {
        cause: Box::new(DecodeError(format!("{what} does not convert to {target}"))),
    }
}

/// "a row of columns (id, name)": the shape of a row, without its values.
pub(crate) fn row_shape(row: &mysql::Row) -> String {
    let names: Vec<_> = row.columns_ref().iter().map(|c| c.name_str()).collect();
    format!("a row of columns ({})", names.join(", "))
}

fn value_kind(v: &mysql::Value) -> &'static str {
    match v {
        mysql::Value::NULL => "NULL",
        mysql::Value::Bytes(_) => "string/bytes",
        mysql::Value::Int(_) => "signed integer",
        mysql::Value::UInt(_) => "unsigned integer",
        mysql::Value::Float(_) => "FLOAT",
        mysql::Value::Double(_) => "DOUBLE",
        mysql::Value::Date(..) => "date/time",
        mysql::Value::Time(..) => "TIME",
    }
}

/// The cause of a [`DbError::Decode`]: names columns and types, never values.
#[derive(Debug)]
struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Why r2d2's connect job produced no connection. The manager hands this back to r2d2
/// as a placeholder "connection" instead of an `Err`, because r2d2 retries a failed
/// connect forever in the background (see `manager.rs`); the caller that picks the
/// placeholder up decides what it means for it.
#[derive(Debug, Clone)]
pub(crate) enum ConnectFailure {
    /// Nobody was waiting any more, so no unit was taken and nothing was opened.
    NoDemand,
    /// No budget unit came free before the deadline.
    BudgetTimedOut,
    /// The pool or the budget was closed.
    Closed,
    /// The server kept refusing with "too many connections" until the deadline.
    ServerBusy(Arc<mysql::Error>),
    /// Any other failure: server down, access denied, unknown database, handshake error.
    Failed(Arc<mysql::Error>),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::NoDemand => f.write_str("nobody was waiting for the connection"),
            ConnectFailure::BudgetTimedOut => f.write_str("no budget unit came free in time"),
            ConnectFailure::Closed => f.write_str("the pool was closed"),
            ConnectFailure::ServerBusy(e) => write!(f, "the server kept refusing: {e}"),
            ConnectFailure::Failed(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn server(code: u16, state: &str) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: state.to_owned(),
            message: "Duplicate entry 'secret-value' for key 'name'".to_owned(),
            code,
        })
    }

    #[test]
    fn a_server_error_keeps_code_and_state_but_not_its_text() {
        let e = map_error(server(1062, "23000"));
        assert!(e.is_duplicate_key());
        assert_eq!(e.to_string(), "database error 1062 (SQLSTATE 23000)");
        assert!(!is_lost(&e));
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert!(
            source.contains("secret-value"),
            "the text stays in the source"
        );
    }

    #[test]
    fn io_driver_and_gone_errors_mean_the_connection_is_lost() {
        let io = mysql::Error::IoError(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        assert!(is_lost(&map_error(io)));
        assert!(is_lost(&map_error(DriverError::PacketOutOfSync.into())));
        assert!(is_lost(&map_error(server(1927, "70100"))));
        assert!(is_lost(&map_error(server(1053, "08S01"))));
        assert!(map_error(server(1053, "08S01")).is_unavailable());
    }

    #[test]
    fn every_code_that_means_the_connection_is_gone_marks_it_lost() {
        // Server shutdown, connection killed, disconnected for inactivity, and the
        // client family a proxy relays.
        for code in [1053, 1927, 4031, 2006, 2013, 2055] {
            let e = map_error(server(code, "HY000"));
            assert!(is_lost(&e), "{code}: {e:?}");
            assert!(e.is_unavailable(), "{code}");
        }
        // A query cut by KILL QUERY leaves the connection usable.
        assert!(!is_lost(&map_error(server(1317, "70100"))));
    }

    #[test]
    fn a_parameter_count_mistake_is_a_query_error_on_a_healthy_connection() {
        let e = map_error(DriverError::MismatchedStmtParams(2, 1).into());
        assert!(!is_lost(&e));
        assert_eq!(e.to_string(), "database error unknown (SQLSTATE 07001)");
    }

    #[test]
    fn conversion_errors_are_decode_errors_without_values() {
        let e = map_error(mysql::Error::FromValueError(mysql::Value::Bytes(
            b"hunter2".to_vec(),
        )));
        assert!(matches!(e, DbError::Decode { .. }));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("string/bytes"), "{e}");
    }

    #[test]
    fn too_many_connections_is_retryable_and_access_denied_is_not() {
        assert!(is_server_busy(&server(1040, "08004")));
        assert!(is_server_busy(&server(1203, "42000")));
        assert!(is_server_busy(&server(1226, "42000")));
        assert!(!is_server_busy(&server(1045, "28000")));
    }
}
