//! Gameplay events and their effect on daily quests, shared by `POST
//! /api/players/{id}/events` and the WebSocket.

use retention::{DailyQuest, Retention};
use serde::Serialize;

use crate::error::ApiError;

/// Longest event kind, in characters (as the quest tables store it).
pub const MAX_KIND_CHARS: usize = 32;

/// What one event did.
#[derive(Debug, Clone, Serialize)]
pub struct EventOutcome {
    /// Quests whose progress moved.
    pub advanced: u64,
    /// Quests that reached their target with this event (their reward can now be
    /// claimed with `POST …/quests/{quest_id}/complete`); of concurrent events, exactly
    /// one lists a given quest.
    pub finished: Vec<u64>,
    /// The player's quests of the day, after the event.
    pub quests: Vec<DailyQuest>,
}

/// Checks an event before any database work.
///
/// # Errors
///
/// [`ApiError::Invalid`] for an empty or over-long kind or an amount below 1.
pub fn validate_event(kind: &str, amount: i64) -> Result<(), ApiError> {
    let chars = kind.chars().count();
    if chars == 0 || chars > MAX_KIND_CHARS {
        return Err(ApiError::Invalid(format!(
            "kind must have 1 to {MAX_KIND_CHARS} characters, got {chars}"
        )));
    }
    if amount < 1 {
        return Err(ApiError::Invalid(format!(
            "amount must be at least 1, got {amount}"
        )));
    }
    Ok(())
}

/// Applies `amount` of event `kind` to the player's quests of today and reports which
/// quests it finished: of concurrent events, exactly one reports a given quest
/// ([`Retention::record_progress`]).
///
/// # Errors
///
/// 422 for a bad event, 404 for an unknown player, 503 when the database is busy.
pub async fn apply_event(
    retention: &Retention,
    player_id: u64,
    kind: &str,
    amount: i64,
) -> Result<EventOutcome, ApiError> {
    validate_event(kind, amount)?;
    let day = retention.today();
    // Also hands out the day's quests on the first event of the day.
    let progress = retention
        .record_progress(player_id, day, kind, amount)
        .await?;
    let quests = retention.get_active_quests(player_id, day).await?;
    Ok(EventOutcome {
        advanced: progress.advanced,
        finished: progress.finished,
        quests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_need_a_kind_and_a_positive_amount() {
        assert!(validate_event("game_won", 1).is_ok());
        assert!(validate_event("", 1).is_err());
        assert!(validate_event(&"k".repeat(33), 1).is_err());
        assert!(validate_event("game_won", 0).is_err());
        assert!(validate_event("game_won", -5).is_err());
    }
}
