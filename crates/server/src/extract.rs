//! axum's `Json` and `Path` extractors with their rejections turned into [`ApiError`]s,
//! so a wrong type, a missing field, bad JSON, invalid UTF-8, a missing content type, an
//! oversized body or a non-numeric id all get the usual `{error, message}` JSON body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body (`Content-Type: application/json`), deserialized into `T`.
///
/// Status on failure: 415 without the JSON content type, 400 for malformed JSON or
/// invalid UTF-8, 422 for wrong types, missing fields or a body that is not an object,
/// 413 above the route's `DefaultBodyLimit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "expected a request with `Content-Type: application/json`".to_owned(),
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::Rejected {
                status: r.status(),
                message: r.body_text(),
            })?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        // serde also builds a struct from an array of its fields (`["Ada"]`): only
        // objects are accepted here.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(ApiError::Invalid(
                "the body must be a JSON object".to_owned(),
            ));
        }
        Ok(ApiJson(value))
    }
}

/// `application/json`, or `application/<something>+json`, with any parameters.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters, deserialized into `T` (400 when a segment does not parse).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}
