//! Retention on the async pool, against a real MariaDB: exactly-once claims,
//! completions and quest generation under concurrency, capped progress, streaks over
//! simulated days, a completion cancelled mid-transaction, idempotent seeds and typed
//! refusals of bad input.
//!
//! Every test runs on a budget of `MAX_CONNECTIONS = 4` with a 10 s pool timeout, most
//! with 50 to 200 concurrent tasks, and checks that no caller hit a pool timeout and
//! that every connection came back.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DbError};
use integration_tests::{Server, TestDb, async_pool, budget, init_tracing, runtime};
use retention::chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use retention::rules::{choice, tiers};
use retention::{
    DayBoundary, ManualClock, QUEST_TEMPLATES, QuestTemplate, REWARD_TIERS, Retention,
    RetentionError, SeedReport,
};
use tokio::task::JoinSet;

/// `MAX_CONNECTIONS` for every test here.
const MAX_CONNECTIONS: u32 = 4;

/// One test's world: its own database, a budget of 4, a pool, the migrated and
/// seeded schema, and a service on a manual clock.
struct World {
    budget: Budget,
    pool: AsyncPool,
    clock: Arc<ManualClock>,
    retention: Retention,
}

fn noon(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

/// A database of its own on the shared server, and a budget of [`MAX_CONNECTIONS`].
fn database(prefix: &str) -> (TestDb, Budget) {
    init_tracing();
    (
        TestDb::create(Server::shared(), prefix),
        budget(MAX_CONNECTIONS),
    )
}

impl World {
    /// Migrates and seeds; call inside the runtime.
    async fn new(db: &TestDb, budget: &Budget) -> World {
        let pool = async_pool(&db.url, budget);
        retention::migrate(&pool).await.expect("migrations run");
        let clock = Arc::new(ManualClock::new(noon(2025, 3, 1)));
        let retention = Retention::builder(pool.clone())
            .clock(clock.clone())
            .build()
            .expect("valid settings");
        retention
            .initialize_quest_templates()
            .await
            .expect("templates seeded");
        retention
            .initialize_daily_rewards()
            .await
            .expect("tiers seeded");
        World {
            budget: budget.clone(),
            pool,
            clock,
            retention,
        }
    }

    /// A new player, created with plain SQL through the pool.
    async fn player(&self, name: &str) -> u64 {
        let mut conn = self.pool.acquire().await.unwrap();
        conn.execute(
            "INSERT INTO players (name) VALUES (?)",
            args![name.to_owned()],
        )
        .await
        .unwrap()
        .last_insert_id
        .expect("an auto-increment id")
    }

    /// `SELECT COUNT(*) …` with one id argument.
    async fn count(&self, sql: &'static str, id: u64) -> i64 {
        let mut conn = self.pool.acquire().await.unwrap();
        let (n,): (i64,) = conn.fetch_one(sql, args![id]).await.unwrap();
        n
    }

    /// A statement with two id arguments (test set-up).
    async fn exec(&self, sql: &'static str, a: u64, b: u64) {
        let mut conn = self.pool.acquire().await.unwrap();
        conn.execute(sql, args![a, b]).await.unwrap();
    }

    /// No caller timed out waiting for a connection, and every connection came back.
    async fn assert_healthy(&self) {
        let s = self.budget.snapshot();
        assert_eq!(s.capacity, MAX_CONNECTIONS);
        assert_eq!(
            s.async_side.acquire_timeouts_total, 0,
            "a pool timeout happened: {s:?}"
        );
        assert!(
            poll(Duration::from_secs(5), || async {
                let s = self.budget.snapshot();
                s.async_side.active == 0 && s.in_use <= MAX_CONNECTIONS
            })
            .await,
            "connections still checked out: {:?}",
            self.budget.snapshot()
        );
    }
}

/// Polls `cond` every 10 ms until it holds or `within` passes; returns whether it held.
async fn poll<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fails the test on a pool timeout (or any database error), with the message.
fn no_db_error(e: &RetentionError) {
    if let RetentionError::Db(db) = e {
        assert!(
            !matches!(db, DbError::PoolTimeout { .. }),
            "pool timeout with MAX_CONNECTIONS={MAX_CONNECTIONS}: {db}"
        );
        panic!("database error: {db}");
    }
}

/// Runs `n` copies of `task` at once (spawned, so on both worker threads) and
/// returns their results.
async fn concurrently<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(task(i));
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r.expect("task did not panic"));
    }
    out
}

