//! A graceful shutdown: in-flight requests finish within the bound, both pools close,
//! no unit stays in use, and nothing of the stopped application connects again, also
//! with legacy calls queued for a unit and with the database frozen.

use std::time::{Duration, Instant};

use db_budget::Side;
use mariadb_harness::Server;
use serde_json::json;

use crate::common::{self, AppOptions, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_both_pools_and_leaves_no_unit_in_use() {
    // Arrange: use both sides so both pools hold connections.
    let app = spawn_app().await;
    let (id, token) = app.new_player("bye").await;
    let game = app.new_game(id, &token, json!({ "level": 2 })).await;
    let r = app
        .client
        .get(&format!("/api/games/{game}"), Some(&token))
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .client
        .get(&format!("/api/players/{id}/quests"), Some(&token))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        app.budget.in_use() > 0,
        "connections are pooled before shutdown"
    );
    let budget = app.budget.clone();
    let (api, admin) = (app.api_addr, app.admin_addr);

    // Act
    app.stop().await;

    // Assert
    assert_eq!(budget.in_use(), 0);
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "the API no longer accepts"
    );
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin listener neither"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_shutdown_is_finished_before_the_pools_close() {
    // Arrange: a budget of 2, both units held by the test, one request waiting for one.
    let app = spawn_app_with(AppOptions {
        max_connections: 2,
        pool_timeout: "10s",
        ..AppOptions::default()
    })
    .await;
    let (id, token) = app.new_player("late").await;
    let held = [
        app.async_pool.acquire().await.unwrap(),
        app.async_pool.acquire().await.unwrap(),
    ];
    let client = app.client;
    let in_flight = tokio::spawn(async move {
        client
            .get(&format!("/api/players/{id}/rewards"), Some(&token))
            .await
    });
    let budget = app.budget.clone();
    wait_for(|| budget.snapshot().side(Side::Async).waiting == 1).await;
    let api = app.api_addr;

    // Act: shut down, then give the units back.
    let stopping = tokio::spawn(app.stop());
    wait_for(|| std::net::TcpStream::connect(api).is_err()).await;
    drop(held);
    let response = in_flight.await.unwrap();
    stopping.await.unwrap();

    // Assert
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(budget.in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_in_flight_requests_no_longer_than_its_bound() {
    // Arrange: the test holds every unit for longer than SHUTDOWN_TIMEOUT.
    let app = spawn_app_with(AppOptions {
        max_connections: 2,
        pool_timeout: "20s",
        env: vec![("SHUTDOWN_TIMEOUT", "300ms".into())],
    })
    .await;
    let (id, token) = app.new_player("stuck").await;
    let held = [
        app.async_pool.acquire().await.unwrap(),
        app.async_pool.acquire().await.unwrap(),
    ];
    let client = app.client;
    let in_flight = tokio::spawn(async move {
        client
            .get(&format!("/api/players/{id}/quests"), Some(&token))
            .await
    });
    let budget = app.budget.clone();
    wait_for(|| budget.snapshot().side(Side::Async).waiting == 1).await;

    // Act
    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    let response = in_flight.await.unwrap();
    drop(held);

    // Assert: two bounds (requests, then connections coming back), not the 20 s pool
    // timeout; the waiting request was told the pool closed.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.error_code(), "unavailable");
    wait_for(|| budget.in_use() == 0).await;
}

/// Polls `cond` every 10 ms for up to 10 s.
async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn app_connections(db: &str) -> u64 {
    Server::shared()
        .sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}'"
        ))
        .expect("processlist")
        .trim()
        .parse()
        .expect("a count")
}

