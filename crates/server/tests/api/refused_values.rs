//! Input the database would refuse: a 422, never a 500; exotic JSON is stored exactly
//! or refused.

use serde_json::{Value, json};

use crate::common::spawn_app;
use crate::common::{AppOptions, spawn_app_with};

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

/// Input the database might refuse beyond depth: numbers at the edges of f64 and u64,
/// NUL and other escapes, empty and odd keys, surrogate-pair text. Each is either
/// stored and read back exactly (201, then the same value from GET) or refused with a
/// 4xx; never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exotic_json_is_stored_exactly_or_refused_never_a_500() {
    let app = spawn_app_with(AppOptions::default()).await;
    let (id, token) = app.new_player("exotic").await;
    let game = app.new_game(id, &token, json!({})).await;
    let bodies: Vec<(&str, String)> = vec![
        ("nul", r#"{"state":"a\u0000b"}"#.into()),
        ("nul key", r#"{"state":{"\u0000":1}}"#.into()),
        ("empty key", r#"{"state":{"":""}}"#.into()),
        ("max f64", r#"{"state":1.7976931348623157e308}"#.into()),
        ("min subnormal", r#"{"state":5e-324}"#.into()),
        ("negative zero", r#"{"state":-0.0}"#.into()),
        ("u64 max", r#"{"state":18446744073709551615}"#.into()),
        ("i64 min", r#"{"state":-9223372036854775808}"#.into()),
        ("beyond u64", r#"{"state":18446744073709551616}"#.into()),
        ("beyond f64", r#"{"state":1e400}"#.into()),
        ("surrogate pair", r#"{"state":"\ud83d\ude00"}"#.into()),
        ("lone surrogate", r#"{"state":"\ud800"}"#.into()),
        (
            "controls",
            r#"{"state":"\u0001\u001f\u007f\u2028\u2029\ufeff"}"#.into(),
        ),
        ("scalar null", r#"{"state":null}"#.into()),
        (
            "wide",
            format!(r#"{{"state":[{}]}}"#, vec!["[]"; 100_000].join(",")),
        ),
        (
            "many keys",
            format!(
                r#"{{"state":{{{}}}}}"#,
                (0..20_000)
                    .map(|i| format!("\"k{i}\":{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        ("deep mixed 31", {
            let mut s = String::from("1");
            for i in 0..31 {
                s = if i % 2 == 0 {
                    format!("[{s}]")
                } else {
                    format!("{{\"a\":{s}}}")
                };
            }
            format!(r#"{{"state":{s}}}"#)
        }),
    ];
    let mut bad = Vec::new();
    for (what, body) in &bodies {
        for path in [
            format!("/api/players/{id}/games"),
            format!("/api/games/{game}/images"),
        ] {
            let body = if path.ends_with("images") {
                body.replacen(
                    "{\"state\":",
                    "{\"prompt\":\"p\",\"url\":\"https://x/y\",\"metadata\":",
                    1,
                )
            } else {
                body.clone()
            };
            let r = app
                .client
                .post_raw(
                    &path,
                    Some(&token),
                    Some("application/json"),
                    body.as_bytes(),
                )
                .await;
            if r.status >= 500 {
                bad.push(format!("{what} to {path}: {} {}", r.status, r.text()));
                continue;
            }
            if r.status == 201 {
                let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
                let field = if path.ends_with("images") {
                    "metadata"
                } else {
                    "state"
                };
                let want = if sent[field].is_null() && field == "metadata" {
                    json!({})
                } else {
                    sent[field].clone()
                };
                if r.json()[field] != want {
                    bad.push(format!("{what} to {path}: stored differently"));
                }
                if field == "state" {
                    let gid = r.json()["id"].as_u64().unwrap();
                    let g = app
                        .client
                        .get(&format!("/api/games/{gid}"), Some(&token))
                        .await;
                    if g.status != 200 || g.json()["state"] != want {
                        bad.push(format!(
                            "{what}: read back {} {}",
                            g.status,
                            g.text().chars().take(200).collect::<String>()
                        ));
                    }
                }
            }
        }
    }
    let list = app
        .client
        .get(&format!("/api/games/{game}/images"), Some(&token))
        .await;
    if list.status != 200 {
        bad.push(format!("image list: {} {}", list.status, list.text()));
    }
    let games = app
        .client
        .get(&format!("/api/players/{id}/games"), Some(&token))
        .await;
    if games.status != 200 {
        bad.push(format!("game list: {} {}", games.status, games.text()));
    }
    app.stop().await;
    assert!(bad.is_empty(), "{bad:#?}");
}