// 1. ------------------------------------------------------------------------------

#[test]
fn a_hundred_concurrent_claims_of_one_day_succeed_exactly_once() {
    let (db, budget) = database("ret_claims");
    runtime().block_on(async {
        // Arrange
        let w = World::new(&db, &budget).await;
        let player = w.player("claimer").await;
        let day = w.retention.today();

        // Act
        let results = concurrently(100, |_| {
            let r = w.retention.clone();
            async move { r.claim_daily_reward(player, day).await }
        })
        .await;

        // Assert
        let mut ok = Vec::new();
        let mut already = 0;
        for r in results {
            match r {
                Ok(claim) => ok.push(claim),
                Err(RetentionError::AlreadyClaimed { player_id, day: d }) => {
                    assert_eq!((player_id, d), (player, day));
                    already += 1;
                }
                Err(e) => {
                    no_db_error(&e);
                    panic!("unexpected: {e}");
                }
            }
        }
        assert_eq!((ok.len(), already), (1, 99));
        let claim = ok[0];
        assert_eq!((claim.streak, claim.tier), (1, REWARD_TIERS[0]));
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM reward_ledger WHERE player_id = ? AND source = 'daily_reward'",
                player
            )
            .await,
            1
        );
        assert_eq!(
            w.count("SELECT COUNT(*) FROM daily_reward_claims WHERE player_id = ?", player).await,
            1
        );
        let ledger_of_claim = w
            .count(
                "SELECT COUNT(*) FROM reward_ledger WHERE source = 'daily_reward' AND source_id = ?",
                claim.claim_id,
            )
            .await;
        assert_eq!(ledger_of_claim, 1);
        let balance = w.retention.balance(player).await.unwrap();
        assert_eq!(
            (balance.coins, balance.xp),
            (u64::from(REWARD_TIERS[0].coins), u64::from(REWARD_TIERS[0].xp))
        );
        w.assert_healthy().await;
    });
}

// 2. ------------------------------------------------------------------------------

#[test]
fn two_hundred_concurrent_progress_events_stop_exactly_at_the_target() {
    let (db, budget) = database("ret_progress");
    runtime().block_on(async {
        // Arrange: two of the player's quests listen to one event kind, with targets
        // 50 and 500; the third listens to something else.
        let w = World::new(&db, &budget).await;
        let player = w.player("grinder").await;
        let day = w.retention.today();
        let quests = w.retention.get_active_quests(player, day).await.unwrap();
        assert_eq!(quests.len(), 3);
        let (small, large, other) = (quests[0].id, quests[1].id, quests[2].id);
        w.exec(
            "UPDATE player_daily_quests SET event_kind = 'test_tick', target = ? WHERE id = ?",
            50,
            small,
        )
        .await;
        w.exec(
            "UPDATE player_daily_quests SET event_kind = 'test_tick', target = ? WHERE id = ?",
            500,
            large,
        )
        .await;

        // Act
        let results = concurrently(200, |_| {
            let r = w.retention.clone();
            async move { r.update_quest_progress(player, day, "test_tick", 1).await }
        })
        .await;

        // Assert: each event advanced both quests until the small one was full, then
        // only the large one: 50 + 200 advances in all, none lost, none past a target.
        let mut advanced = 0;
        for r in results {
            match r {
                Ok(n) => {
                    assert!((1..=2).contains(&n), "one event advanced {n} quests");
                    advanced += n;
                }
                Err(e) => {
                    no_db_error(&e);
                    panic!("unexpected: {e}");
                }
            }
        }
        assert_eq!(advanced, 50 + 200);
        let after = w.retention.get_active_quests(player, day).await.unwrap();
        let progress = |id| after.iter().find(|q| q.id == id).unwrap().progress;
        assert_eq!(progress(small), 50);
        assert_eq!(progress(large), 200);
        assert_eq!(progress(other), 0);
        assert!(after.iter().find(|q| q.id == small).unwrap().is_finished());
        w.assert_healthy().await;
    });
}

