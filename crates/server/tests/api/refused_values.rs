//! Input the database would refuse: a 422, never a 500.

use serde_json::{Value, json};

use crate::common::spawn_app;

/// `depth` arrays (or objects) nested in one another, around `1`.
fn nested(depth: usize, objects: bool) -> Value {
    (0..depth).fold(json!(1), |inner, _| {
        if objects {
            json!({ "a": inner })
        } else {
            json!([inner])
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_deeper_than_the_database_accepts_is_a_422_not_a_500() {
    // Arrange: MariaDB's JSON check accepts 31 nested arrays/objects and refuses 32
    // (error 4025 on the column's JSON_VALID constraint); serde_json parses up to 127.
    let app = spawn_app().await;
    let (id, token) = app.new_player("nester").await;
    let game = app.new_game(id, &token, json!({})).await;
    let games = format!("/api/players/{id}/games");
    let images = format!("/api/games/{game}/images");

    for objects in [false, true] {
        for (depth, accepted) in [
            (31, true),
            (32, false),
            (33, false),
            (64, false),
            (126, false),
        ] {
            let value = nested(depth, objects);
            let image = json!({ "prompt": "p", "url": "https://x/y", "metadata": value });

            // Act
            let saved = app
                .client
                .post_json(&games, Some(&token), &json!({ "state": value }))
                .await;
            let recorded = app.client.post_json(&images, Some(&token), &image).await;

            // Assert
            for (what, r) in [("state", &saved), ("metadata", &recorded)] {
                if accepted {
                    assert_eq!(r.status, 201, "{what} of depth {depth}: {}", r.text());
                    assert_eq!(r.json()[what], value, "{what} of depth {depth}");
                } else {
                    assert_eq!(r.status, 422, "{what} of depth {depth}: {}", r.text());
                    assert_eq!(r.error_code(), "invalid", "{what} of depth {depth}");
                    let message = r.json()["message"].as_str().unwrap().to_owned();
                    assert!(
                        message.contains(what) && message.contains("31"),
                        "the message names the field and the limit: {message}"
                    );
                }
            }
        }
    }
    app.stop().await;
}
