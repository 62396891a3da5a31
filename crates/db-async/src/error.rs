//! sqlx errors as the shared [`DbError`].

use db_budget::DbError;

/// Whether an error leaves the connection unusable.
pub(crate) fn breaks_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(_) => server_number(e).is_some_and(DbError::is_connection_gone_code),
        _ => false,
    }
}

fn server_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|my| my.number()),
        _ => None,
    }
}

/// Maps a statement's error. Messages keep no SQL text and no values.
pub(crate) fn from_sqlx(e: sqlx::Error) -> DbError {
    match e {
        e @ sqlx::Error::Database(_)
            if server_number(&e).is_some_and(DbError::is_connection_gone_code) =>
        {
            DbError::ConnectionLost { cause: e.into() }
        }
        sqlx::Error::Database(db) => {
            let (code, state) = match db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                Some(my) => (Some(my.number()), my.code().map(str::to_owned)),
                None => (None, db.code().map(|c| c.into_owned())),
            };
            DbError::query(code, state, db)
        }
        sqlx::Error::RowNotFound => DbError::RowNotFound,
        e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_)) => {
            DbError::ConnectionLost { cause: e.into() }
        }
        e @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => DbError::Decode { cause: e.into() },
        sqlx::Error::PoolClosed => DbError::Closed,
        e => DbError::query(None, None, e),
    }
}

/// The server refused a connect because a connection limit was reached: 1040 (too many
/// connections), 1203 (max_user_connections), 1226 (an account's
/// MAX_USER_CONNECTIONS). Retryable while holding the unit: the server may still count
/// a socket this process closed a moment ago (it counts a closed connection for a few
/// milliseconds after the client's close).
pub(crate) fn is_connection_limit(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|my| matches!(my.number(), 1040 | 1203 | 1226)),
        _ => false,
    }
}
