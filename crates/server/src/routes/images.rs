//! A game's generated images: thin async handlers over [`crate::images`] (on the
//! async pool since the port described in MIGRATION.md). Only the game's owner may add
//! or list its images.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::AuthPlayer;
use crate::error::{ApiError, InternalError};
use crate::extract::{ApiJson, ApiPath};
use crate::images::{self, GeneratedImage};
use crate::state::AppState;
use crate::stored_json;

/// Longest prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 4000;
/// Longest URL, in bytes (the column is `VARCHAR(2048)`; URLs are ASCII).
pub const MAX_URL_BYTES: usize = 2048;
/// Largest metadata, serialized.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// `POST /api/games/{id}/images` body.
#[derive(Debug, Deserialize)]
pub struct NewImage {
    /// The prompt (1–4000 characters).
    pub prompt: String,
    /// Where the image is (`http://` or `https://`, at most 2048 bytes).
    pub url: String,
    /// Generator details; `{}` when absent; at most 16 KiB serialized and
    /// [`stored_json::MAX_DEPTH`] levels deep.
    #[serde(default)]
    pub metadata: Option<Value>,
}

fn validate(image: &NewImage) -> Result<String, ApiError> {
    let prompt_chars = image.prompt.chars().count();
    if prompt_chars == 0 || prompt_chars > MAX_PROMPT_CHARS {
        return Err(ApiError::Invalid(format!(
            "prompt must have 1 to {MAX_PROMPT_CHARS} characters, got {prompt_chars}"
        )));
    }
    let url = image.url.as_str();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() > MAX_URL_BYTES
        || !url.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::Invalid(format!(
            "url must be an http(s) URL of at most {MAX_URL_BYTES} bytes without spaces"
        )));
    }
    let metadata = image.metadata.clone().unwrap_or_else(|| json!({}));
    stored_json::check("metadata", &metadata)?;
    let text = serde_json::to_string(&metadata).map_err(|source| InternalError::Serialize {
        what: "image metadata",
        source,
    })?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(ApiError::TooLarge(format!(
            "metadata is {} bytes; at most {MAX_METADATA_BYTES} are accepted",
            text.len()
        )));
    }
    Ok(text)
}

/// `POST /api/games/{id}/images`: records an image of the caller's game; 201.
///
/// # Errors
///
/// 401; 404 no such game; 403 another player's game; 422 bad prompt or URL or metadata
/// nested deeper than [`stored_json::MAX_DEPTH`]; 413 metadata above 16 KiB; 503.
pub async fn create(
    State(state): State<AppState>,
    auth: AuthPlayer,
    ApiPath(game_id): ApiPath<u64>,
    ApiJson(body): ApiJson<NewImage>,
) -> Result<(StatusCode, Json<GeneratedImage>), ApiError> {
    let metadata = validate(&body)?;
    check_owner(&state, auth, game_id).await?;
    let image = images::save_generated_image(
        &state.async_pool,
        auth.0,
        game_id,
        &body.prompt,
        &body.url,
        &metadata,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(image)))
}

/// `GET /api/games/{id}/images`: the game's images, oldest first.
///
/// # Errors
///
/// 401; 404; 403; 503.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthPlayer,
    ApiPath(game_id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    check_owner(&state, auth, game_id).await?;
    let images = images::list_game_images(&state.async_pool, game_id).await?;
    Ok(Json(json!({ "images": images })))
}

/// Checks that game `game_id` exists (404) and that `auth` owns it (403).
async fn check_owner(state: &AppState, auth: AuthPlayer, game_id: u64) -> Result<(), ApiError> {
    let owner = images::game_owner(&state.async_pool, game_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("game {game_id} not found")))?;
    auth.require(owner)
}