/// I1/I4: legacy calls queued for a unit when the shutdown starts. The shutdown ends
/// within its bound, the blocked blocking threads give up at once (the pool is closed),
/// and once the units come back nothing of the stopped app connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_legacy_calls_waiting_for_a_unit_neither_hangs_nor_reconnects() {
    let app = spawn_app_with(AppOptions {
        max_connections: 2,
        pool_timeout: "20s",
        env: vec![("SHUTDOWN_TIMEOUT", "1s".to_owned())],
    })
    .await;
    let (id, token) = app.new_player("closing").await;
    let game = app.new_game(id, &token, json!({ "level": 1 })).await;
    let budget = app.budget.clone();
    let db = app.db.clone();
    let held = [
        app.async_pool.acquire().await.expect("first unit"),
        app.async_pool.acquire().await.expect("second unit"),
    ];
    let requests: Vec<_> = (0..6)
        .map(|i| {
            let client = app.client;
            let token = token.clone();
            let path = if i % 2 == 0 {
                format!("/api/games/{game}")
            } else {
                format!("/api/players/{id}/games")
            };
            tokio::spawn(async move {
                let started = Instant::now();
                let r = client.get(&path, Some(&token)).await;
                (path, r.status, r.text(), started.elapsed())
            })
        })
        .collect();
    // Let them queue on the blocking side.
    let queued = Instant::now();
    while budget.snapshot().sync_side.waiting < 6 && queued.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting_before = budget.snapshot().sync_side.waiting;

    let started = Instant::now();
    app.stop().await;
    let shutdown_took = started.elapsed();

    // The blocking threads must not still be waiting out the 20 s pool timeout.
    let gave_up = Instant::now();
    while budget.snapshot().sync_side.waiting > 0 && gave_up.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still_waiting = budget.snapshot().sync_side.waiting;

    // Units come back: nothing of the stopped app may connect again.
    drop(held);
    // Their closes run on the pool's runtime: let them finish first.
    let settle = Instant::now();
    while budget.in_use() > 0 && settle.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server counts a closed connection for a moment longer (ARCHITECTURE.md,
    // "Server-side lag"): watch from when it shows none.
    let lag = Instant::now();
    while app_connections(&db) > 0 && lag.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = |s: db_budget::Snapshot| s.async_side.opened_total + s.sync_side.opened_total;
    let opened_before = opened(budget.snapshot());
    let mut max_in_use = 0;
    let mut max_conns = 0;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(1500) {
        max_in_use = max_in_use.max(budget.in_use());
        max_conns = max_conns.max(app_connections(&db));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let mut outcomes = Vec::new();
    for r in requests {
        outcomes.push(
            match tokio::time::timeout(Duration::from_secs(25), r).await {
                Ok(Ok((path, status, text, took))) => {
                    format!("{path}: {status} after {took:?}: {text}")
                }
                Ok(Err(_)) => "connection dropped without an answer".to_owned(),
                Err(_) => "no answer within 25 s".to_owned(),
            },
        );
    }
    assert_eq!(waiting_before, 6, "the legacy calls queued: {outcomes:#?}");
    assert!(
        shutdown_took < Duration::from_secs(4),
        "shutdown took {shutdown_took:?} (SHUTDOWN_TIMEOUT 1s, twice at most): {outcomes:#?}"
    );
    assert_eq!(
        still_waiting, 0,
        "blocking threads still wait for a unit of the stopped app's closed pool: {outcomes:#?}"
    );
    let opened_after = opened(budget.snapshot()) - opened_before;
    assert_eq!(
        (max_in_use, max_conns, opened_after),
        (0, 0, 0),
        "the stopped app took units / connected again after its units came back: {outcomes:#?}"
    );
    for o in &outcomes {
        assert!(
            !o.contains(": 500 "),
            "a 500 during shutdown: {outcomes:#?}"
        );
    }
}

/// I4 at shutdown: the database is frozen (SIGSTOP) while requests of both call styles
/// are in flight and a graceful shutdown starts. The shutdown ends within its bound
/// (SHUTDOWN_TIMEOUT for in-flight requests, again for connections to come back), and
/// after the server runs again every unit comes back and nothing reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_frozen_database_ends_within_its_bound() {
    let server: &'static Server = Box::leak(Box::new(
        Server::start(mariadb_harness::ServerOptions::default()).expect("private server"),
    ));
    let app = common::spawn_app_on(
        server,
        AppOptions {
            max_connections: 4,
            pool_timeout: "2s",
            env: vec![
                ("SHUTDOWN_TIMEOUT", "1s".to_owned()),
                ("DB_CONNECT_TIMEOUT", "2s".to_owned()),
            ],
        },
    )
    .await;
    let (id, token) = app.new_player("frozen").await;
    let game = app.new_game(id, &token, json!({ "level": 1 })).await;
    let budget = app.budget.clone();
    server.pause().expect("SIGSTOP");
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let client = app.client;
            let token = token.clone();
            let path = match i % 4 {
                0 => format!("/api/players/{id}"),
                1 => format!("/api/games/{game}"),
                2 => format!("/api/players/{id}/quests"),
                _ => format!("/api/players/{id}/games"),
            };
            tokio::spawn(async move { client.get(&path, Some(&token)).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(20), app.stop()).await;
    let took = started.elapsed();
    server.resume().expect("SIGCONT");
    let back = Instant::now();
    while budget.in_use() > 0 && back.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_use = budget.in_use();
    let took_back = back.elapsed();
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(
            match tokio::time::timeout(Duration::from_secs(30), r).await {
                Ok(Ok(s)) => s.to_string(),
                Ok(Err(_)) => "dropped".to_owned(),
                Err(_) => "no answer in 30 s".to_owned(),
            },
        );
    }
    assert!(
        stopped.is_ok(),
        "no shutdown within 20 s; statuses {statuses:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "shutdown took {took:?} with SHUTDOWN_TIMEOUT=1s; statuses {statuses:?}"
    );
    assert_eq!(
        in_use, 0,
        "units still in use {took_back:?} after the server ran again; statuses {statuses:?}"
    );
    assert!(
        !statuses.iter().any(|s| s == "500"),
        "a 500 during a frozen shutdown: {statuses:?}"
    );
}
