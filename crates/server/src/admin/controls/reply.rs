//! Why a control request was refused, as the JSON error every route answers with.

use axum::Json;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A control request that was not carried out. The body is `{"error", "message"}`, plus
/// `"field"` when one field of the request is at fault; nothing in it comes from the
/// token or the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 403: no `ADMIN_TOKEN` is set, so the control routes are off.
    Disabled,
    /// 401: no bearer token, or not `ADMIN_TOKEN`.
    Unauthorized(&'static str),
    /// 400: the body is not what the route takes.
    BadRequest {
        /// The field at fault, if one is.
        field: Option<&'static str>,
        /// What is wrong and what the route takes.
        message: String,
    },
    /// 409: the action does not apply to this instance as configured.
    Conflict {
        /// A stable code (`fleet`, `bulkheads`).
        code: &'static str,
        /// Why, and what to do instead.
        message: String,
    },
    /// 405: the control routes take `POST` only.
    MethodNotAllowed,
}

impl Refusal {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Refusal::Disabled => StatusCode::FORBIDDEN,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Refusal::Conflict { .. } => StatusCode::CONFLICT,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The stable `error` code.
    pub(super) fn code(&self) -> &'static str {
        match self {
            Refusal::Disabled => "controls_disabled",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::BadRequest { .. } => "bad_request",
            Refusal::Conflict { code, .. } => code,
            Refusal::MethodNotAllowed => "method_not_allowed",
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            Refusal::Disabled => "the control routes are off: set ADMIN_TOKEN (at least 16 \
                                  bytes) on the server to turn them on"
                .to_owned(),
            Refusal::Unauthorized(why) => (*why).to_owned(),
            Refusal::BadRequest { message, .. } | Refusal::Conflict { message, .. } => {
                message.clone()
            }
            Refusal::MethodNotAllowed => "the control routes take POST".to_owned(),
        }
    }

    pub(super) fn body(&self) -> Value {
        let mut body = json!({ "error": self.code(), "message": self.message() });
        if let Refusal::BadRequest {
            field: Some(field), ..
        } = self
        {
            body["field"] = (*field).into();
        }
        body
    }

    /// A 400 about `field`.
    pub(super) fn field(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::BadRequest {
            field: Some(field),
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Refusal::Unauthorized(_) = self {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