#[test]
fn of_forty_concurrent_events_exactly_one_reports_the_quest_it_finished() {
    let (db, budget) = database("ret_finished");
    runtime().block_on(async {
        // Arrange: two quests on one event kind, with targets 5 and 12.
        let w = World::new(&db, &budget).await;
        let player = w.player("photo-finish").await;
        let day = w.retention.today();
        let quests = w.retention.get_active_quests(player, day).await.unwrap();
        let (five, twelve) = (quests[0].id, quests[1].id);
        for (target, id) in [(5, five), (12, twelve)] {
            w.exec(
                "UPDATE player_daily_quests SET event_kind = 'test_tick', target = ? WHERE id = ?",
                target,
                id,
            )
            .await;
        }

        // Act
        let results = concurrently(40, |_| {
            let r = w.retention.clone();
            async move { r.record_progress(player, day, "test_tick", 1).await }
        })
        .await;

        // Assert
        let mut advanced = 0;
        let mut finished = Vec::new();
        for r in results {
            let outcome = r.unwrap_or_else(|e| {
                no_db_error(&e);
                panic!("unexpected: {e}")
            });
            advanced += outcome.advanced;
            finished.extend(outcome.finished);
        }
        finished.sort_unstable();
        assert_eq!(advanced, 5 + 12, "no advance lost, none past a target");
        let mut expected = vec![five, twelve];
        expected.sort_unstable();
        assert_eq!(
            finished, expected,
            "each quest finished by exactly one event"
        );
        let again = w
            .retention
            .record_progress(player, day, "test_tick", 1)
            .await
            .unwrap();
        assert_eq!((again.advanced, again.finished.len()), (0, 0));
        w.assert_healthy().await;
    });
}

// 3. ------------------------------------------------------------------------------

#[test]
fn fifty_concurrent_completions_of_a_finished_quest_grant_one_reward() {
    let (db, budget) = database("ret_complete");
    runtime().block_on(async {
        // Arrange: a finished quest.
        let w = World::new(&db, &budget).await;
        let player = w.player("finisher").await;
        let day = w.retention.today();
        let quest = w.retention.get_active_quests(player, day).await.unwrap()[0].clone();
        let advanced = w
            .retention
            .update_quest_progress(player, day, &quest.event_kind, i64::from(quest.target) + 5)
            .await
            .unwrap();
        assert_eq!(advanced, 1);

        // Act
        let results = concurrently(50, |_| {
            let r = w.retention.clone();
            async move { r.complete_quest(player, quest.id).await }
        })
        .await;

        // Assert
        let mut rewards = Vec::new();
        let mut already = 0;
        for r in results {
            match r {
                Ok(reward) => rewards.push(reward),
                Err(RetentionError::QuestAlreadyCompleted { quest_id }) => {
                    assert_eq!(quest_id, quest.id);
                    already += 1;
                }
                Err(e) => {
                    no_db_error(&e);
                    panic!("unexpected: {e}");
                }
            }
        }
        assert_eq!((rewards.len(), already), (1, 49));
        let reward = rewards[0];
        assert_eq!(
            (reward.coins, reward.xp),
            (quest.reward_coins, quest.reward_xp)
        );
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM reward_ledger WHERE source = 'quest' AND source_id = ?",
                quest.id
            )
            .await,
            1
        );
        // The ledger id returned is the row's id (the insert id).
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM reward_ledger WHERE id = ? AND source = 'quest'",
                reward.ledger_id
            )
            .await,
            1
        );
        let after = w.retention.get_active_quests(player, day).await.unwrap();
        let done = after.iter().find(|q| q.id == quest.id).unwrap();
        assert!(done.is_completed());
        assert_eq!(done.progress, done.target, "capped");
        let balance = w.retention.balance(player).await.unwrap();
        assert_eq!(balance.coins, u64::from(quest.reward_coins));
        w.assert_healthy().await;
    });
}

// 4. ------------------------------------------------------------------------------

