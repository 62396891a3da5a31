//! Retention's rewards on the async pool, against a real MariaDB: a daily claim and a
//! quest's completion each pay exactly once under concurrency, and a completion
//! cancelled mid-transaction leaves nothing behind. The shared world and its checks are
//! in `retention_world.rs`.

use std::time::Duration;

use db_async::{AsyncPool, args};
use integration_tests::retention_world::{World, concurrently, database, no_db_error, poll};
use integration_tests::runtime;
use retention::{REWARD_TIERS, RetentionError};

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
