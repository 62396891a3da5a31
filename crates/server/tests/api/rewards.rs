//! The daily reward (async, retention): claimed once a day, exactly once when a new
//! player's first requests race for it.

use serde_json::json;

use crate::common::{AppOptions, spawn_app, spawn_app_with};

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

/// A new player's first requests arrive together (app start on a phone: quests, an
/// event, the daily reward): they race to generate the day's quests and the claim.
/// Deadlocks and lock waits between them are the server's business: never a 500, and
/// exactly one claim succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_player_s_simultaneous_first_requests_never_get_a_500() {
    let app = spawn_app_with(AppOptions {
        max_connections: 6,
        ..AppOptions::default()
    })
    .await;
    let mut failures = Vec::new();
    for p in 0..10 {
        let (id, token) = app.new_player(&format!("racer{p}")).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let client = app.client;
                let token = token.clone();
                tokio::spawn(async move {
                    let r = match i % 4 {
                        0 => {
                            client
                                .get(&format!("/api/players/{id}/quests"), Some(&token))
                                .await
                        }
                        1 => {
                            client
                                .post_json(
                                    &format!("/api/players/{id}/events"),
                                    Some(&token),
                                    &json!({ "kind": "game_won", "amount": 1 }),
                                )
                                .await
                        }
                        2 => {
                            client
                                .post_empty(
                                    &format!("/api/players/{id}/rewards/claim"),
                                    Some(&token),
                                )
                                .await
                        }
                        _ => {
                            client
                                .get(&format!("/api/players/{id}/rewards"), Some(&token))
                                .await
                        }
                    };
                    (i % 4, r.status, r.text())
                })
            })
            .collect();
        let mut claims_ok = 0;
        for t in tasks {
            let (kind, status, text) = t.await.unwrap();
            if status >= 500 {
                failures.push(format!("player {p} request kind {kind}: {status} {text}"));
            }
            if kind == 2 && status == 200 {
                claims_ok += 1;
            }
        }
        if claims_ok != 1 {
            failures.push(format!("player {p}: {claims_ok} successful claims"));
        }
    }
    app.stop().await;
    assert!(failures.is_empty(), "{failures:#?}");
}
