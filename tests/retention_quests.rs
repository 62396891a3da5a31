//! Retention's daily quests on the async pool, against a real MariaDB: progress capped
//! at the target under concurrency, exactly one event reporting the finish, one
//! deterministic set generated per day however many ask at once, and progress before
//! the first listing. The shared world and its checks are in `retention_world.rs`.

use std::collections::HashSet;

use integration_tests::retention_world::{World, concurrently, database, no_db_error};
use integration_tests::runtime;
use retention::QUEST_TEMPLATES;
use retention::rules::choice;

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
