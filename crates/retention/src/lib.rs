//! Daily quests and daily login rewards, on the async pool, exactly once under
//! concurrency.
//!
//! # Why
//!
//! The legacy app's retention code opened a new blocking connection for every quest
//! check and reward claim, which helped exhaust the server's `max_connections`, and it
//! decided "already claimed?" in Python between a `SELECT` and an `INSERT`, so a player
//! who tapped twice could be paid twice. Here every operation borrows one connection
//! from the shared [`db_async::AsyncPool`] for one short transaction, and every
//! "exactly once" is enforced by the database (see below), not by luck.
//!
//! # Layout
//!
//! - [`rules`]: the pure rules (streak arithmetic, tier of a streak day, the
//!   deterministic quest choice, progress capping), unit-tested without a database.
//! - [`clock`]: injected time ([`Clock`]) and the game day boundary ([`DayBoundary`]).
//!   The operations take the game day as an argument; [`Retention::today`] computes it
//!   from the injected clock. Nothing in the rules reads a clock.
//! - [`seeds`]: templates and reward tiers defined in code, upserted idempotently.
//! - [`Retention`]: the operations (quests, rewards, seeds, balance).
//! - [`MIGRATOR`] / [`migrate`]: the workspace's one migrations directory
//!   (`/migrations`), embedded; the server, the tests and xtask all run it.
//!
//! # Example
//!
//! ```no_run
//! use retention::{Retention, RetentionError};
//!
//! # async fn demo(pool: db_async::AsyncPool, player_id: u64) -> Result<(), RetentionError> {
//! retention::migrate(&pool).await?;
//! let retention = Retention::new(pool);
//! retention.initialize_quest_templates().await?; // at every start: idempotent
//! retention.initialize_daily_rewards().await?;
//!
//! let today = retention.today();
//! for quest in retention.get_active_quests(player_id, today).await? {
//!     println!("{}: {}/{}", quest.title, quest.progress, quest.target);
//! }
//! retention.update_quest_progress(player_id, today, "game_won", 1).await?;
//! match retention.claim_daily_reward(player_id, today).await {
//!     Ok(r) => println!("streak day {}: {} coins", r.streak, r.tier.coins),
//!     Err(RetentionError::AlreadyClaimed { .. }) => println!("come back tomorrow"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! # Exactly once: how, and why it is enough
//!
//! All tables are InnoDB; transactions run at the server's default isolation level,
//! REPEATABLE READ. Two InnoDB facts carry the argument: an `UPDATE`, an `INSERT`'s
//! unique check and a `SELECT … FOR UPDATE` are *locking* reads of the latest
//! committed row version (not of the snapshot), and they hold their row locks until
//! the transaction ends; and a transaction's snapshot is taken at its first
//! *consistent* (plain) read, not at `BEGIN`.
//!
//! - **Daily reward claim** (once per player and day). The transaction first locks the
//!   player's row (`SELECT … FOR UPDATE`), so one player's claims run one after
//!   another; the latest-claim read comes after the lock and is the first plain read,
//!   so it sees every earlier claim, and the streak is computed from it
//!   ([`rules::streak`]). The claim row and its ledger row are inserted in the same
//!   transaction. Backstops: `UNIQUE (player_id, day)` on the claims and
//!   `UNIQUE (source, source_id)` on the ledger; a duplicate (MySQL error 1062) is
//!   reported as [`RetentionError::AlreadyClaimed`]. Enough because a second claim for
//!   the same day cannot commit whatever the interleaving (the unique key refuses it),
//!   and the claim and its payment commit or roll back together.
//! - **Quest progress** (no lost update, capped, finished once). One transaction:
//!   `SELECT id, progress, target … WHERE … AND completed_at IS NULL AND progress <
//!   target FOR UPDATE` (a locking read of the latest committed rows), then
//!   `UPDATE … SET progress = LEAST(target, progress + ?) WHERE id IN (…)`, then commit.
//!   Concurrent events queue on the rows' exclusive locks and each applies to the value
//!   the previous one committed; the cap is evaluated under the lock. The progress an
//!   event read is the progress it changed, so the one event that takes a quest to its
//!   target knows it, and only that one reports the quest as finished
//!   ([`ProgressOutcome::finished`]).
//! - **Quest completion** (reward once). One transaction: the conditional
//!   `UPDATE … SET completed_at = ? WHERE id = ? AND player_id = ? AND completed_at IS
//!   NULL AND progress >= target` (the affected-row count decides: one caller matches,
//!   the others wait on the row lock, then re-evaluate the condition on the committed
//!   row and match nothing), then the ledger insert (its id is the insert id), then
//!   commit. On no match, a read in the same transaction tells not-finished from
//!   already-completed from not-found. Backstop: the ledger's
//!   `UNIQUE (source, source_id)`. Enough because `completed_at` and the ledger row are
//!   written in one transaction that only the matching caller can reach.
//! - **Quest generation** (one set per player and day). One transaction: lock the
//!   player row, count the day's quests (first plain read, after the lock), insert the
//!   deterministic choice only if there are none. Backstop:
//!   `UNIQUE (player_id, day, template_id)` with `ON DUPLICATE KEY UPDATE id = id`.
//!   The lock matters when the active templates change between two concurrent
//!   generations (two different choices); with unchanged templates the deterministic
//!   choice and the unique key alone would suffice.
//!
//! A stronger isolation level (SERIALIZABLE) would add nothing these locks do not
//! already give and would turn every plain read into a shared lock. A weaker one
//! (READ COMMITTED) would also work for every path above, since each decision rests on
//! locking reads or on reads taken after the deciding lock.
//!
//! **Deadlocks and lock wait timeouts** (MySQL 1213, 1205) roll the whole transaction
//! back; every operation is retried as a whole, up to 5 attempts, with a jittered
//! exponential back-off of 5 ms and up, on a fresh connection each time (none is held
//! while sleeping). **Cancellation**: dropping an operation's future drops its
//! [`db_async::Transaction`]; the pool rolls it back (or closes the connection if a
//! statement was in flight, which makes the server roll back), so a cancelled
//! operation leaves nothing behind.
//!
//! # Days, streaks and the seventh day
//!
//! A game day is a date in the zone of the [`DayBoundary`] (default: UTC midnight).
//! The streak day of a claim is the previous claim's streak day + 1 if that claim was
//! on the day before, else 1. The reward cycle has 7 tiers; streak day *n* earns tier
//! `((n − 1) mod 7) + 1`, so the day after day 7 (streak day 8) earns tier 1 again
//! while the streak count keeps growing (8, 9, …). A missed day restarts the streak,
//! and with it the cycle, at 1.

mod error;
mod migrate;
mod model;
mod quests;
mod retry;
mod rewards;
mod service;

pub mod clock;
pub mod rules;
pub mod seeds;

pub use clock::{Clock, DayBoundary, ManualClock, SystemClock};
pub use error::RetentionError;
pub use migrate::{MIGRATOR, migrate};
pub use model::{Balance, ClaimedReward, DailyQuest, ProgressOutcome, QuestReward, RewardStatus};
pub use seeds::{QUEST_TEMPLATES, QuestTemplate, REWARD_TIERS, RewardTier, SeedReport};
pub use service::{MAX_QUESTS_PER_DAY, Retention, RetentionBuilder};

/// The `chrono` this API speaks (`NaiveDate` days, `DateTime<Utc>` instants).
pub use chrono;