#[test]
fn a_streak_over_simulated_days_wraps_after_day_seven_and_restarts_after_a_missed_day() {
    let (db, budget) = database("ret_streak");
    runtime().block_on(async {
        let w = World::new(&db, &budget).await;
        let player = w.player("loyal").await;
        let r = &w.retention;
        let start = r.today();
        let mut expected_coins = 0u64;

        // Days 1..=8 claimed in a row: streak 1..=8; tiers 1..=7, then tier 1 again on
        // streak day 8 (the cycle wraps, the streak keeps counting).
        for n in 1..=8u32 {
            let day = r.today();
            let before = r.reward_status(player, day).await.unwrap();
            assert!(!before.claimed);
            assert_eq!(before.streak, n - 1, "day {n}: yesterday's streak is alive");
            assert_eq!(before.reward_streak, n);
            assert_eq!(before.reward.day_number, tiers::tier_day(n));

            let claim = r.claim_daily_reward(player, day).await.unwrap();
            assert_eq!(claim.streak, n, "day {n}");
            let tier = if n <= 7 { n as u8 } else { 1 };
            assert_eq!(claim.tier, REWARD_TIERS[usize::from(tier - 1)], "day {n}");
            expected_coins += u64::from(claim.tier.coins);

            assert!(matches!(
                r.claim_daily_reward(player, day).await,
                Err(RetentionError::AlreadyClaimed { .. })
            ));
            let after = r.reward_status(player, day).await.unwrap();
            assert!(after.claimed);
            assert_eq!((after.streak, after.reward), (n, claim.tier));

            w.clock.advance(ChronoDuration::days(1));
        }

        // Day 9 passes without a claim. During it, the streak is still alive (8), and a
        // claim would have been streak day 9, tier 2.
        let missed = r.today();
        let during = r.reward_status(player, missed).await.unwrap();
        assert_eq!(
            (during.claimed, during.streak, during.reward_streak),
            (false, 8, 9)
        );
        assert_eq!(during.reward, REWARD_TIERS[1]);
        w.clock.advance(ChronoDuration::days(1));

        // Day 10: the streak is broken; it restarts at 1 with tier 1.
        let day = r.today();
        let status = r.reward_status(player, day).await.unwrap();
        assert_eq!(
            (status.claimed, status.streak, status.reward_streak),
            (false, 0, 1)
        );
        let claim = r.claim_daily_reward(player, day).await.unwrap();
        assert_eq!((claim.streak, claim.tier), (1, REWARD_TIERS[0]));
        expected_coins += u64::from(claim.tier.coins);
        w.clock.advance(ChronoDuration::days(1));
        let claim = r.claim_daily_reward(player, r.today()).await.unwrap();
        assert_eq!((claim.streak, claim.tier), (2, REWARD_TIERS[1]));
        expected_coins += u64::from(claim.tier.coins);

        // Claims go forward only: a past day already claimed is AlreadyClaimed, the
        // missed day is refused as invalid; neither writes anything.
        assert!(matches!(
            r.claim_daily_reward(player, start).await,
            Err(RetentionError::AlreadyClaimed { .. })
        ));
        assert!(matches!(
            r.claim_daily_reward(player, missed).await,
            Err(RetentionError::InvalidInput { .. })
        ));
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM daily_reward_claims WHERE player_id = ?",
                player
            )
            .await,
            10
        );
        assert_eq!(r.balance(player).await.unwrap().coins, expected_coins);
        w.assert_healthy().await;
    });
}

#[test]
fn the_day_boundary_decides_which_day_a_claim_belongs_to() {
    let (db, budget) = database("ret_boundary");
    runtime().block_on(async {
        // Arrange: days reset at 04:00 UTC+02:00 (02:00 UTC).
        let w = World::new(&db, &budget).await;
        let player = w.player("night_owl").await;
        let r = Retention::builder(w.pool.clone())
            .clock(w.clock.clone())
            .day_boundary(DayBoundary::new(4, 120).unwrap())
            .build()
            .unwrap();
        w.clock
            .set(Utc.with_ymd_and_hms(2025, 3, 1, 22, 0, 0).unwrap());
        let first = r.today();
        assert_eq!(first, NaiveDate::from_ymd_opt(2025, 3, 1).unwrap());

        // Act + Assert: 01:59 UTC the next calendar day is still the same game day.
        r.claim_daily_reward(player, r.today()).await.unwrap();
        w.clock
            .set(Utc.with_ymd_and_hms(2025, 3, 2, 1, 59, 0).unwrap());
        assert_eq!(r.today(), first);
        assert!(matches!(
            r.claim_daily_reward(player, r.today()).await,
            Err(RetentionError::AlreadyClaimed { .. })
        ));
        // 02:00 UTC is the next game day, and it continues the streak.
        w.clock
            .set(Utc.with_ymd_and_hms(2025, 3, 2, 2, 0, 0).unwrap());
        let claim = r.claim_daily_reward(player, r.today()).await.unwrap();
        assert_eq!((claim.day, claim.streak), (first.succ_opt().unwrap(), 2));
        w.assert_healthy().await;
    });
}

