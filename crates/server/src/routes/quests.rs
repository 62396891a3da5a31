//! Daily quests (crate `retention`, async pool): the day's list, gameplay events and
//! completion.

use axum::Json;
use axum::extract::State;
use retention::QuestReward;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::OwnPlayer;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::gameplay::{self, EventOutcome};
use crate::state::AppState;

/// `POST /api/players/{id}/events` body.
#[derive(Debug, Deserialize)]
pub struct Event {
    /// What happened: `game_played`, `game_won`, `points_scored`, …
    pub kind: String,
    /// How much of it (at least 1).
    pub amount: i64,
}

/// `GET /api/players/{id}/quests`: today's quests (handed out on the first call).
///
/// # Errors
///
/// 401/403; 404 unknown player; 503.
pub async fn list(
    State(state): State<AppState>,
    OwnPlayer(player_id): OwnPlayer,
) -> Result<Json<Value>, ApiError> {
    let day = state.retention.today();
    let quests = state.retention.get_active_quests(player_id, day).await?;
    Ok(Json(json!({ "day": day, "quests": quests })))
}

/// `POST /api/players/{id}/events`: applies a gameplay event to today's quests.
///
/// # Errors
///
/// 401/403; 422 bad event; 404 unknown player; 503.
pub async fn event(
    State(state): State<AppState>,
    OwnPlayer(player_id): OwnPlayer,
    ApiJson(event): ApiJson<Event>,
) -> Result<Json<EventOutcome>, ApiError> {
    let outcome =
        gameplay::apply_event(&state.retention, player_id, &event.kind, event.amount).await?;
    Ok(Json(outcome))
}

/// `POST /api/players/{id}/quests/{quest_id}/complete`: grants a finished quest's
/// reward, once.
///
/// # Errors
///
/// 401/403; 404 unknown quest (or another player's); 409 `not_finished` or
/// `already_completed`; 503.
pub async fn complete(
    State(state): State<AppState>,
    OwnPlayer(player_id): OwnPlayer,
    ApiPath((_, quest_id)): ApiPath<(u64, u64)>,
) -> Result<Json<QuestReward>, ApiError> {
    let reward = state.retention.complete_quest(player_id, quest_id).await?;
    Ok(Json(reward))
}
