//! Quests and events (async, retention): an event finishes a quest whose reward is
//! granted once, concurrent events, bad events, and the documented response shape.

use db_async::args;
use serde_json::json;

use crate::common::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_finishes_a_quest_whose_reward_is_granted_exactly_once() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("quester").await;
    let listed = app
        .client
        .get(&format!("/api/players/{id}/quests"), Some(&token))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let quests = listed.json()["quests"].as_array().unwrap().clone();
    assert_eq!(quests.len(), 3);
    let quest = &quests[0];
    let quest_id = quest["id"].as_u64().unwrap();
    let unfinished = quests[1]["id"].as_u64().unwrap();

    // Act
    let event = app
        .client
        .post_json(
            &format!("/api/players/{id}/events"),
            Some(&token),
            &json!({ "kind": quest["event_kind"], "amount": quest["target"] }),
        )
        .await;
    let complete = |q: u64| {
        let client = app.client;
        let token = token.clone();
        async move {
            client
                .post_empty(
                    &format!("/api/players/{id}/quests/{q}/complete"),
                    Some(&token),
                )
                .await
        }
    };
    let first = complete(quest_id).await;
    let again = complete(quest_id).await;
    let not_finished = complete(unfinished).await;
    let unknown = complete(999_999).await;
    let profile = app
        .client
        .get(&format!("/api/players/{id}"), Some(&token))
        .await
        .json();

    // Assert
    assert_eq!(event.status, 200, "{}", event.text());
    let event = event.json();
    assert!(event["advanced"].as_u64().unwrap() >= 1);
    assert!(
        event["finished"]
            .as_array()
            .unwrap()
            .contains(&json!(quest_id)),
        "{event}"
    );
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["coins"], quest["reward_coins"]);
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "already_completed")
    );
    assert_eq!(
        (not_finished.status, not_finished.error_code().as_str()),
        (409, "not_finished")
    );
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (404, "not_found")
    );
    assert_eq!(profile["coins"], quest["reward_coins"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_forty_concurrent_events_exactly_one_says_it_finished_the_quest() {
    // Arrange: a quest that five events of its kind finish.
    let app = spawn_app().await;
    let (id, token) = app.new_player("racer").await;
    let listed = app
        .client
        .get(&format!("/api/players/{id}/quests"), Some(&token))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let quest_id = listed.json()["quests"][0]["id"].as_u64().unwrap();
    let mut conn = app.async_pool.acquire().await.unwrap();
    conn.execute(
        "UPDATE player_daily_quests SET event_kind = 'race_tick', target = 5 WHERE id = ?",
        args![quest_id],
    )
    .await
    .unwrap();
    drop(conn);
    let path = format!("/api/players/{id}/events");

    // Act
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let client = app.client;
        let (path, token) = (path.clone(), token.clone());
        requests.spawn(async move {
            client
                .post_json(
                    &path,
                    Some(&token),
                    &json!({ "kind": "race_tick", "amount": 1 }),
                )
                .await
        });
    }
    let responses = requests.join_all().await;

    // Assert
    let mut finished_by = 0;
    let mut advanced = 0;
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        advanced += body["advanced"].as_u64().unwrap();
        if body["finished"]
            .as_array()
            .unwrap()
            .contains(&json!(quest_id))
        {
            finished_by += 1;
        }
    }
    assert_eq!(
        advanced, 5,
        "five events advanced the quest, the others found it full"
    );
    assert_eq!(finished_by, 1, "exactly one event finished the quest");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("p").await;
    let path = format!("/api/players/{id}/events");

    for (what, body, expected) in [
        (
            "zero amount",
            json!({ "kind": "game_won", "amount": 0 }),
            422,
        ),
        (
            "negative amount",
            json!({ "kind": "game_won", "amount": -3 }),
            422,
        ),
        (
            "fractional amount",
            json!({ "kind": "game_won", "amount": 1.5 }),
            422,
        ),
        (
            "amount as text",
            json!({ "kind": "game_won", "amount": "1" }),
            422,
        ),
        ("missing kind", json!({ "amount": 1 }), 422),
        ("empty kind", json!({ "kind": "", "amount": 1 }), 422),
        (
            "long kind",
            json!({ "kind": "k".repeat(33), "amount": 1 }),
            422,
        ),
    ] {
        // Act
        let r = app.client.post_json(&path, Some(&token), &body).await;

        // Assert
        assert_eq!(r.status, expected, "{what}: {}", r.text());
        r.error_code();
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_docs_name_the_event_fields_the_api_returns() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("reader").await;
    let event = app
        .client
        .post_json(
            &format!("/api/players/{id}/events"),
            Some(&token),
            &json!({ "kind": "game_played", "amount": 1 }),
        )
        .await;
    assert_eq!(event.status, 200, "{}", event.text());
    let fields: Vec<String> = event.json().as_object().unwrap().keys().cloned().collect();
    let shape = format!("`{{{}}}`", fields.join(", "));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));

    for doc in [root.join("../../README.md"), root.join("src/routes/mod.rs")] {
        // Act
        let text = std::fs::read_to_string(&doc).unwrap();
        let row = text
            .lines()
            .find(|l| l.contains("| POST | `/api/players/{id}/events` |"))
            .unwrap_or_else(|| panic!("{}: no row for the events route", doc.display()));

        // Assert
        assert!(
            row.contains(&shape),
            "{}: the events row must name the response {shape}: {row}",
            doc.display()
        );
    }
    app.stop().await;
}
