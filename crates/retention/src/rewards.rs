//! Daily login rewards: claims and status.

use chrono::NaiveDate;
use db_async::{Conn, DbError, args};

use crate::error::{RetentionError, is_missing_parent};
use crate::model::{ClaimedReward, RewardStatus};
use crate::retry::retrying;
use crate::rules::streak::{self, ClaimDecision, PastClaim};
use crate::rules::tiers;
use crate::seeds::RewardTier;
use crate::service::{Retention, inserted_id, lock_player, require_player};

async fn tier(conn: &mut Conn, day_number: u8) -> Result<RewardTier, RetentionError> {
    let found: Option<(u32, u32)> = conn
        .fetch_optional(
            "SELECT coins, xp FROM daily_reward_tiers WHERE day_number = ?",
            args![day_number],
        )
        .await?;
    let (coins, xp) = found.ok_or_else(|| RetentionError::NotInitialized {
        what: format!("daily reward tier {day_number} (run initialize_daily_rewards at startup)"),
    })?;
    Ok(RewardTier {
        day_number,
        coins,
        xp,
    })
}

impl Retention {
    /// Claims `player_id`'s daily reward of game day `day`: at most once per player and
    /// day. The streak continues when the previous claim was on the day before and
    /// restarts at 1 otherwise; the reward is the tier of the streak day
    /// ([`rules::tiers::tier_day`](crate::rules::tiers::tier_day): after day 7 the
    /// cycle starts again at tier 1 while the streak keeps counting).
    ///
    /// One transaction: lock the player row (serialising this player's claims), read
    /// the latest claim, insert the claim (`UNIQUE (player_id, day)`) and its ledger
    /// row (`UNIQUE (source, source_id)`), commit.
    ///
    /// # Errors
    ///
    /// [`RetentionError::AlreadyClaimed`]; [`RetentionError::InvalidInput`] when the
    /// player already claimed a later day (claims only go forward);
    /// [`RetentionError::PlayerNotFound`]; [`RetentionError::NotInitialized`] without
    /// reward tiers; [`RetentionError::Db`]. On every error nothing was written.
    pub async fn claim_daily_reward(
        &self,
        player_id: u64,
        day: NaiveDate,
    ) -> Result<ClaimedReward, RetentionError> {
        retrying("claim_daily_reward", || async {
            let mut conn = self.pool.acquire().await?;
            let now = self.now_utc();
            let mut tx = conn.begin().await?;
            lock_player(&mut tx, player_id).await?;
            // The first consistent read, after the lock: its snapshot includes every
            // claim committed by this player's earlier claim transactions.
            let latest: Option<(NaiveDate, u32)> = tx
                .fetch_optional(
                    "SELECT day, streak FROM daily_reward_claims \
                     WHERE player_id = ? ORDER BY day DESC LIMIT 1",
                    args![player_id],
                )
                .await?;
            let latest = latest.map(|(day, streak)| PastClaim { day, streak });
            let streak = match streak::decide_claim(latest, day) {
                ClaimDecision::Claim { streak } => streak,
                ClaimDecision::AlreadyClaimed => return Err(RetentionError::AlreadyClaimed { player_id, day }),
                ClaimDecision::BeforeLatest { latest } => {
                    let this_day: Option<(u64,)> = tx
                        .fetch_optional(
                            "SELECT id FROM daily_reward_claims WHERE player_id = ? AND day = ?",
                            args![player_id, day],
                        )
                        .await?;
                    return Err(match this_day {
                        Some(_) => RetentionError::AlreadyClaimed { player_id, day },
                        None => RetentionError::invalid(format!(
                            "day {day} is before the player's latest claim ({latest})"
                        )),
                    });
                }
            };
            let tier = tier(&mut tx, tiers::tier_day(streak)).await?;
            let claim_refused = |e: DbError| {
                if e.is_duplicate_key() {
                    RetentionError::AlreadyClaimed { player_id, day }
                } else if is_missing_parent(&e) {
                    RetentionError::PlayerNotFound { player_id }
                } else {
                    e.into()
                }
            };
            let claim = tx
                .execute(
                    "INSERT INTO daily_reward_claims (player_id, day, streak, tier_day, claimed_at) \
                     VALUES (?, ?, ?, ?, ?)",
                    args![player_id, day, streak, tier.day_number, now],
                )
                .await
                .map_err(claim_refused)?;
            let claim_id = inserted_id(claim)?;
            let granted = tx
                .execute(
                    "INSERT INTO reward_ledger (player_id, source, source_id, coins, xp, granted_at) \
                     VALUES (?, 'daily_reward', ?, ?, ?, ?)",
                    args![player_id, claim_id, tier.coins, tier.xp, now],
                )
                .await
                .map_err(claim_refused)?;
            let ledger_id = inserted_id(granted)?;
            tx.commit().await?;
            Ok(ClaimedReward {
                claim_id,
                ledger_id,
                day,
                streak,
                tier,
            })
        })
        .await
    }

    /// Where `player_id` stands on game day `day`: the streak, whether `day` is
    /// claimed, and `day`'s reward (granted, or to be granted by a claim now).
    ///
    /// # Errors
    ///
    /// [`RetentionError::PlayerNotFound`]; [`RetentionError::NotInitialized`] without
    /// reward tiers; [`RetentionError::Db`].
    pub async fn reward_status(
        &self,
        player_id: u64,
        day: NaiveDate,
    ) -> Result<RewardStatus, RetentionError> {
        let mut conn = self.pool.acquire().await?;
        require_player(&mut conn, player_id).await?;
        let latest: Option<(NaiveDate, u32, u8, u32, u32)> = conn
            .fetch_optional(
                "SELECT c.day, c.streak, c.tier_day, l.coins, l.xp \
                 FROM daily_reward_claims c \
                 JOIN reward_ledger l ON l.source = 'daily_reward' AND l.source_id = c.id \
                 WHERE c.player_id = ? AND c.day <= ? ORDER BY c.day DESC LIMIT 1",
                args![player_id, day],
            )
            .await?;
        let status = streak::status(
            latest.map(|(day, streak, ..)| PastClaim { day, streak }),
            day,
        );
        let reward = match latest {
            // Claimed: what was actually granted (tiers may have changed since).
            Some((_, _, day_number, coins, xp)) if status.claimed => RewardTier {
                day_number,
                coins,
                xp,
            },
            _ => tier(&mut conn, tiers::tier_day(status.reward_streak)).await?,
        };
        Ok(RewardStatus {
            day,
            streak: status.current,
            claimed: status.claimed,
            reward_streak: status.reward_streak,
            reward,
        })
    }
}
