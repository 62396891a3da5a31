//! The JSON API: one file per resource, assembled by [`api_router`].
//!
//! | method | path | auth | success |
//! |---|---|---|---|
//! | POST | `/api/players` | none | 201 `{id, name, token}` (name trimmed, then 1–32 characters) |
//! | GET | `/api/players/{id}` | own | 200 player + balance |
//! | GET | `/api/games/{id}` | owner | 200 game with state |
//! | GET | `/api/players/{id}/games` | own | 200 `{games: [summary]}` |
//! | POST | `/api/players/{id}/games` | own | 201 game (`{state}` ≤ 1 MiB, else 413; ≤ 31 levels deep, else 422) |
//! | POST | `/api/games/{id}/images` | owner | 201 image (`metadata` ≤ 16 KiB, else 413; ≤ 31 levels deep, else 422) |
//! | GET | `/api/games/{id}/images` | owner | 200 `{images}` |
//! | GET | `/api/players/{id}/quests` | own | 200 `{day, quests}` |
//! | POST | `/api/players/{id}/events` | own | 200 `{advanced, finished, quests}` (`finished`: the quests this event brought to their target) |
//! | POST | `/api/players/{id}/quests/{quest_id}/complete` | own | 200 reward (409 not finished / already completed) |
//! | GET | `/api/players/{id}/rewards` | own | 200 status |
//! | POST | `/api/players/{id}/rewards/claim` | own | 200 claim (409 already claimed) |
//! | GET | `/ws` | token (header or `?token=`) | 101 WebSocket |
//!
//! Errors: `{error, message}` with 400/413/415/422 for bad requests (422 also for any
//! value the database refuses for its column), 401 without a valid token, 403 for
//! another player's data, 404 (also for every route of a player that does not exist),
//! 409, 503 + `Retry-After` when the database budget is exhausted or the server
//! unreachable, 500 otherwise.

pub mod games;
pub mod images;
pub mod players;
pub mod quests;
pub mod rewards;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::legacy::saved_games::MAX_STATE_BYTES;
use crate::state::AppState;
use crate::ws;

/// Body limit of every route but saving a game.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// Body limit of `POST /api/players/{id}/games`: the 1 MiB state plus its envelope.
/// A state under this limit but over [`MAX_STATE_BYTES`] is refused by the handler
/// (413 as well), after the body was read in full.
pub const GAME_BODY_LIMIT: usize = 2 * MAX_STATE_BYTES;

/// The API routes with their state.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/api/players", post(players::create))
        .route("/api/players/{id}", get(players::show))
        .route(
            "/api/players/{id}/games",
            get(games::list)
                .post(games::save)
                .layer(DefaultBodyLimit::max(GAME_BODY_LIMIT)),
        )
        .route("/api/games/{id}", get(games::show))
        .route(
            "/api/games/{id}/images",
            get(images::list).post(images::create),
        )
        .route("/api/players/{id}/quests", get(quests::list))
        .route("/api/players/{id}/events", post(quests::event))
        .route(
            "/api/players/{id}/quests/{quest_id}/complete",
            post(quests::complete),
        )
        .route("/api/players/{id}/rewards", get(rewards::status))
        .route("/api/players/{id}/rewards/claim", post(rewards::claim))
        .route("/ws", get(ws::upgrade))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed on this route".to_owned(),
    }
}

/// Runs a legacy (blocking) call on tokio's blocking pool and waits for it.
///
/// If the request is cancelled (client gone), the call still runs to its end on its
/// thread, and its connection goes back to the pool when it is done.
///
/// # Errors
///
/// The call's error, or 500 if it panicked.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}