// 5. ------------------------------------------------------------------------------

/// Whether another connection of this test's database is executing the completion's
/// ledger insert (it can only be there after its `UPDATE` marked the quest completed,
/// in the same transaction). PROCESSLIST is read live, unlike INNODB_TRX.
async fn completion_in_ledger_insert(pool: &AsyncPool) -> bool {
    let mut conn = pool.acquire().await.unwrap();
    let (n,): (i64,) = conn
        .fetch_one(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND = 'Execute' \
             AND INFO LIKE 'INSERT INTO reward_ledger (player_id, source, source_id, coins, xp, granted_at) VALUES (?, ''quest''%'",
            args![],
        )
        .await
        .unwrap();
    n == 1
}

/// Open InnoDB transactions of this test's database, other than the caller's.
///
/// InnoDB refreshes its INFORMATION_SCHEMA transaction cache only when nobody read it
/// for 100 ms, so callers must poll this more slowly than that.
async fn open_transactions(pool: &AsyncPool) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let (n,): (i64,) = conn
        .fetch_one(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()",
            args![],
        )
        .await
        .unwrap();
    n
}

#[test]
fn a_completion_cancelled_mid_transaction_leaves_no_completion_and_no_ledger_row() {
    let (db, budget) = database("ret_cancel");
    runtime().block_on(async {
        // Arrange: a finished quest, and another transaction holding the ledger's
        // unique key (quest, id) with an uncommitted row, so that the completion
        // blocks in its ledger insert, after its UPDATE marked the quest completed.
        let w = World::new(&db, &budget).await;
        let player = w.player("quitter").await;
        let day = w.retention.today();
        let quest = w.retention.get_active_quests(player, day).await.unwrap()[0].clone();
        w.retention
            .update_quest_progress(player, day, &quest.event_kind, i64::from(quest.target))
            .await
            .unwrap();
        let mut blocker = w.pool.acquire().await.unwrap();
        let mut blocking_tx = blocker.begin().await.unwrap();
        blocking_tx
            .execute(
                "INSERT INTO reward_ledger (player_id, source, source_id, coins, xp, granted_at) \
                 VALUES (?, 'quest', ?, 0, 0, UTC_TIMESTAMP(6))",
                args![player, quest.id],
            )
            .await
            .unwrap();

        let r = w.retention.clone();
        let completion = tokio::spawn(async move { r.complete_quest(player, quest.id).await });
        assert!(
            poll(Duration::from_secs(10), || completion_in_ledger_insert(
                &w.pool
            ))
            .await,
            "the completion never reached its ledger insert"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!completion.is_finished(), "the completion did not block");
        assert_eq!(
            open_transactions(&w.pool).await,
            2,
            "the blocker's and the completion's"
        );

        // Act: cancel it mid-transaction, then release the lock.
        completion.abort();
        let cancelled = completion.await.expect_err("the completion was cancelled");
        assert!(cancelled.is_cancelled());
        blocking_tx.rollback().await.unwrap();
        drop(blocker);

        // Assert: the cancelled transaction ends (the pool closed its connection; the
        // server rolls back), leaving neither the completion nor a ledger row.
        let mut closed = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if open_transactions(&w.pool).await == 0 {
                closed = true;
                break;
            }
        }
        assert!(closed, "a transaction stayed open");
        let quests = w.retention.get_active_quests(player, day).await.unwrap();
        let q = quests.iter().find(|q| q.id == quest.id).unwrap();
        assert!(!q.is_completed(), "completion survived the cancellation");
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM reward_ledger WHERE source = 'quest' AND source_id = ?",
                quest.id
            )
            .await,
            0
        );
        w.assert_healthy().await;

        // And the quest can still be completed, once.
        let reward = w.retention.complete_quest(player, quest.id).await.unwrap();
        assert_eq!(reward.quest_id, quest.id);
        assert_eq!(
            w.retention.balance(player).await.unwrap().coins,
            u64::from(quest.reward_coins)
        );
        w.assert_healthy().await;
    });
}

