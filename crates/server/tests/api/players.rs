//! Signing up: a player's id, token and profile; names stored verbatim, trimmed, checked.

use db_async::args;
use serde_json::json;

use crate::common::spawn_app;

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
