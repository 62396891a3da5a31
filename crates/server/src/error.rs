//! The one error type of the API, and its JSON form `{"error": code, "message": text}`.
//!
//! What a client sees is chosen here, never passed through: database errors become 503
//! (overloaded or unreachable: retry), 422 when the server refused a value the client
//! sent (too long, out of range, badly encoded, not JSON the column accepts, failing a
//! check constraint: [`refused_value`]), or a generic 500, logged server-side with their
//! `Display`, which never contains SQL text, parameter values or credentials
//! ([`db_budget::DbError`]). Request-shape problems (bad JSON, wrong types, oversized
//! bodies, bad path segments) come from axum's rejections and keep their status and
//! description.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use db_budget::DbError;
use retention::RetentionError;
use serde_json::json;

/// Everything a handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad path segment).
    #[error("{0}")]
    BadRequest(String),
    /// A rejection with its own status (415 content type, 422 wrong types or missing
    /// fields, 413 body too large).
    #[error("{message}")]
    Rejected {
        /// The status axum chose.
        status: StatusCode,
        /// axum's description (no request data beyond field names and serde's message).
        message: String,
    },
    /// 422: well-formed but invalid values.
    #[error("{0}")]
    Invalid(String),
    /// 422: the database refused a value of the request as invalid for its column
    /// (see [`refused_value`]); the request was well-formed, and nothing was written.
    #[error("the database refused a value of the request: {reason}")]
    RefusedValue {
        /// What kind of value the server's error code means, for the client.
        reason: &'static str,
        /// The server's error (its code shows in logs; its text, which may quote the
        /// value, stays in the source).
        #[source]
        source: DbError,
    },
    /// 401: no valid bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: somebody else's data.
    #[error("this belongs to another player")]
    Forbidden,
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: already done (claimed, completed) or not yet possible.
    #[error("{message}")]
    Conflict {
        /// A stable code for clients (`already_claimed`, `already_completed`, `not_finished`).
        code: &'static str,
        /// Human-readable.
        message: String,
    },
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 503 + `Retry-After`: the database is overloaded or unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbError),
    /// 503 + `Retry-After`, code `statement_timeout`: a statement ran past its limit
    /// (`DB_STATEMENT_TIMEOUT`); the log shows the limit and the call site.
    #[error("database statement timed out: {0}")]
    StatementTimeout(#[source] DbError),
    /// 500: logged with its cause, never shown.
    #[error("internal error: {0}")]
    Internal(#[source] InternalError),
}

/// The cause of a 500, kept as its own error so that logs and `source()` reach it. Its
/// `Display` is what the log shows: like [`DbError`]'s, it never contains SQL text,
/// parameter values or credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InternalError {
    /// A database error that is neither unavailability nor a refused value.
    #[error("{0}")]
    Db(#[source] DbError),
    /// A retention error with no status of its own.
    #[error("{0}")]
    Retention(#[source] RetentionError),
    /// A `spawn_blocking` task panicked or was cancelled.
    #[error("blocking task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
    /// A value that was just parsed as JSON could not be written back as text.
    #[error("re-serializing {what}: {source}")]
    Serialize {
        /// What was being written (`a game state`, `image metadata`).
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A broken expectation of the code itself (a route without the parameter its
    /// extractor needs, an `INSERT` without an id).
    #[error("{0}")]
    Bug(&'static str),
}

impl From<InternalError> for ApiError {
    fn from(e: InternalError) -> Self {
        ApiError::Internal(e)
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Invalid(_) | ApiError::RefusedValue { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::StatementTimeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code (`error` field).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Conflict { code, .. } => code,
            ApiError::StatementTimeout(_) => "statement_timeout",
            ApiError::Unavailable(DbError::Suspended { .. }) => "suspended",
            other => match other.status() {
                StatusCode::BAD_REQUEST => "bad_request",
                StatusCode::UNPROCESSABLE_ENTITY => "invalid",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                StatusCode::INTERNAL_SERVER_ERROR => "internal",
                _ => "bad_request",
            },
        }
    }

    /// What the client is told (`message` field): never SQL, values or credentials.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(DbError::Suspended { .. }) => {
                "the database is being switched over; retry shortly".to_owned()
            }
            ApiError::Unavailable(_) => {
                "the database is busy or unreachable; retry shortly".to_owned()
            }
            ApiError::StatementTimeout(_) => {
                "the database took too long to answer; retry later".to_owned()
            }
            ApiError::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        }
    }

    /// The `{error, message}` body; a pool timeout adds why callers wait: `cause`
    /// (`backlog`, `leaked_holders`, `failing_connects`, `slow_statements`). Who holds
    /// the connections (`file:line` of the code that checked them out) is for operators:
    /// in the log line and on the admin listener (`/api/pool`'s `holders`), not for the
    /// game's clients, who have no use for the server's source paths.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({ "error": self.code(), "message": self.public_message() });
        if let ApiError::Unavailable(DbError::PoolTimeout { cause, .. }) = self {
            body["cause"] = json!(cause);
        }
        body
    }

    /// Logs what the client is not told (5xx), at the right level.
    pub fn log(&self) {
        match self {
            // Shedding is the overload policy working: counted, not worth a warning each.
            ApiError::Unavailable(e @ DbError::Shed { .. }) => {
                tracing::debug!(error = %e, "request shed: too many callers wait")
            }
            // An operator suspended the budget (logged once, by the admin listener).
            ApiError::Unavailable(e @ DbError::Suspended { .. }) => {
                tracing::debug!(error = %e, "request refused: the budget is suspended")
            }
            ApiError::Unavailable(e @ DbError::PoolTimeout { cause, .. }) => {
                tracing::warn!(error = %e, cause = cause.as_str(), "request failed: database unavailable")
            }
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "request failed: database unavailable")
            }
            ApiError::StatementTimeout(e) => {
                tracing::warn!(error = %e, "request failed: database statement timed out")
            }
            ApiError::Internal(e) => tracing::error!(error = %e, "request failed"),
            // A 4xx, but the application's own checks should have caught it first:
            // worth seeing in the log (code and SQLSTATE only).
            ApiError::RefusedValue { source, .. } => {
                tracing::warn!(error = %source, "request refused by the database")
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unavailable(_) | ApiError::StatementTimeout(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e)
        } else if e.is_statement_timeout() {
            ApiError::StatementTimeout(e)
        } else if let Some(reason) = e.code().and_then(refused_value) {
            ApiError::RefusedValue { reason, source: e }
        } else {
            ApiError::Internal(InternalError::Db(e))
        }
    }
}

