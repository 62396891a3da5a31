//! Daily quests: generation, listing, progress, completion.

use chrono::{NaiveDate, NaiveDateTime};
use db_async::{Args, AsyncConn, Conn, args};
use sqlx::AssertSqlSafe;

use crate::error::{RetentionError, is_missing_parent};
use crate::model::{DailyQuest, ProgressOutcome, QuestReward};
use crate::retry::retrying;
use crate::rules::{choice, progress};
use crate::service::{Retention, inserted_id, lock_player, require_player};

#[derive(sqlx::FromRow)]
struct QuestRow {
    id: u64,
    player_id: u64,
    day: NaiveDate,
    template_code: String,
    title: String,
    event_kind: String,
    progress: u32,
    target: u32,
    reward_coins: u32,
    reward_xp: u32,
    completed_at: Option<NaiveDateTime>,
}

impl From<QuestRow> for DailyQuest {
    fn from(r: QuestRow) -> DailyQuest {
        DailyQuest {
            id: r.id,
            player_id: r.player_id,
            day: r.day,
            template_code: r.template_code,
            title: r.title,
            event_kind: r.event_kind,
            progress: r.progress,
            target: r.target,
            reward_coins: r.reward_coins,
            reward_xp: r.reward_xp,
            completed_at: r.completed_at.map(|t| t.and_utc()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ActiveTemplate {
    id: u64,
    code: String,
    event_kind: String,
    target: u32,
    reward_coins: u32,
    reward_xp: u32,
}

/// The columns of one generated quest, in the order of the `INSERT` below.
const INSERT_QUESTS: &str = "INSERT INTO player_daily_quests \
    (player_id, day, template_id, slot, event_kind, target, reward_coins, reward_xp, created_at) VALUES ";
const ONE_QUEST: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

async fn list_quests(
    conn: &mut Conn,
    player_id: u64,
    day: NaiveDate,
) -> Result<Vec<DailyQuest>, RetentionError> {
    let rows: Vec<QuestRow> = conn
        .fetch_all(
            "SELECT q.id, q.player_id, q.day, t.code AS template_code, t.title, q.event_kind, \
             q.progress, q.target, q.reward_coins, q.reward_xp, q.completed_at \
             FROM player_daily_quests q JOIN daily_quest_templates t ON t.id = q.template_id \
             WHERE q.player_id = ? AND q.day = ? ORDER BY q.slot, q.id",
            args![player_id, day],
        )
        .await?;
    Ok(rows.into_iter().map(DailyQuest::from).collect())
}

async fn count_quests(
    conn: &mut Conn,
    player_id: u64,
    day: NaiveDate,
) -> Result<i64, RetentionError> {
    let (n,): (i64,) = conn
        .fetch_one(
            "SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ? AND day = ?",
            args![player_id, day],
        )
        .await?;
    Ok(n)
}

fn validate_event_kind(event_kind: &str) -> Result<(), RetentionError> {
    let len = event_kind.chars().count();
    if len == 0 || len > 32 {
        return Err(RetentionError::invalid(format!(
            "event_kind must have 1..=32 characters, got {len}"
        )));
    }
    Ok(())
}

impl Retention {
    /// Hands `player_id` the day's quests unless they have them already, and returns
    /// them (in choice order). The choice is deterministic per (player, day)
    /// ([`rules::choice`](crate::rules::choice)) among the active templates;
    /// concurrent calls produce one set, never two.
    ///
    /// # Errors
    ///
    /// [`RetentionError::PlayerNotFound`], [`RetentionError::Db`].
    pub async fn generate_daily_quests(
        &self,
        player_id: u64,
        day: NaiveDate,
    ) -> Result<Vec<DailyQuest>, RetentionError> {
        retrying("generate_daily_quests", || async {
            let mut conn = self.pool.acquire().await?;
            self.generate_on(&mut conn, player_id, day).await?;
            list_quests(&mut conn, player_id, day).await
        })
        .await
    }

    /// The player's quests of `day` (finished and completed ones included; see
    /// [`DailyQuest::is_finished`], [`DailyQuest::is_completed`]), generated on the
    /// first call of the day.
    ///
    /// # Errors
    ///
    /// [`RetentionError::PlayerNotFound`], [`RetentionError::Db`].
    pub async fn get_active_quests(
        &self,
        player_id: u64,
        day: NaiveDate,
    ) -> Result<Vec<DailyQuest>, RetentionError> {
        retrying("get_active_quests", || async {
            let mut conn = self.pool.acquire().await?;
            let quests = list_quests(&mut conn, player_id, day).await?;
            if !quests.is_empty() {
                return Ok(quests);
            }
            self.generate_on(&mut conn, player_id, day).await?;
            list_quests(&mut conn, player_id, day).await
        })
        .await
    }

    /// One transaction: lock the player row (serialising generation per player),
    /// and insert the day's choice unless the day has quests already.
    ///
    /// The count runs after the lock is granted; it is the transaction's first
    /// consistent read, so its REPEATABLE READ snapshot is taken then and includes
    /// whatever an earlier generator committed before releasing the lock.
    async fn generate_on(
        &self,
        conn: &mut AsyncConn,
        player_id: u64,
        day: NaiveDate,
    ) -> Result<(), RetentionError> {
        let now = self.now_utc();
        let mut tx = conn.begin().await?;
        lock_player(&mut tx, player_id).await?;
        if count_quests(&mut tx, player_id, day).await? > 0 {
            tx.rollback().await?; // nothing written; releases the player lock now
            return Ok(());
        }
        let templates: Vec<ActiveTemplate> = tx
            .fetch_all(
                "SELECT id, code, event_kind, target, reward_coins, reward_xp \
                 FROM daily_quest_templates WHERE active = TRUE",
                args![],
            )
            .await?;
        let codes: Vec<&str> = templates.iter().map(|t| t.code.as_str()).collect();
        let chosen = choice::choose(&codes, self.quests_per_day, player_id, day);
        if chosen.is_empty() {
            tracing::warn!("no active quest templates: run initialize_quest_templates at startup");
            tx.rollback().await?;
            return Ok(());
        }
        let mut sql = String::from(INSERT_QUESTS);
        let mut values = Args::default();
        for (slot, code) in chosen.iter().enumerate() {
            let t = templates
                .iter()
                .find(|t| t.code == *code)
                .expect("chosen codes come from the templates");
            if slot > 0 {
                sql.push_str(", ");
            }
            sql.push_str(ONE_QUEST);
            // `slot` < MAX_QUESTS_PER_DAY (32), so it fits in the TINYINT UNSIGNED column.
            let slot = u8::try_from(slot).expect("slot below MAX_QUESTS_PER_DAY");
            values
                .push(player_id)
                .push(day)
                .push(t.id)
                .push(slot)
                .push(t.event_kind.clone())
                .push(t.target)
                .push(t.reward_coins)
                .push(t.reward_xp)
                .push(now);
        }
        // The UNIQUE (player_id, day, template_id) key is the backstop; a duplicate is
        // a no-op, and unlike INSERT IGNORE this still fails on any other error.
        sql.push_str(" ON DUPLICATE KEY UPDATE id = id");
        tx.execute(AssertSqlSafe(sql), values).await.map_err(|e| {
            if is_missing_parent(&e) {
                RetentionError::PlayerNotFound { player_id }
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds `amount` to every not yet completed quest of `player_id` on `day` whose
    /// event kind is `event_kind`, each capped at its target
    /// ([`rules::progress::advance`](crate::rules::progress::advance)). Generates the
    /// day's quests first if the player has none yet, so no event is lost. Returns how
    /// many quests advanced (0 when none matched or all were already at their target).
    ///
    /// [`Retention::record_progress`] does the same and also says which quests this
    /// event finished.
    ///
    /// # Errors
    ///
    /// As [`Retention::record_progress`].
    pub async fn update_quest_progress(
        &self,
        player_id: u64,
        day: NaiveDate,
        event_kind: &str,
        amount: i64,
    ) -> Result<u64, RetentionError> {
        Ok(self
            .record_progress(player_id, day, event_kind, amount)
            .await?
            .advanced)
    }

    /// Applies one progress event: adds `amount` to every not yet completed quest of
    /// `player_id` on `day` whose event kind is `event_kind`, each capped at its target
    /// ([`rules::progress::advance`](crate::rules::progress::advance)), and reports how
    /// many quests advanced and which of them this event finished (brought to their
    /// target). Generates the day's quests first if the player has none yet, so no
    /// event is lost.
    ///
    /// Exactly once: one transaction locks the matching quests (`SELECT … FOR UPDATE`,
    /// a locking read of the latest committed rows), advances them and commits.
    /// Concurrent events on the same quests queue on those row locks, and each sees
    /// the progress the previous one committed; so of any number of concurrent events
    /// exactly one finds a quest below its target and leaves it at its target, and only
    /// that one lists it in [`ProgressOutcome::finished`]. (If the answer to the commit
    /// is lost, the event fails and no caller lists the quest.)
    ///
    /// # Errors
    ///
    /// [`RetentionError::InvalidInput`] for `amount <= 0` or an empty or over-long
    /// event kind (before any I/O); [`RetentionError::PlayerNotFound`];
    /// [`RetentionError::Db`]. On every error nothing was written, except when the
    /// connection was lost during the commit (then the event may have been applied).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the event's transaction, which the pool rolls back
    /// (or closes the connection, which makes the server roll back).
    pub async fn record_progress(
        &self,
        player_id: u64,
        day: NaiveDate,
        event_kind: &str,
        amount: i64,
    ) -> Result<ProgressOutcome, RetentionError> {
        let amount = progress::validate_amount(amount).ok_or_else(|| {
            RetentionError::invalid(format!("progress amount must be more than 0, got {amount}"))
        })?;
        validate_event_kind(event_kind)?;
        retrying("record_progress", || async {
            let mut conn = self.pool.acquire().await?;
            let outcome = advance(&mut conn, player_id, day, event_kind, amount).await?;
            if outcome.advanced > 0 || count_quests(&mut conn, player_id, day).await? > 0 {
                return Ok(outcome);
            }
            // No quests yet today (or no such player): generate, then apply the event.
            self.generate_on(&mut conn, player_id, day).await?;
            advance(&mut conn, player_id, day, event_kind, amount).await
        })
        .await
    }

    /// Grants the reward of a finished quest, exactly once: marks it completed and
    /// writes its ledger row in one transaction.
    ///
    /// The conditional `UPDATE … WHERE completed_at IS NULL AND progress >= target`
    /// takes the row's exclusive lock; of concurrent callers, one matches the row and
    /// the others wait for its commit and then match nothing. The ledger's
    /// `UNIQUE (source, source_id)` backs this up.
    ///
    /// # Errors
    ///
    /// [`RetentionError::QuestNotFinished`], [`RetentionError::QuestAlreadyCompleted`],
    /// [`RetentionError::QuestNotFound`] (also for another player's quest),
    /// [`RetentionError::PlayerNotFound`], [`RetentionError::Db`]. On every error
    /// nothing was written.
    pub async fn complete_quest(
        &self,
        player_id: u64,
        quest_id: u64,
    ) -> Result<QuestReward, RetentionError> {
        retrying("complete_quest", || async {
            let mut conn = self.pool.acquire().await?;
            let now = self.now_utc();
            let mut tx = conn.begin().await?;
            let marked = tx
                .execute(
                    "UPDATE player_daily_quests SET completed_at = ? \
                     WHERE id = ? AND player_id = ? AND completed_at IS NULL AND progress >= target",
                    args![now, quest_id, player_id],
                )
                .await?;
            if marked.rows_affected == 0 {
                // Why not? Read in the same transaction: the UPDATE above waited for
                // any concurrent completer's lock, and this first consistent read
                // takes its snapshot only now, after that commit.
                let state: Option<(u32, u32, bool)> = tx
                    .fetch_optional(
                        "SELECT progress, target, completed_at IS NOT NULL \
                         FROM player_daily_quests WHERE id = ? AND player_id = ?",
                        args![quest_id, player_id],
                    )
                    .await?;
                tx.rollback().await?;
                return Err(match state {
                    Some((_, _, true)) => RetentionError::QuestAlreadyCompleted { quest_id },
                    Some((progress, target, false)) => RetentionError::QuestNotFinished {
                        quest_id,
                        progress,
                        target,
                    },
                    None => {
                        require_player(&mut conn, player_id).await?;
                        RetentionError::QuestNotFound { player_id, quest_id }
                    }
                });
            }
            let (coins, xp): (u32, u32) = tx
                .fetch_one(
                    "SELECT reward_coins, reward_xp FROM player_daily_quests WHERE id = ?",
                    args![quest_id],
                )
                .await?;
            let granted = tx
                .execute(
                    "INSERT INTO reward_ledger (player_id, source, source_id, coins, xp, granted_at) \
                     VALUES (?, 'quest', ?, ?, ?, ?)",
                    args![player_id, quest_id, coins, xp, now],
                )
                .await
                .map_err(|e| {
                    if e.is_duplicate_key() {
                        RetentionError::QuestAlreadyCompleted { quest_id }
                    } else if is_missing_parent(&e) {
                        RetentionError::PlayerNotFound { player_id }
                    } else {
                        e.into()
                    }
                })?;
            let ledger_id = inserted_id(granted)?;
            tx.commit().await?;
            Ok(QuestReward {
                quest_id,
                ledger_id,
                coins,
                xp,
            })
        })
        .await
    }
}

/// One event's transaction: lock the quests it advances, advance them with
/// `LEAST(target, progress + amount)` ([`progress::advance`] evaluated under the row
/// locks), commit. The locked rows are the latest committed versions and stay locked
/// until the commit, so the progress read here is the progress the `UPDATE` changes: a
/// quest this event takes from below its target to its target is finished by this
/// event and no other.
async fn advance(
    conn: &mut AsyncConn,
    player_id: u64,
    day: NaiveDate,
    event_kind: &str,
    amount: u32,
) -> Result<ProgressOutcome, RetentionError> {
    let mut tx = conn.begin().await?;
    let quests: Vec<(u64, u32, u32)> = tx
        .fetch_all(
            "SELECT id, progress, target FROM player_daily_quests \
             WHERE player_id = ? AND day = ? AND event_kind = ? \
             AND completed_at IS NULL AND progress < target ORDER BY id FOR UPDATE",
            args![player_id, day, event_kind],
        )
        .await?;
    if quests.is_empty() {
        tx.rollback().await?; // nothing to advance; releases the locks now
        return Ok(ProgressOutcome::default());
    }
    // Only placeholders are spliced in: one `?` per locked quest.
    let mut sql = String::from(
        "UPDATE player_daily_quests SET progress = LEAST(target, progress + ?) WHERE id IN (",
    );
    let mut values = Args::default();
    values.push(amount);
    for (i, (id, _, _)) in quests.iter().enumerate() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
        values.push(*id);
    }
    sql.push(')');
    tx.execute(AssertSqlSafe(sql), values).await?;
    tx.commit().await?;
    let finished = quests
        .iter()
        .filter(|&&(_, before, target)| {
            progress::is_finished(progress::advance(before, amount, target), target)
        })
        .map(|&(id, _, _)| id)
        .collect();
    Ok(ProgressOutcome {
        advanced: quests.len() as u64,
        finished,
    })
}
