//! Daily login rewards (crate `retention`, async pool).

use axum::Json;
use axum::extract::State;
use retention::{ClaimedReward, RewardStatus};

use crate::auth::OwnPlayer;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/players/{id}/rewards`: today's streak, whether it is claimed, and its reward.
///
/// # Errors
///
/// 401/403; 404 unknown player; 503.
pub async fn status(
    State(state): State<AppState>,
    OwnPlayer(player_id): OwnPlayer,
) -> Result<Json<RewardStatus>, ApiError> {
    let day = state.retention.today();
    Ok(Json(state.retention.reward_status(player_id, day).await?))
}

/// `POST /api/players/{id}/rewards/claim`: claims today's reward, once a day.
///
/// # Errors
///
/// 401/403; 404 unknown player; 409 `already_claimed`; 503.
pub async fn claim(
    State(state): State<AppState>,
    OwnPlayer(player_id): OwnPlayer,
) -> Result<Json<ClaimedReward>, ApiError> {
    let day = state.retention.today();
    Ok(Json(
        state.retention.claim_daily_reward(player_id, day).await?,
    ))
}
