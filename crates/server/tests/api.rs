//! The JSON API end to end: every route's happy path, authentication and authorization
//! failures, and bad bodies, against the whole application on a private MariaDB.

mod common;

use common::{SECRET, assert_no_leak, spawn_app};
use db_async::args;
use serde_json::{Value, json};

// ---- players ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_player_gets_an_id_and_a_token_that_reads_their_profile() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let created = app
        .client
        .post_json("/api/players", None, &json!({ "name": "Ada" }))
        .await;
    let body = created.json();
    let id = body["id"].as_u64().unwrap();
    let token = body["token"].as_str().unwrap();
    let profile = app
        .client
        .get(&format!("/api/players/{id}"), Some(token))
        .await;

    // Assert
    assert_eq!(created.status, 201);
    assert_eq!(body["name"], "Ada");
    assert!(token.starts_with(&format!("{id}.")), "{token}");
    assert_eq!(profile.status, 200, "{}", profile.text());
    let profile = profile.json();
    assert_eq!(profile["name"], "Ada");
    assert_eq!(
        (profile["coins"].as_u64(), profile["xp"].as_u64()),
        (Some(0), Some(0))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_sql_metacharacters_and_any_script_are_stored_verbatim() {
    // Arrange
    let app = spawn_app().await;
    let names = [
        "Robert'); DROP TABLE players;--",
        "\" OR 1=1; -- \\",
        "%_' UNION SELECT 1 #",
        "玩家 🐉 Zoë",
    ];

    for name in names {
        // Act
        let (id, token) = app.new_player(name).await;
        let shown = app
            .client
            .get(&format!("/api/players/{id}"), Some(&token))
            .await
            .json();
        let mut conn = app.async_pool.acquire().await.unwrap();
        let (stored,): (String,) = conn
            .fetch_one("SELECT name FROM players WHERE id = ?", args![id])
            .await
            .unwrap();
        drop(conn);

        // Assert
        assert_eq!(shown["name"], name);
        assert_eq!(stored, name);
    }
    let mut conn = app.async_pool.acquire().await.unwrap();
    let (players,): (i64,) = conn
        .fetch_one("SELECT COUNT(*) FROM players", args![])
        .await
        .unwrap();
    assert_eq!(players, names.len() as i64, "the table is intact");
    drop(conn);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_trimmed_then_checked_and_stored_trimmed() {
    // Arrange
    let app = spawn_app().await;
    let full = "x".repeat(32);
    let padded_full = format!("  {full}\t");
    let too_long = " x ".repeat(12); // 34 characters once trimmed
    let cases: [(&str, Option<&str>); 5] = [
        ("  Ada  ", Some("Ada")),
        ("\tZoë Lin\n", Some("Zoë Lin")),
        (padded_full.as_str(), Some(full.as_str())),
        (too_long.as_str(), None),
        ("  \t ", None),
    ];

    for (sent, expected) in cases {
        // Act
        let r = app
            .client
            .post_json("/api/players", None, &json!({ "name": sent }))
            .await;

        // Assert
        let Some(expected) = expected else {
            assert_eq!(r.status, 422, "{sent:?}: {}", r.text());
            assert_eq!(r.error_code(), "invalid");
            continue;
        };
        assert_eq!(r.status, 201, "{sent:?}: {}", r.text());
        let body = r.json();
        assert_eq!(body["name"], expected, "{sent:?}");
        let id = body["id"].as_u64().unwrap();
        let shown = app
            .client
            .get(&format!("/api/players/{id}"), body["token"].as_str())
            .await
            .json();
        assert_eq!(shown["name"], expected, "{sent:?}");
        let mut conn = app.async_pool.acquire().await.unwrap();
        let (stored,): (String,) = conn
            .fetch_one("SELECT name FROM players WHERE id = ?", args![id])
            .await
            .unwrap();
        assert_eq!(stored, expected, "{sent:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sign_up_bodies_get_json_errors_with_the_right_status() {
    // Arrange
    let app = spawn_app().await;
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("wrong type", json_ct, br#"{"name": 5}"#.to_vec(), 422),
        ("missing field", json_ct, br"{}".to_vec(), 422),
        ("null name", json_ct, br#"{"name": null}"#.to_vec(), 422),
        ("not an object", json_ct, br#"["Ada"]"#.to_vec(), 422),
        (
            "malformed JSON",
            json_ct,
            br#"{"name": "Ada""#.to_vec(),
            400,
        ),
        (
            "invalid UTF-8",
            json_ct,
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            400,
        ),
        ("empty body", json_ct, Vec::new(), 400),
        ("no content type", None, br#"{"name": "Ada"}"#.to_vec(), 415),
        (
            "text content type",
            Some("text/plain"),
            br#"{"name": "Ada"}"#.to_vec(),
            415,
        ),
        ("empty name", json_ct, br#"{"name": ""}"#.to_vec(), 422),
        ("blank name", json_ct, br#"{"name": "   "}"#.to_vec(), 422),
        (
            "33 characters",
            json_ct,
            format!(r#"{{"name": "{}"}}"#, "x".repeat(33)).into_bytes(),
            422,
        ),
        (
            "control character",
            json_ct,
            br#"{"name": "a\u0000b"}"#.to_vec(),
            422,
        ),
        ("newline", json_ct, br#"{"name": "a\nb"}"#.to_vec(), 422),
        (
            "oversized body",
            json_ct,
            format!(r#"{{"name": "{}"}}"#, "x".repeat(200 * 1024)).into_bytes(),
            413,
        ),
    ];

    for (what, content_type, body, expected) in cases {
        // Act
        let r = app
            .client
            .post_raw("/api/players", None, content_type, &body)
            .await;

        // Assert
        assert_eq!(r.status, expected, "{what}: {}", r.text());
        r.error_code();
    }
    app.stop().await;
}

// ---- authentication and authorization ---------------------------------------------

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

// ---- saved games (legacy, blocking) -------------------------------------------------

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

// ---- generated images (legacy, blocking) --------------------------------------------

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

// ---- input the database would refuse ------------------------------------------------

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

// ---- quests and rewards (async, retention) ------------------------------------------

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
async fn the_daily_reward_can_be_claimed_once_a_day() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("loyal").await;
    let status_path = format!("/api/players/{id}/rewards");
    let claim_path = format!("/api/players/{id}/rewards/claim");

    // Act
    let before = app.client.get(&status_path, Some(&token)).await;
    let claim = app.client.post_empty(&claim_path, Some(&token)).await;
    let again = app.client.post_empty(&claim_path, Some(&token)).await;
    let after = app.client.get(&status_path, Some(&token)).await;

    // Assert
    assert_eq!(before.status, 200, "{}", before.text());
    assert_eq!(before.json()["claimed"], false);
    assert_eq!(claim.status, 200, "{}", claim.text());
    assert_eq!(claim.json()["streak"], 1);
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "already_claimed")
    );
    assert_eq!(after.json()["claimed"], true);
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
