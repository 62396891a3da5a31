//! The service: a pool, settings and a clock; the operations live in `quests.rs`,
//! `rewards.rs` and here (seeds, balance).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use db_async::{AsyncPool, Conn, DbError, args};

use crate::clock::{Clock, DayBoundary, SystemClock};
use crate::error::RetentionError;
use crate::model::Balance;
use crate::retry::retrying;
use crate::seeds::{self, QUEST_TEMPLATES, QuestTemplate, REWARD_TIERS, RewardTier, SeedReport};

/// Daily quests and daily rewards for every player, on one [`AsyncPool`].
///
/// Cheap to clone (the pool and the clock are shared). Every operation takes one
/// pooled connection at a time, for one short transaction at most, and gives it back
/// before it returns (also when it fails or its future is dropped).
#[derive(Debug, Clone)]
pub struct Retention {
    pub(crate) pool: AsyncPool,
    pub(crate) quests_per_day: usize,
    pub(crate) day_boundary: DayBoundary,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Builds a [`Retention`]; see [`Retention::builder`].
#[derive(Debug)]
pub struct RetentionBuilder {
    pool: AsyncPool,
    quests_per_day: usize,
    day_boundary: DayBoundary,
    clock: Arc<dyn Clock>,
}

/// Most quests a day can hold (the `slot` column is a `TINYINT UNSIGNED`; more than a
/// handful would make no game sense anyway).
pub const MAX_QUESTS_PER_DAY: usize = 32;

impl RetentionBuilder {
    /// Quests handed out per player and day (default 3; fewer if fewer templates are
    /// active).
    pub fn quests_per_day(mut self, k: usize) -> Self {
        self.quests_per_day = k;
        self
    }

    /// When game days begin (default: UTC midnight).
    pub fn day_boundary(mut self, boundary: DayBoundary) -> Self {
        self.day_boundary = boundary;
        self
    }

    /// Where "now" comes from (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The service.
    ///
    /// # Errors
    ///
    /// [`RetentionError::InvalidInput`] when `quests_per_day` is not in
    /// 1..=[`MAX_QUESTS_PER_DAY`].
    pub fn build(self) -> Result<Retention, RetentionError> {
        if !(1..=MAX_QUESTS_PER_DAY).contains(&self.quests_per_day) {
            return Err(RetentionError::invalid(format!(
                "quests_per_day {}: accepted 1..={MAX_QUESTS_PER_DAY}",
                self.quests_per_day
            )));
        }
        Ok(Retention {
            pool: self.pool,
            quests_per_day: self.quests_per_day,
            day_boundary: self.day_boundary,
            clock: self.clock,
        })
    }
}

impl Retention {
    /// The service with default settings: 3 quests a day, days begin at UTC midnight,
    /// the system clock.
    pub fn new(pool: AsyncPool) -> Retention {
        Retention::builder(pool)
            .build()
            .expect("the default settings are valid")
    }

