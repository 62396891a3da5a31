//! Tokens and ownership: every player route refuses a missing or wrong token and
//! another player's data; unknown routes, ids and methods; a player that does not exist.

use db_async::args;
use serde_json::{Value, json};

use crate::common;
use crate::common::{SECRET, assert_no_leak, spawn_app};

/// Every player route, as (method, path) with `{id}` for the player and `{game}` for
/// one of their games.
const PLAYER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/players/{id}"),
    ("GET", "/api/players/{id}/games"),
    ("POST", "/api/players/{id}/games"),
    ("GET", "/api/games/{game}"),
    ("POST", "/api/games/{game}/images"),
    ("GET", "/api/games/{game}/images"),
    ("GET", "/api/players/{id}/quests"),
    ("POST", "/api/players/{id}/events"),
    ("POST", "/api/players/{id}/quests/1/complete"),
    ("GET", "/api/players/{id}/rewards"),
    ("POST", "/api/players/{id}/rewards/claim"),
];

fn valid_body(path: &str) -> Value {
    if path.ends_with("/games") {
        json!({ "state": { "level": 1 } })
    } else if path.ends_with("/images") {
        json!({ "prompt": "a castle", "url": "https://img.example/1.png" })
    } else if path.ends_with("/events") {
        json!({ "kind": "game_played", "amount": 1 })
    } else {
        json!({})
    }
}

async fn call(
    app: &common::TestApp,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> common::Response {
    let body = serde_json::to_vec(&valid_body(path)).unwrap();
    let mut headers = headers.to_vec();
    let body = if method == "POST" {
        headers.push(("Content-Type".into(), "application/json".into()));
        Some(body.as_slice())
    } else {
        None
    };
    app.client.request(method, path, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_player_route_refuses_requests_without_a_valid_token() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("owner").await;
    let game = app.new_game(id, &token, json!({ "level": 1 })).await;
    let other_secret = server::auth::TokenKey::new(
        &server::secret::Secret::new("another-secret-entirely-1234").unwrap(),
    )
    .mint(id);
    let bad_headers: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no header", vec![]),
        (
            "not bearer",
            vec![("Authorization".into(), format!("Basic {token}"))],
        ),
        (
            "garbage",
            vec![("Authorization".into(), "Bearer nonsense".into())],
        ),
        (
            "tampered",
            vec![(
                "Authorization".into(),
                format!("Bearer {}0", &token[..token.len() - 1]),
            )],
        ),
        (
            "other secret",
            vec![("Authorization".into(), format!("Bearer {other_secret}"))],
        ),
    ];

    for (method, template) in PLAYER_ROUTES {
        let path = template
            .replace("{id}", &id.to_string())
            .replace("{game}", &game.to_string());
        for (what, headers) in &bad_headers {
            // Act
            let r = call(&app, method, &path, headers).await;

            // Assert
            assert_eq!(r.status, 401, "{method} {path} with {what}: {}", r.text());
            assert_eq!(r.error_code(), "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_cannot_touch_another_players_data() {
    // Arrange
    let app = spawn_app().await;
    let (victim, victim_token) = app.new_player("victim").await;
    let game = app
        .new_game(victim, &victim_token, json!({ "secret": "treasure" }))
        .await;
    let (_, intruder_token) = app.new_player("intruder").await;
    let headers = common::auth_headers(Some(&intruder_token));

    for (method, template) in PLAYER_ROUTES {
        let path = template
            .replace("{id}", &victim.to_string())
            .replace("{game}", &game.to_string());

        // Act
        let r = call(&app, method, &path, &headers).await;

        // Assert
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert_eq!(r.error_code(), "forbidden");
        assert!(!r.text().contains("treasure"));
    }
    let bad_body = app
        .client
        .post_raw(
            &format!("/api/players/{victim}/games"),
            Some(&intruder_token),
            Some("application/json"),
            b"{not json",
        )
        .await;
    assert_eq!(
        bad_body.status, 403,
        "ownership is checked before the body is read"
    );
    let mut conn = app.async_pool.acquire().await.unwrap();
    let (images,): (i64,) = conn
        .fetch_one("SELECT COUNT(*) FROM generated_images", args![])
        .await
        .unwrap();
    let (games,): (i64,) = conn
        .fetch_one("SELECT COUNT(*) FROM saved_games", args![])
        .await
        .unwrap();
    drop(conn);
    assert_eq!(
        (images, games),
        (0, 1),
        "nothing was written for the intruder"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_ids_and_methods_get_json_errors() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("p").await;

    // Act
    let unknown = app.client.get("/api/nothing-here", Some(&token)).await;
    let bad_id = app.client.get("/api/players/abc/games", Some(&token)).await;
    let missing_game = app.client.get("/api/games/999999", Some(&token)).await;
    let wrong_method = app
        .client
        .request("DELETE", &format!("/api/players/{id}"), &[], None)
        .await;

    // Assert
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (404, "not_found")
    );
    assert_eq!(
        (bad_id.status, bad_id.error_code().as_str()),
        (400, "bad_request")
    );
    assert_eq!(
        (missing_game.status, missing_game.error_code().as_str()),
        (404, "not_found")
    );
    assert_eq!(wrong_method.status, 405);
    wrong_method.error_code();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_a_player_that_does_not_exist_gets_404s() {
    // Arrange
    let app = spawn_app().await;
    let ghost = 4_000_000_u64;
    let token =
        server::auth::TokenKey::new(&server::secret::Secret::new(SECRET).unwrap()).mint(ghost);

    for (method, path) in [
        ("GET", format!("/api/players/{ghost}")),
        ("GET", format!("/api/players/{ghost}/games")),
        ("GET", format!("/api/players/{ghost}/quests")),
        ("GET", format!("/api/players/{ghost}/rewards")),
        ("POST", format!("/api/players/{ghost}/rewards/claim")),
        ("POST", format!("/api/players/{ghost}/games")),
        ("POST", format!("/api/players/{ghost}/events")),
        ("POST", format!("/api/players/{ghost}/quests/1/complete")),
    ] {
        // Act
        let r = call(&app, method, &path, &common::auth_headers(Some(&token))).await;

        // Assert
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_no_leak(&r.text());
    }
    app.stop().await;
}