/// What a server error code means when it refuses a value the statement was given as
/// invalid for its column, or `None` for any other error. These are the client's errors
/// (the values come from the request), answered 422.
///
/// MariaDB and MySQL numbers: 4025 (MariaDB) / 3819 (MySQL) a check constraint failed,
/// e.g. a `JSON` column's `JSON_VALID` (nested too deep); 3140 (MySQL) invalid JSON
/// text; 1406 data too long for the column; 1366 incorrect value for the column (e.g. a
/// string not in its character set); 1300 invalid character string; 1264 out of range
/// for the column; 1690 an expression's value out of range; 1292 truncated or
/// incorrect value (dates, numbers); 1265 data truncated; 1048 a column cannot be NULL.
pub fn refused_value(code: u16) -> Option<&'static str> {
    Some(match code {
        4025 | 3819 => {
            "it breaks a check constraint of its column (for JSON: valid JSON nested at most \
             31 levels deep)"
        }
        3140 => "it is not valid JSON",
        1406 => "it is too long for its column",
        1366 | 1300 => "it is not a valid string for its column (encoding or character set)",
        1264 | 1690 => "it is out of range",
        1292 | 1265 => "it is not a valid value of its column's type",
        1048 => "a required value is missing",
        _ => return None,
    })
}

impl From<RetentionError> for ApiError {
    fn from(e: RetentionError) -> Self {
        match e {
            RetentionError::Db(db) => db.into(),
            e @ (RetentionError::PlayerNotFound { .. } | RetentionError::QuestNotFound { .. }) => {
                ApiError::NotFound(e.to_string())
            }
            e @ RetentionError::QuestNotFinished { .. } => ApiError::Conflict {
                code: "not_finished",
                message: e.to_string(),
            },
            e @ RetentionError::QuestAlreadyCompleted { .. } => ApiError::Conflict {
                code: "already_completed",
                message: e.to_string(),
            },
            e @ RetentionError::AlreadyClaimed { .. } => ApiError::Conflict {
                code: "already_claimed",
                message: e.to_string(),
            },
            RetentionError::InvalidInput { what } => ApiError::Invalid(what),
            other => ApiError::Internal(InternalError::Retention(other)),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Rejected {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::Rejected {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Rejected {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(InternalError::Join(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_error_is_a_generic_500_without_its_details() {
        let e: ApiError =
            DbError::query(Some(1064), Some("42000".into()), "near 'SELECT secret'").into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.body(),
            json!({"error": "internal", "message": "internal server error"})
        );
    }

    #[test]
    fn a_500_keeps_its_cause_as_its_source_and_logs_it_as_before() {
        use std::error::Error as _;
        let e: ApiError = DbError::query(Some(1064), Some("42000".into()), "near 'x'").into();
        let cause = e.source().expect("a 500 keeps its cause");
        let cause = cause
            .downcast_ref::<InternalError>()
            .expect("an InternalError");
        let db = cause.source().expect("the DbError");
        assert!(db.downcast_ref::<DbError>().is_some(), "{db:?}");
        assert_eq!(e.to_string(), format!("internal error: {db}"));

        let bad_json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = ApiError::from(InternalError::Serialize {
            what: "a game state",
            source: bad_json,
        });
        assert!(
            e.to_string()
                .starts_with("internal error: re-serializing a game state: "),
            "{e}"
        );
        assert_eq!(e.body()["message"], "internal server error");
    }

    #[test]
    fn values_the_database_refuses_are_the_clients_error() {
        for code in [
            4025, 3819, 1406, 1366, 1300, 1264, 3140, 1292, 1265, 1048, 1690,
        ] {
            let e: ApiError = DbError::query(
                Some(code),
                Some("22001".into()),
                "Data too long for column 'secret-value' at row 1",
            )
            .into();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "error {code}");
            assert_eq!(e.code(), "invalid", "error {code}");
            let message = e.public_message();
            assert!(message.contains("refused"), "error {code}: {message}");
            assert!(!message.contains("secret-value"), "error {code}: {message}");
            assert!(
                std::error::Error::source(&e).is_some(),
                "error {code} keeps its source"
            );
        }
    }

    #[test]
    fn an_unavailable_database_is_a_503_with_retry_after() {
        let shed = DbError::Shed {
            side: db_budget::Side::Async,
            limit: 10,
        };
        for db in [DbError::Closed, shed] {
            let e: ApiError = db.into();
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.body()["error"], "unavailable");
            let response = e.into_response();
            assert_eq!(response.headers()[RETRY_AFTER], "1");
        }
    }

    #[test]
    fn a_suspended_budget_is_a_503_with_its_own_code_and_retry_after() {
        let e: ApiError = DbError::Suspended {
            side: db_budget::Side::Sync,
            waited: std::time::Duration::from_secs(10),
        }
        .into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.body()["error"], "suspended");
        let response = e.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn a_statement_timeout_is_a_503_naming_it_without_the_call_site() {
        let e: ApiError = DbError::StatementTimeout {
            limit: std::time::Duration::from_secs(1),
            site: std::panic::Location::caller(),
            stopped_by: db_budget::StoppedBy::Server,
            cause: Some("Query execution was interrupted (max_statement_time exceeded)".into()),
        }
        .into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "statement_timeout");
        let body = e.body().to_string();
        assert!(
            !body.contains("error.rs"),
            "the call site stays in the log: {body}"
        );
        assert!(e.to_string().contains("error.rs"), "the log shows it: {e}");
        let response = e.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn retention_outcomes_map_to_their_statuses() {
        let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let cases: [(RetentionError, StatusCode, &str); 4] = [
            (
                RetentionError::PlayerNotFound { player_id: 1 },
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                RetentionError::AlreadyClaimed { player_id: 1, day },
                StatusCode::CONFLICT,
                "already_claimed",
            ),
            (
                RetentionError::QuestAlreadyCompleted { quest_id: 3 },
                StatusCode::CONFLICT,
                "already_completed",
            ),
            (
                RetentionError::InvalidInput {
                    what: "amount".into(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
            ),
        ];
        for (e, status, code) in cases {
            let e = ApiError::from(e);
            assert_eq!((e.status(), e.code()), (status, code));
        }
    }
}
