//! Second adversarial round against the running server: shutdown while legacy
//! (blocking) calls wait for a unit, and connect churn under a realistic request mix.

mod common;

use std::time::{Duration, Instant};

use common::{AppOptions, spawn_app_with};
use mariadb_harness::Server;
use serde_json::json;

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
    while budget.snapshot().sync.waiting < 6 && queued.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting_before = budget.snapshot().sync.waiting;

    let started = Instant::now();
    app.stop().await;
    let shutdown_took = started.elapsed();

    // The blocking threads must not still be waiting out the 20 s pool timeout.
    let gave_up = Instant::now();
    while budget.snapshot().sync.waiting > 0 && gave_up.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still_waiting = budget.snapshot().sync.waiting;

    // Units come back: nothing of the stopped app may connect again.
    drop(held);
    // Their closes run on the pool's runtime: let them finish first.
    let settle = Instant::now();
    while budget.in_use() > 0 && settle.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = |s: db_budget::Snapshot| s.async_side.opened_total + s.sync.opened_total;
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
        outcomes.push(match tokio::time::timeout(Duration::from_secs(25), r).await {
            Ok(Ok((path, status, text, took))) => format!("{path}: {status} after {took:?}: {text}"),
            Ok(Err(_)) => "connection dropped without an answer".to_owned(),
            Err(_) => "no answer within 25 s".to_owned(),
        });
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
        assert!(!o.contains(": 500 "), "a 500 during shutdown: {outcomes:#?}");
    }
}

/// I3 cost: the server's own statements never dirty a session, so a realistic mix of
/// both call styles reuses its connections: connects stay at the budget's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_mix_does_not_churn_connections() {
    let app = spawn_app_with(AppOptions {
        max_connections: 4,
        ..AppOptions::default()
    })
    .await;
    let (id, token) = app.new_player("churn").await;
    let game = app.new_game(id, &token, json!({ "level": 1 })).await;
    let server = Server::shared();
    let before = server.global_status("Connections").expect("status");
    let opened_before = {
        let s = app.budget.snapshot();
        s.async_side.opened_total + s.sync.opened_total
    };
    for round in 0..40 {
        let client = app.client;
        let t = token.clone();
        // Two async and two blocking requests at a time: each side its fair half.
        let paths = [
            format!("/api/players/{id}"),
            format!("/api/players/{id}/rewards"),
            format!("/api/games/{game}"),
            format!("/api/players/{id}/games"),
        ];
        let gets = paths.iter().map(|p| {
            let t = t.clone();
            async move { (p.clone(), client.get(p, Some(&t)).await) }
        });
        for (p, r) in futures_util::future::join_all(gets).await {
            assert_eq!(r.status, 200, "GET {p}: {}", r.text());
        }
        let r = client
            .post_json(
                &format!("/api/players/{id}/events"),
                Some(&t),
                &json!({ "kind": "game_won", "amount": 1 }),
            )
            .await;
        assert_eq!(r.status, 200, "event: {}", r.text());
        let r = client
            .post_json(
                &format!("/api/players/{id}/games"),
                Some(&t),
                &json!({ "state": { "round": round } }),
            )
            .await;
        assert_eq!(r.status, 201, "save: {}", r.text());
        let r = client
            .post_json(
                &format!("/api/games/{game}/images"),
                Some(&t),
                &json!({ "prompt": "p", "url": "https://x/y", "metadata": { "r": round } }),
            )
            .await;
        assert_eq!(r.status, 201, "image: {}", r.text());
        let _ = client.post_empty(&format!("/api/players/{id}/rewards/claim"), Some(&t)).await;
    }
    let s = app.budget.snapshot();
    let opened = s.async_side.opened_total + s.sync.opened_total - opened_before;
    let connects = server.global_status("Connections").expect("status") - before;
    let closes: Vec<_> = s
        .async_side
        .closed_total
        .iter()
        .chain(s.sync.closed_total.iter())
        .filter(|(_, n)| *n > 0)
        .collect();
    app.stop().await;
    // Connections is server-wide (other tests may run): the app's own count decides.
    assert!(
        opened <= 8,
        "{opened} connects by the app for 40 rounds of 8 requests (at most 2 per side at a time) with a budget of 4 \
         (server-wide Connections +{connects}); closes by reason: {closes:?}"
    );
}