    /// A builder, to change the defaults of [`Retention::new`].
    pub fn builder(pool: AsyncPool) -> RetentionBuilder {
        RetentionBuilder {
            pool,
            quests_per_day: 3,
            day_boundary: DayBoundary::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The pool this service uses.
    pub fn pool(&self) -> &AsyncPool {
        &self.pool
    }

    /// Quests handed out per player and day.
    pub fn quests_per_day(&self) -> usize {
        self.quests_per_day
    }

    /// When game days begin.
    pub fn day_boundary(&self) -> DayBoundary {
        self.day_boundary
    }

    /// The injected clock's "now".
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The current game day by the injected clock and the day boundary: what a caller
    /// passes as `day` for "today".
    pub fn today(&self) -> NaiveDate {
        self.day_boundary.day_of(self.clock.now())
    }

    /// "now" as stored in the `DATETIME(6)` columns (UTC).
    pub(crate) fn now_utc(&self) -> NaiveDateTime {
        self.clock.now().naive_utc()
    }

    /// Seeds the quest templates of this release ([`QUEST_TEMPLATES`]). Run at every
    /// server start: idempotent (a second run reports everything unchanged and writes
    /// nothing), a template changed in code is updated in place (same id), one removed
    /// from code is deactivated.
    ///
    /// # Errors
    ///
    /// [`RetentionError::Db`] when the database fails.
    pub async fn initialize_quest_templates(&self) -> Result<SeedReport, RetentionError> {
        self.seed_quest_templates(QUEST_TEMPLATES).await
    }

    /// As [`Retention::initialize_quest_templates`], with the given templates as the
    /// whole truth (for tools and tests).
    ///
    /// # Errors
    ///
    /// [`RetentionError::InvalidInput`] for an invalid template (checked before any
    /// write), [`RetentionError::Db`] when the database fails.
    pub async fn seed_quest_templates(
        &self,
        templates: &[QuestTemplate],
    ) -> Result<SeedReport, RetentionError> {
        retrying("seed_quest_templates", || async {
            let mut conn = self.pool.acquire().await?;
            seeds::seed_templates(&mut conn, templates).await
        })
        .await
    }

    /// Seeds the 7-day reward cycle of this release ([`REWARD_TIERS`]); idempotent like
    /// [`Retention::initialize_quest_templates`].
    ///
    /// # Errors
    ///
    /// [`RetentionError::Db`] when the database fails.
    pub async fn initialize_daily_rewards(&self) -> Result<SeedReport, RetentionError> {
        self.seed_reward_tiers(&REWARD_TIERS).await
    }

    /// As [`Retention::initialize_daily_rewards`], with the given tiers.
    ///
    /// # Errors
    ///
    /// [`RetentionError::InvalidInput`] unless the tiers cover days 1..=7 once each,
    /// [`RetentionError::Db`] when the database fails.
    pub async fn seed_reward_tiers(
        &self,
        tiers: &[RewardTier],
    ) -> Result<SeedReport, RetentionError> {
        retrying("seed_reward_tiers", || async {
            let mut conn = self.pool.acquire().await?;
            seeds::seed_tiers(&mut conn, tiers).await
        })
        .await
    }

    /// Everything `player_id` was ever granted (the ledger's sum).
    ///
    /// # Errors
    ///
    /// [`RetentionError::PlayerNotFound`], [`RetentionError::Db`].
    pub async fn balance(&self, player_id: u64) -> Result<Balance, RetentionError> {
        let mut conn = self.pool.acquire().await?;
        require_player(&mut conn, player_id).await?;
        let (coins, xp): (u64, u64) = conn
            .fetch_one(
                "SELECT CAST(COALESCE(SUM(coins), 0) AS UNSIGNED), \
                 CAST(COALESCE(SUM(xp), 0) AS UNSIGNED) \
                 FROM reward_ledger WHERE player_id = ?",
                args![player_id],
            )
            .await?;
        Ok(Balance { coins, xp })
    }
}

/// Fails with [`RetentionError::PlayerNotFound`] unless the player exists.
pub(crate) async fn require_player(conn: &mut Conn, player_id: u64) -> Result<(), RetentionError> {
    let found: Option<(u64,)> = conn
        .fetch_optional("SELECT id FROM players WHERE id = ?", args![player_id])
        .await?;
    found
        .map(|_| ())
        .ok_or(RetentionError::PlayerNotFound { player_id })
}

/// Locks the player's row until the transaction ends (`SELECT … FOR UPDATE`): this
/// serialises the transactions that decide something per player (the day's quest
/// set, the next claim's streak). Fails with [`RetentionError::PlayerNotFound`] if
/// there is no such player.
pub(crate) async fn lock_player(tx: &mut Conn, player_id: u64) -> Result<(), RetentionError> {
    let found: Option<(u64,)> = tx
        .fetch_optional(
            "SELECT id FROM players WHERE id = ? FOR UPDATE",
            args![player_id],
        )
        .await?;
    found
        .map(|_| ())
        .ok_or(RetentionError::PlayerNotFound { player_id })
}

/// The auto-increment id of the row an `INSERT` just added.
pub(crate) fn inserted_id(result: db_async::ExecResult) -> Result<u64, RetentionError> {
    result.last_insert_id.ok_or_else(|| {
        RetentionError::Db(DbError::query(
            None,
            None,
            "an INSERT into an AUTO_INCREMENT table returned no insert id",
        ))
    })
}