// 6. ------------------------------------------------------------------------------

#[test]
fn a_mixed_load_of_three_hundred_tasks_runs_on_four_connections_without_a_pool_timeout() {
    let (db, budget) = database("ret_load");
    runtime().block_on(async {
        // Arrange: 30 players.
        let w = World::new(&db, &budget).await;
        let mut players = Vec::new();
        for i in 0..30 {
            players.push(w.player(&format!("p{i}")).await);
        }
        let day = w.retention.today();
        let kinds: Vec<&'static str> = QUEST_TEMPLATES.iter().map(|t| t.event_kind).collect();

        // Act: per player, 10 operations of every kind, all at once: 300 tasks.
        let results = concurrently(players.len() * 10, |i| {
            let r = w.retention.clone();
            let player = players[i / 10];
            let kinds = kinds.clone();
            async move {
                match i % 10 {
                    0 | 1 => r.get_active_quests(player, day).await.map(drop),
                    2 | 3 => r.claim_daily_reward(player, day).await.map(drop),
                    4 => r.reward_status(player, day).await.map(drop),
                    5 => r.balance(player).await.map(drop),
                    6 => r.generate_daily_quests(player, day).await.map(drop),
                    _ => {
                        // Finish every quest (each kind with a big amount), then try
                        // to complete what this player has.
                        for kind in &kinds {
                            r.update_quest_progress(player, day, kind, 10_000).await?;
                        }
                        for q in r.get_active_quests(player, day).await? {
                            match r.complete_quest(player, q.id).await {
                                Ok(_) | Err(RetentionError::QuestAlreadyCompleted { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(())
                    }
                }
            }
        })
        .await;

        // Assert: only the expected refusal, and exactly-once per player.
        let mut already_claimed = 0;
        for r in results {
            match r {
                Ok(()) => {}
                Err(RetentionError::AlreadyClaimed { .. }) => already_claimed += 1,
                Err(e) => {
                    no_db_error(&e);
                    panic!("unexpected: {e}");
                }
            }
        }
        assert_eq!(already_claimed, players.len(), "one of each player's two claims");
        for &p in &players {
            assert_eq!(
                w.count("SELECT COUNT(*) FROM daily_reward_claims WHERE player_id = ?", p).await,
                1
            );
            assert_eq!(
                w.count("SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ?", p).await,
                3
            );
            assert_eq!(
                w.count(
                    "SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ? AND completed_at IS NOT NULL",
                    p
                )
                .await,
                3
            );
            // One ledger row per claim and per quest: 1 + 3.
            assert_eq!(w.count("SELECT COUNT(*) FROM reward_ledger WHERE player_id = ?", p).await, 4);
        }
        assert_eq!(w.budget.snapshot().async_side.acquire_timeouts_total, 0);
        w.assert_healthy().await;
    });
}

// Generation, seeds, bad input ------------------------------------------------------

#[test]
fn a_hundred_concurrent_generations_hand_out_one_deterministic_set() {
    let (db, budget) = database("ret_generate");
    runtime().block_on(async {
        let w = World::new(&db, &budget).await;
        let player = w.player("newcomer").await;
        let day = w.retention.today();

        let results = concurrently(100, |i| {
            let r = w.retention.clone();
            async move {
                if i % 2 == 0 {
                    r.generate_daily_quests(player, day).await
                } else {
                    r.get_active_quests(player, day).await
                }
            }
        })
        .await;

        let sets: HashSet<Vec<u64>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|e| panic!("{e}"))
                    .iter()
                    .map(|q| q.id)
                    .collect()
            })
            .collect();
        assert_eq!(sets.len(), 1, "every call saw the same quests");
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ?",
                player
            )
            .await,
            3
        );
        // The set is the pure rule's choice, in its order.
        let codes: Vec<&str> = QUEST_TEMPLATES.iter().map(|t| t.code).collect();
        let expected = choice::choose(&codes, 3, player, day);
        let got: Vec<String> = w
            .retention
            .get_active_quests(player, day)
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.template_code)
            .collect();
        assert_eq!(got, expected);
        // Another day, another (independent) set; the first day's is unchanged.
        let next = day.succ_opt().unwrap();
        assert_eq!(
            w.retention
                .get_active_quests(player, next)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ?",
                player
            )
            .await,
            6
        );
        w.assert_healthy().await;
    });
}

