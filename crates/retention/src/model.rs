//! What the operations return.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::rules::progress;
use crate::seeds::RewardTier;

/// One of a player's quests of one game day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyQuest {
    /// The quest's id (pass it to [`Retention::complete_quest`](crate::Retention::complete_quest)).
    pub id: u64,
    /// Its player.
    pub player_id: u64,
    /// Its game day.
    pub day: NaiveDate,
    /// The template's code.
    pub template_code: String,
    /// The template's title.
    pub title: String,
    /// The progress event that advances it.
    pub event_kind: String,
    /// Progress so far (never above `target`).
    pub progress: u32,
    /// Progress needed.
    pub target: u32,
    /// Coins granted on completion.
    pub reward_coins: u32,
    /// Experience granted on completion.
    pub reward_xp: u32,
    /// When its reward was granted, if it was.
    pub completed_at: Option<DateTime<Utc>>,
}

impl DailyQuest {
    /// Progress reached the target: the reward may be claimed (unless it was).
    pub fn is_finished(&self) -> bool {
        progress::is_finished(self.progress, self.target)
    }

    /// The reward was granted.
    pub fn is_completed(&self) -> bool {
        self.completed_at.is_some()
    }
}

/// What one progress event did
/// ([`Retention::record_progress`](crate::Retention::record_progress)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProgressOutcome {
    /// How many quests advanced (0 when none matched or all were at their target).
    pub advanced: u64,
    /// The quests this event brought to their target, by id, ascending. Of concurrent
    /// events, exactly one lists a given quest.
    pub finished: Vec<u64>,
}

/// A granted quest reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuestReward {
    /// The quest.
    pub quest_id: u64,
    /// The ledger row recording the grant.
    pub ledger_id: u64,
    /// Coins granted.
    pub coins: u32,
    /// Experience granted.
    pub xp: u32,
}

/// A claimed daily reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClaimedReward {
    /// The claim row.
    pub claim_id: u64,
    /// The ledger row recording the grant.
    pub ledger_id: u64,
    /// The game day claimed.
    pub day: NaiveDate,
    /// The streak day it counted as (1 after a missed day; keeps growing past 7).
    pub streak: u32,
    /// The tier granted (cycle day 1..=7).
    pub tier: RewardTier,
}

/// A player's daily reward situation on one game day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RewardStatus {
    /// The game day.
    pub day: NaiveDate,
    /// The streak: `day`'s streak day if claimed, else yesterday's if yesterday was
    /// claimed (still alive), else 0.
    pub streak: u32,
    /// `day`'s reward is claimed.
    pub claimed: bool,
    /// The streak day `day`'s claim counts (or counted) as.
    pub reward_streak: u32,
    /// `day`'s reward: the tier granted, or the one a claim would grant.
    pub reward: RewardTier,
}

/// Everything a player was granted, summed over the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Coins.
    pub coins: u64,
    /// Experience.
    pub xp: u64,
}
