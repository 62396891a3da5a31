//! Retention refuses bad input with typed errors and writes nothing. The shared world
//! and its checks are in `retention_world.rs`.

use integration_tests::retention_world::{World, database};
use integration_tests::runtime;
use retention::{DayBoundary, Retention, RetentionError};

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
