//! Retention under a mixed load: three hundred tasks of every kind on a budget of four
//! connections, without a pool timeout. The shared world and its checks are in
//! `retention_world.rs`.

use integration_tests::retention_world::{World, concurrently, database, no_db_error};
use integration_tests::runtime;
use retention::{QUEST_TEMPLATES, RetentionError};

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
