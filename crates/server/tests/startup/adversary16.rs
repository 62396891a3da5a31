//! An outside adversary's tests of issue 16's controls in the running server: what
//! `/admin/budget` accepts against what the startup check accepts, and what a legacy
//! request (the blocking shim) answers when a suspension outlasts its wait.

use std::time::Duration;

use serde_json::json;

use crate::common::{AppOptions, Client, spawn_app_with};

const ADMIN_TOKEN: &str = "adversary16-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_route_refuses_a_capacity_that_leaves_the_pools_nothing_beside_the_server_view()
{
    // Arrange: the server view reads on one unit of the budget; the startup check
    // refuses MAX_CONNECTIONS=1 with it ("leaves the pools none").
    let app = spawn_app_with(AppOptions {
        max_connections: 3,
        pool_timeout: "1s",
        env: vec![
            ("ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("DB_SERVER_VIEW_INTERVAL", "10s".into()),
        ],
    })
    .await;
    let admin = Client {
        addr: app.admin_addr,
    };
    let (player, token) = app.new_player("adv16_view").await;

    // Act
    let r = admin
        .post_json(
            "/admin/budget",
            Some(ADMIN_TOKEN),
            &json!({ "capacity": 1 }),
        )
        .await;
    let call = app
        .client
        .get(&format!("/api/players/{player}"), Some(&token))
        .await;

    // Assert
    let usable = app.budget.snapshot().capacity;
    let refused = r.status == 400 && r.json()["field"] == "capacity";
    assert!(
        refused && call.status == 200,
        "controls invariant: /admin/budget stays within the startup check's limits, which \
         refuse a budget that leaves the pools no unit beside the server view's; it \
         answered {} {} and left the pools {usable} units, and the next API call answered \
         {} {}",
        r.status,
        r.text(),
        call.status,
        call.text()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_request_queued_when_the_budget_is_suspended_answers_503_suspended_at_its_pool_timeout()
 {
    // Arrange: both units held; a legacy (blocking shim) request queued for one.
    let app = spawn_app_with(AppOptions {
        max_connections: 2,
        pool_timeout: "1500ms",
        env: vec![("ADMIN_TOKEN", ADMIN_TOKEN.into())],
    })
    .await;
    let admin = Client {
        addr: app.admin_addr,
    };
    let (player, token) = app.new_player("adv16_queued").await;
    let game = app.new_game(player, &token, json!({"level": 1})).await;
    let held = [
        app.async_pool.acquire().await.expect("first unit"),
        app.async_pool.acquire().await.expect("second unit"),
    ];
    let client = app.client;
    let path = format!("/api/games/{game}");
    let queued = tokio::spawn(async move { client.get(&path, Some(&token)).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.budget.snapshot().sync_side.waiting == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never queued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: the operator suspends; nothing comes back before the request's pool timeout.
    let suspended = admin.post_empty("/admin/suspend", Some(ADMIN_TOKEN)).await;
    let r = tokio::time::timeout(Duration::from_secs(15), queued)
        .await
        .expect("answered")
        .unwrap();

    // Assert
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    assert!(
        r.status == 503 && r.error_code() == "suspended",
        "suspend invariant: a waiter still waiting at DB_POOL_TIMEOUT while the budget is \
         suspended gets 503 `suspended`; the legacy request answered {} {}",
        r.status,
        r.text()
    );
    drop(held);
    app.stop().await;
}