/// The seeded tables, as text, for before/after comparisons.
async fn seeded_tables(pool: &AsyncPool) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let templates = conn
        .fetch_dict_all("SELECT * FROM daily_quest_templates ORDER BY id", args![])
        .await
        .unwrap();
    let tiers = conn
        .fetch_dict_all(
            "SELECT * FROM daily_reward_tiers ORDER BY day_number",
            args![],
        )
        .await
        .unwrap();
    format!("{templates:?}\n{tiers:?}")
}

#[test]
fn seeds_and_migrations_are_idempotent_and_a_changed_template_is_updated_in_place() {
    let (db, budget) = database("ret_seeds");
    runtime().block_on(async {
        // Arrange: World::new migrated and seeded once.
        let w = World::new(&db, &budget).await;
        let before = seeded_tables(&w.pool).await;
        let all = u32::try_from(QUEST_TEMPLATES.len()).unwrap();

        // Act + Assert: a second start changes nothing.
        retention::migrate(&w.pool).await.unwrap();
        let templates = w.retention.initialize_quest_templates().await.unwrap();
        let tiers = w.retention.initialize_daily_rewards().await.unwrap();
        assert_eq!(
            templates,
            SeedReport {
                unchanged: all,
                ..SeedReport::default()
            }
        );
        assert_eq!(
            tiers,
            SeedReport {
                unchanged: 7,
                ..SeedReport::default()
            }
        );
        assert_eq!(seeded_tables(&w.pool).await, before);

        // A template changed in code is updated (same id), not duplicated; one dropped
        // from code is deactivated.
        let mut changed: Vec<QuestTemplate> = QUEST_TEMPLATES.to_vec();
        changed[0].target += 1;
        changed[0].title = "Play a few games";
        let dropped = changed.pop().unwrap();
        let report = w.retention.seed_quest_templates(&changed).await.unwrap();
        assert_eq!(
            report,
            SeedReport {
                updated: 1,
                deactivated: 1,
                unchanged: all - 2,
                ..SeedReport::default()
            }
        );
        let mut conn = w.pool.acquire().await.unwrap();
        let rows: Vec<(String, u32, bool)> = conn
            .fetch_all(
                "SELECT code, target, active FROM daily_quest_templates ORDER BY id",
                args![],
            )
            .await
            .unwrap();
        drop(conn);
        assert_eq!(rows.len(), QUEST_TEMPLATES.len(), "no duplicate rows");
        assert!(rows.contains(&(changed[0].code.to_owned(), changed[0].target, true)));
        assert!(rows.contains(&(dropped.code.to_owned(), dropped.target, false)));

        // Back to the code's templates: the same rows as at the start.
        let report = w.retention.initialize_quest_templates().await.unwrap();
        assert_eq!(
            report,
            SeedReport {
                updated: 2,
                unchanged: all - 2,
                ..SeedReport::default()
            }
        );
        assert_eq!(seeded_tables(&w.pool).await, before);

        // Seeds validate before writing.
        let bad = [QuestTemplate {
            target: 0,
            ..QUEST_TEMPLATES[0]
        }];
        assert!(matches!(
            w.retention.seed_quest_templates(&bad).await,
            Err(RetentionError::InvalidInput { .. })
        ));
        assert_eq!(seeded_tables(&w.pool).await, before);
        w.assert_healthy().await;
    });
}

