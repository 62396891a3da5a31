//! Retention's seeds and migrations: idempotent, and a changed template is updated in
//! place. The shared world and its checks are in `retention_world.rs`.

use db_async::{AsyncPool, args};
use integration_tests::retention_world::{World, database};
use integration_tests::runtime;
use retention::{QUEST_TEMPLATES, QuestTemplate, RetentionError, SeedReport};

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
