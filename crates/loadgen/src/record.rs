//! What one request of the load was and how it ended, and the reward grants the
//! clients were told about (or could not know about).

use std::time::Duration;

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `POST /api/players` (async pool).
    SignUp,
    /// `POST …/rewards/claim` (retention).
    Claim,
    /// `GET …/quests` (retention).
    Quests,
    /// `POST …/events` (retention).
    Event,
    /// `{"type":"quests"}` over the WebSocket (retention).
    WsQuests,
    /// `{"type":"event"}` over the WebSocket (retention).
    WsEvent,
    /// The WebSocket upgrade (no database).
    WsConnect,
    /// `POST …/quests/{id}/complete` (retention).
    Complete,
    /// `GET /api/players/{id}` (async pool + retention).
    Balance,
    /// `GET …/rewards` (retention).
    RewardStatus,
    /// `POST …/games` (legacy, blocking).
    SaveGame,
    /// `GET …/games` (legacy, blocking).
    ListGames,
    /// `GET /api/games/{id}` (legacy, blocking).
    ShowGame,
}

impl Op {
    /// Served by the blocking pool (legacy module through `spawn_blocking`).
    pub fn is_blocking(self) -> bool {
        matches!(self, Op::SaveGame | Op::ListGames | Op::ShowGame)
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// An HTTP status (for WebSocket replies: the status of the reply's error code, 200
    /// for a `progress` reply).
    Status(u16),
    /// The connection failed or broke.
    Transport,
    /// No answer within the client's timeout.
    Timeout,
}

impl Outcome {
    /// 2xx, or 101 for a WebSocket upgrade.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Status(101 | 200..=299))
    }

    /// A short label: `200`, `503`, `transport`, `timeout`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Transport => "transport".into(),
            Outcome::Timeout => "timeout".into(),
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, from the recorder's start.
    pub start: Duration,
    /// How long until the answer (or the failure).
    pub took: Duration,
    /// What it was.
    pub op: Op,
    /// How it ended.
    pub outcome: Outcome,
}

impl Sample {
    /// When the answer came, from the recorder's start.
    pub fn end(&self) -> Duration {
        self.start + self.took
    }
}

/// A reward source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A completed quest (`source_id` = the quest's id).
    Quest,
    /// A daily login reward (`source_id` = the claim's id).
    DailyReward,
}

impl Source {
    /// The `reward_ledger.source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Quest => "quest",
            Source::DailyReward => "daily_reward",
        }
    }
}

/// A grant the server confirmed to a client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// The player.
    pub player_id: u64,
    /// Quest or daily reward.
    pub source: Source,
    /// The quest's or the claim's id.
    pub source_id: u64,
    /// The ledger row the server reported.
    pub ledger_id: u64,
}

/// A grant attempt whose outcome the client could not know.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unsure {
    /// The player.
    pub player_id: u64,
    /// Quest or daily reward.
    pub source: Source,
    /// The quest's id (`None` for a claim: the claim's id is not known until it succeeds).
    pub source_id: Option<u64>,
}
