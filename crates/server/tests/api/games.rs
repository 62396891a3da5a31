//! Saved games (legacy, blocking): saved, listed, loaded as sent; the size limit; bad bodies.

use serde_json::json;

use crate::common::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_game_is_listed_and_loads_with_its_state_as_sent() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("gamer").await;
    let state =
        json!({ "level": 7, "inventory": ["sword", "shield"], "hp": 12.5, "name": "O'Brien; --" });

    // Act
    let saved = app
        .client
        .post_json(
            &format!("/api/players/{id}/games"),
            Some(&token),
            &json!({ "state": state }),
        )
        .await;
    let game = saved.json()["id"].as_u64().unwrap();
    let loaded = app
        .client
        .get(&format!("/api/games/{game}"), Some(&token))
        .await;
    let listed = app
        .client
        .get(&format!("/api/players/{id}/games"), Some(&token))
        .await;

    // Assert
    assert_eq!(saved.status, 201, "{}", saved.text());
    assert_eq!(saved.json()["state"], state);
    assert_eq!(loaded.status, 200);
    let loaded = loaded.json();
    assert_eq!(loaded["state"], state);
    assert_eq!(loaded["player_id"], id);
    assert!(loaded["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(listed.status, 200);
    let games = listed.json()["games"].as_array().unwrap().clone();
    assert_eq!(games.len(), 1);
    assert_eq!(games[0]["id"], game);
    assert!(
        games[0].get("state").is_none(),
        "listings leave the state out"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_state_over_one_mebibyte_is_refused_with_413() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("big").await;
    let path = format!("/api/players/{id}/games");
    let just_fits = "x".repeat(1024 * 1024 - 2); // plus two quotes = 1 MiB of JSON
    let just_over = "x".repeat(1024 * 1024 - 1);
    let far_over = format!(r#"{{"state": "{}"}}"#, "x".repeat(3 * 1024 * 1024));

    // Act
    let fits = app
        .client
        .post_json(&path, Some(&token), &json!({ "state": just_fits }))
        .await;
    let over = app
        .client
        .post_json(&path, Some(&token), &json!({ "state": just_over }))
        .await;
    let far = app
        .client
        .post_raw(
            &path,
            Some(&token),
            Some("application/json"),
            far_over.as_bytes(),
        )
        .await;

    // Assert
    assert_eq!(
        fits.status,
        201,
        "{}",
        fits.text().chars().take(300).collect::<String>()
    );
    assert_eq!(over.status, 413);
    assert_eq!(over.error_code(), "payload_too_large");
    assert_eq!(far.status, 413);
    assert_eq!(far.error_code(), "payload_too_large");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_game_bodies_get_json_errors() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("p").await;
    let path = format!("/api/players/{id}/games");
    let ct = Some("application/json");

    for (what, body, expected) in [
        ("missing state", br#"{"level": 1}"#.to_vec(), 422),
        ("bad JSON", br#"{"state": {"#.to_vec(), 400),
        ("invalid UTF-8", b"{\"state\": \"\xc3\x28\"}".to_vec(), 400),
    ] {
        // Act
        let r = app.client.post_raw(&path, Some(&token), ct, &body).await;

        // Assert
        assert_eq!(r.status, expected, "{what}: {}", r.text());
        r.error_code();
    }
    app.stop().await;
}