#[test]
fn bad_input_is_refused_with_typed_errors_and_writes_nothing() {
    let (db, budget) = database("ret_bad_input");
    runtime().block_on(async {
        let w = World::new(&db, &budget).await;
        let r = &w.retention;
        let player = w.player("someone").await;
        let other = w.player("someone_else").await;
        let day = r.today();
        let quests = r.get_active_quests(player, day).await.unwrap();
        // Of 3 quests at most 2 have target 1 (only 2 templates do): take another.
        let quest = quests
            .iter()
            .find(|q| q.target > 1)
            .expect("a quest with target > 1");
        let ghost = 999_999;

        // Unknown player: not found, everywhere.
        for result in [
            r.get_active_quests(ghost, day).await.map(drop),
            r.generate_daily_quests(ghost, day).await.map(drop),
            r.update_quest_progress(ghost, day, "game_won", 1)
                .await
                .map(drop),
            r.complete_quest(ghost, quest.id).await.map(drop),
            r.claim_daily_reward(ghost, day).await.map(drop),
            r.reward_status(ghost, day).await.map(drop),
            r.balance(ghost).await.map(drop),
        ] {
            assert!(
                matches!(
                    result,
                    Err(RetentionError::PlayerNotFound { player_id: 999_999 })
                ),
                "{result:?}"
            );
        }

        // Unknown quest, or another player's: not found.
        assert!(matches!(
            r.complete_quest(player, ghost).await,
            Err(RetentionError::QuestNotFound {
                quest_id: 999_999,
                ..
            })
        ));
        assert!(matches!(
            r.complete_quest(other, quest.id).await,
            Err(RetentionError::QuestNotFound { .. })
        ));

        // Zero or negative progress, or a bad event kind: invalid input.
        for amount in [0, -1, i64::MIN] {
            assert!(matches!(
                r.update_quest_progress(player, day, &quest.event_kind, amount)
                    .await,
                Err(RetentionError::InvalidInput { .. })
            ));
        }
        for kind in ["", "an_event_kind_that_is_longer_than_32"] {
            assert!(matches!(
                r.update_quest_progress(player, day, kind, 1).await,
                Err(RetentionError::InvalidInput { .. })
            ));
        }

        // An unfinished quest cannot be completed.
        assert_eq!(
            r.update_quest_progress(player, day, &quest.event_kind, 1)
                .await
                .unwrap(),
            1
        );
        assert!(matches!(
            r.complete_quest(player, quest.id).await,
            Err(RetentionError::QuestNotFinished { progress: 1, .. })
        ));

        // Nothing was written by any refusal: no rows for the ghost, no claims, no
        // ledger, no completion, the other player got no quests; progress moved by
        // exactly the one valid event.
        for (sql, id, expected) in [
            (
                "SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ?",
                ghost,
                0,
            ),
            (
                "SELECT COUNT(*) FROM daily_reward_claims WHERE player_id = ?",
                ghost,
                0,
            ),
            (
                "SELECT COUNT(*) FROM reward_ledger WHERE player_id = ?",
                ghost,
                0,
            ),
            ("SELECT COUNT(*) FROM players WHERE id = ?", ghost, 0),
            (
                "SELECT COUNT(*) FROM player_daily_quests WHERE player_id = ?",
                other,
                0,
            ),
        ] {
            assert_eq!(w.count(sql, id).await, expected, "{sql} [{id}]");
        }
        let after = r.get_active_quests(player, day).await.unwrap();
        let q = after.iter().find(|q| q.id == quest.id).unwrap();
        assert_eq!(q.progress, 1);
        assert!(!q.is_completed());
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM reward_ledger WHERE player_id = ?",
                player
            )
            .await,
            0
        );

        // Settings are validated too.
        assert!(matches!(
            Retention::builder(w.pool.clone()).quests_per_day(0).build(),
            Err(RetentionError::InvalidInput { .. })
        ));
        assert!(matches!(
            DayBoundary::new(24, 0),
            Err(RetentionError::InvalidInput { .. })
        ));
        w.assert_healthy().await;
    });
}

#[test]
fn a_progress_event_before_the_first_listing_generates_the_day_and_counts() {
    let (db, budget) = database("ret_early_event");
    runtime().block_on(async {
        // Arrange: a player who has not looked at today's quests yet, and an event kind
        // that today's choice contains.
        let w = World::new(&db, &budget).await;
        let player = w.player("eager").await;
        let day = w.retention.today();
        let codes: Vec<&str> = QUEST_TEMPLATES.iter().map(|t| t.code).collect();
        let first = choice::choose(&codes, 3, player, day)[0];
        let template = QUEST_TEMPLATES.iter().find(|t| t.code == first).unwrap();

        // Act
        let advanced = w
            .retention
            .update_quest_progress(player, day, template.event_kind, 1)
            .await
            .unwrap();

        // Assert
        assert_eq!(advanced, 1);
        let quests = w.retention.get_active_quests(player, day).await.unwrap();
        assert_eq!(quests.len(), 3);
        let q = quests.iter().find(|q| q.template_code == first).unwrap();
        assert_eq!(q.progress, 1);
        w.assert_healthy().await;
    });
}
