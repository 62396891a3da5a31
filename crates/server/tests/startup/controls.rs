//! `ADMIN_TOKEN` in the running server: it guards the admin listener's control routes,
//! a suspended budget answers the API with 503 `suspended` on both call styles, the
//! budget may grow to what the startup check accepted and no further (the server view's
//! connection counted in it), and a bad token stops the binary at startup naming the
//! variable.

use std::process::Command;

use mariadb_harness::Server;
use serde_json::json;

use crate::common::{AppOptions, Client, spawn_app_with};

const ADMIN_TOKEN: &str = "startup-admin-token-0123456789";

fn options(env: Vec<(&'static str, String)>) -> AppOptions {
    AppOptions {
        pool_timeout: "1s",
        env,
        ..AppOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_guards_the_servers_controls_and_a_suspended_budget_answers_503_suspended()
{
    // Arrange
    let app = spawn_app_with(options(vec![("ADMIN_TOKEN", ADMIN_TOKEN.into())])).await;
    let admin = Client {
        addr: app.admin_addr,
    };
    let (player, token) = app.new_player("controls").await;
    let game = app.new_game(player, &token, json!({"level": 1})).await;

    // Act
    let unauthorized = admin.post_empty("/admin/suspend", None).await;
    let wrong = admin.post_empty("/admin/suspend", Some(&token)).await;
    let suspended = admin.post_empty("/admin/suspend", Some(ADMIN_TOKEN)).await;
    let async_call = app
        .client
        .get(&format!("/api/players/{player}"), Some(&token))
        .await;
    let blocking_call = app
        .client
        .get(&format!("/api/games/{game}"), Some(&token))
        .await;
    let resumed = admin.post_empty("/admin/resume", Some(ADMIN_TOKEN)).await;
    let after = app
        .client
        .get(&format!("/api/games/{game}"), Some(&token))
        .await;

    // Assert
    assert_eq!(unauthorized.status, 401, "{}", unauthorized.text());
    assert_eq!(wrong.status, 401, "a player's token is not the admin token");
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    for r in [&async_call, &blocking_call] {
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.error_code(), "suspended");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(resumed.status, 200, "{}", resumed.text());
    assert_eq!(after.status, 200, "{}", after.text());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_grows_at_run_time_to_what_the_startup_check_accepts_and_no_further() {
    // Arrange: the shared server allows 200 connections; 5 are reserved; 2 instances;
    // the server's view reads on one unit of the budget.
    let server = Server::shared();
    let limit = (server.max_connections() - 5) / 2;
    let app = spawn_app_with(options(vec![
        ("ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ("DB_INSTANCES", "2".into()),
        ("DB_SERVER_VIEW_INTERVAL", "10s".into()),
    ]))
    .await;
    let admin = Client {
        addr: app.admin_addr,
    };
    let shown = admin.get("/api/pool", None).await.json();
    assert_eq!(
        (shown["capacity"].clone(), shown["withheld"].clone()),
        (5.into(), 1.into()),
        "it starts at MAX_CONNECTIONS, one of them the view's: {shown}"
    );
    assert_eq!(shown["controls"]["capacity_limit"], limit, "{shown}");

    // Act
    let above = admin
        .post_json(
            "/admin/budget",
            Some(ADMIN_TOKEN),
            &json!({ "capacity": limit + 1 }),
        )
        .await;
    let at = admin
        .post_json(
            "/admin/budget",
            Some(ADMIN_TOKEN),
            &json!({ "capacity": limit }),
        )
        .await;

    // Assert
    assert_eq!(above.status, 400, "{}", above.text());
    assert_eq!(above.json()["field"], "capacity");
    assert_eq!(at.status, 200, "{}", at.text());
    let snap = app.budget.snapshot();
    assert_eq!(
        (snap.capacity, snap.withheld),
        (limit - 1, 1),
        "the pools' part of the limit; the view keeps its unit"
    );
    app.stop().await;
}

#[test]
fn a_bad_admin_token_stops_the_binary_at_startup_naming_the_variable() {
    for (bad, why) in [
        ("short-token", "at least 16"),
        (crate::common::SECRET, "SERVER_SECRET"),
    ] {
        // Act
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", "mysql://app:pw@127.0.0.1:1/game")
            .env("SERVER_SECRET", crate::common::SECRET)
            .env("ADMIN_TOKEN", bad)
            .output()
            .expect("run the server binary");

        // Assert
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid ADMIN_TOKEN="), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(bad), "the token is not shown: {stderr}");
    }
}
