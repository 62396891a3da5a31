//! The one error type of this crate.

use chrono::NaiveDate;
use db_budget::DbError;

/// Why a retention operation did not happen. Every refusal is typed, so that a caller
/// (an HTTP handler, a test) can tell "you may not" from "the database failed".
///
/// When an operation returns an error, it wrote nothing: every multi-statement write
/// runs in one transaction, and input is validated before any I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// No player with this id.
    #[error("player {player_id} not found")]
    PlayerNotFound {
        /// The id asked for.
        player_id: u64,
    },
    /// No quest with this id belongs to this player.
    #[error("quest {quest_id} of player {player_id} not found")]
    QuestNotFound {
        /// The player asked for.
        player_id: u64,
        /// The quest asked for.
        quest_id: u64,
    },
    /// The quest's progress has not reached its target yet.
    #[error("quest {quest_id} is not finished ({progress}/{target})")]
    QuestNotFinished {
        /// The quest.
        quest_id: u64,
        /// Its progress.
        progress: u32,
        /// Its target.
        target: u32,
    },
    /// The quest's reward was granted before.
    #[error("quest {quest_id} was already completed")]
    QuestAlreadyCompleted {
        /// The quest.
        quest_id: u64,
    },
    /// The player already claimed the daily reward of this day.
    #[error("player {player_id} already claimed the daily reward of {day}")]
    AlreadyClaimed {
        /// The player.
        player_id: u64,
        /// The game day.
        day: NaiveDate,
    },
    /// A value outside its accepted range; `what` names it and the range.
    #[error("invalid input: {what}")]
    InvalidInput {
        /// Which value, and what is accepted.
        what: String,
    },
    /// Seed data the operation needs is missing: run the seeds
    /// ([`Retention::initialize_daily_rewards`](crate::Retention::initialize_daily_rewards),
    /// [`Retention::initialize_quest_templates`](crate::Retention::initialize_quest_templates))
    /// at startup.
    #[error("not initialised: {what}")]
    NotInitialized {
        /// What is missing.
        what: String,
    },
    /// The database failed (including [`DbError::PoolTimeout`]). Deadlocks and lock
    /// wait timeouts were already retried a few times before this is returned.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Running the migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl RetentionError {
    pub(crate) fn invalid(what: impl Into<String>) -> RetentionError {
        RetentionError::InvalidInput { what: what.into() }
    }

    /// `true` for [`PlayerNotFound`](RetentionError::PlayerNotFound) and
    /// [`QuestNotFound`](RetentionError::QuestNotFound) (an HTTP layer maps these to 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RetentionError::PlayerNotFound { .. } | RetentionError::QuestNotFound { .. }
        )
    }

    /// `true` when retrying the whole operation may succeed (deadlock, lock wait
    /// timeout); used by the retry loop.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, RetentionError::Db(e) if e.is_transient())
    }
}

/// MySQL error 1452: a foreign key's parent row does not exist.
pub(crate) fn is_missing_parent(e: &DbError) -> bool {
    e.code() == Some(1452)
}
