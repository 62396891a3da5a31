//! Saved games: thin async handlers over the blocking legacy module
//! ([`crate::legacy::saved_games`]), each call on the blocking pool.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{AuthPlayer, OwnPlayer};
use crate::error::{ApiError, InternalError};
use crate::extract::{ApiJson, ApiPath};
use crate::legacy::saved_games::{self, MAX_STATE_BYTES, SavedGame};
use crate::routes::{blocking, players};
use crate::state::AppState;
use crate::stored_json;

/// `POST /api/players/{id}/games` body.
#[derive(Debug, Deserialize)]
pub struct NewGame {
    /// The game state: any JSON value, at most 1 MiB serialized and
    /// [`stored_json::MAX_DEPTH`] levels deep.
    pub state: Value,
}

/// MySQL's "a foreign key constraint fails" (the parent row is missing).
const MISSING_PARENT: u16 = 1452;

fn game_not_found(game_id: u64) -> ApiError {
    ApiError::NotFound(format!("game {game_id} not found"))
}

/// `GET /api/games/{id}`: the game with its state.
///
/// # Errors
///
/// 401; 404 when there is no such game; 403 when it is another player's; 503.
pub async fn show(
    auth: AuthPlayer,
    ApiPath(game_id): ApiPath<u64>,
) -> Result<Json<SavedGame>, ApiError> {
    let game = blocking(move || {
        let game = saved_games::load_game(game_id)?.ok_or_else(|| game_not_found(game_id))?;
        auth.require(game.player_id)?;
        Ok(game)
    })
    .await?;
    Ok(Json(game))
}

/// `GET /api/players/{id}/games`: the player's most recent games, without states.
///
/// # Errors
///
/// 401/403; 404 when the player does not exist; 503.
pub async fn list(
    State(state): State<AppState>,
    OwnPlayer(player_id): OwnPlayer,
) -> Result<Json<Value>, ApiError> {
    let games = blocking(move || Ok(saved_games::load_games(player_id)?)).await?;
    if games.is_empty() {
        // No games: a player without any, or no such player (404 like every route).
        players::require_player(&state.async_pool, player_id).await?;
    }
    Ok(Json(json!({ "games": games })))
}

/// `POST /api/players/{id}/games`: saves a new game; 201 with the stored game.
///
/// # Errors
///
/// 401/403; 413 for a state above 1 MiB; 422 for one nested deeper than
/// [`stored_json::MAX_DEPTH`]; 400/415/422 for a bad body; 404 when the player does not
/// exist; 503.
pub async fn save(
    OwnPlayer(player_id): OwnPlayer,
    ApiJson(body): ApiJson<NewGame>,
) -> Result<(StatusCode, Json<SavedGame>), ApiError> {
    stored_json::check("state", &body.state)?;
    let text = serde_json::to_string(&body.state).map_err(|source| InternalError::Serialize {
        what: "a game state",
        source,
    })?;
    if text.len() > MAX_STATE_BYTES {
        return Err(ApiError::TooLarge(format!(
            "the game state is {} bytes; at most {MAX_STATE_BYTES} are accepted",
            text.len()
        )));
    }
    let game = blocking(move || {
        saved_games::save_game(player_id, &text).map_err(|e| {
            if e.code() == Some(MISSING_PARENT) {
                ApiError::NotFound(format!("player {player_id} not found"))
            } else {
                e.into()
            }
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(game)))
}
