//! Generated images (legacy, blocking): recorded for a game, listed in order; bad requests.

use serde_json::json;

use crate::common::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_recorded_for_a_game_and_listed_in_order() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("artist").await;
    let game = app.new_game(id, &token, json!({})).await;
    let path = format!("/api/games/{game}/images");

    // Act
    let first = app
        .client
        .post_json(
            &path,
            Some(&token),
            &json!({ "prompt": "a dragon; DROP TABLE generated_images", "url": "https://img.example/a.png",
                     "metadata": { "model": "sdxl", "seed": 42 } }),
        )
        .await;
    let second = app
        .client
        .post_json(
            &path,
            Some(&token),
            &json!({ "prompt": "a castle", "url": "http://img.example/b.png" }),
        )
        .await;
    let listed = app.client.get(&path, Some(&token)).await;

    // Assert
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(second.status, 201, "{}", second.text());
    let first = first.json();
    assert_eq!(first["game_id"], game);
    assert_eq!(first["player_id"], id);
    assert_eq!(first["metadata"], json!({ "model": "sdxl", "seed": 42 }));
    assert_eq!(second.json()["metadata"], json!({}));
    assert_eq!(listed.status, 200);
    let images = listed.json()["images"].as_array().unwrap().clone();
    let prompts: Vec<&str> = images
        .iter()
        .map(|i| i["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(
        prompts,
        ["a dragon; DROP TABLE generated_images", "a castle"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_image_requests_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("artist").await;
    let game = app.new_game(id, &token, json!({})).await;
    let path = format!("/api/games/{game}/images");

    for (what, body, expected) in [
        ("missing url", json!({ "prompt": "p" }), 422),
        (
            "prompt of the wrong type",
            json!({ "prompt": 1, "url": "https://x/y" }),
            422,
        ),
        (
            "empty prompt",
            json!({ "prompt": "", "url": "https://x/y" }),
            422,
        ),
        (
            "not http",
            json!({ "prompt": "p", "url": "javascript:alert(1)" }),
            422,
        ),
        (
            "url too long",
            json!({ "prompt": "p", "url": format!("https://x/{}", "a".repeat(2048)) }),
            422,
        ),
        (
            "metadata too large",
            json!({ "prompt": "p", "url": "https://x/y", "metadata": { "a": "b".repeat(20_000) } }),
            413,
        ),
    ] {
        // Act
        let r = app.client.post_json(&path, Some(&token), &body).await;

        // Assert
        assert_eq!(r.status, expected, "{what}: {}", r.text());
        r.error_code();
    }
    let missing = app
        .client
        .post_json(
            "/api/games/987654/images",
            Some(&token),
            &json!({ "prompt": "p", "url": "https://x/y" }),
        )
        .await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
    app.stop().await;
}
