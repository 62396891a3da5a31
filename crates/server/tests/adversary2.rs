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
        s.async_side.opened_total + s.sync_side.opened_total
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
        let _ = client
            .post_empty(&format!("/api/players/{id}/rewards/claim"), Some(&t))
            .await;
    }
    let s = app.budget.snapshot();
    let opened = s.async_side.opened_total + s.sync_side.opened_total - opened_before;
    let connects = server.global_status("Connections").expect("status") - before;
    let closes: Vec<_> = s
        .async_side
        .closed_total
        .iter()
        .chain(s.sync_side.closed_total.iter())
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

/// Credentials never in a Debug rendering: the application, its settings, its pools
/// and a checked-out connection of each side (what a `dbg!` or an `{:?}` in a log line
/// prints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_of_the_app_and_its_pools_shows_no_credentials() {
    let server = Server::shared();
    let db = server.create_database("server").expect("db");
    let opts = AppOptions::default();
    let settings = common::settings(server, &db, &opts).expect("settings");
    let settings_dbg = format!("{settings:?}");
    let app = common::build(server, &db, &opts).await.expect("build");
    let app_dbg = format!("{app:?}");
    let apool = app.async_pool();
    let spool = app.sync_pool();
    let pools_dbg = format!("{apool:?} {spool:?} {:?}", app.budget());
    let aconn = apool.acquire().await.expect("async conn");
    let aconn_dbg = format!("{aconn:?}");
    drop(aconn);
    let spool2 = spool.clone();
    let sconn_dbg = tokio::task::spawn_blocking(move || {
        let c = spool2.get().expect("sync conn");
        format!("{c:?}")
    })
    .await
    .unwrap();
    let password = server
        .app_url(&db)
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|userinfo| userinfo.split(':').nth(1))
        .expect("a password in the harness URL")
        .to_owned();
    let mut leaks = Vec::new();
    for (what, text) in [
        ("settings", &settings_dbg),
        ("application", &app_dbg),
        ("pools", &pools_dbg),
        ("async checkout", &aconn_dbg),
        ("blocking checkout", &sconn_dbg),
    ] {
        if text.contains(&password) {
            leaks.push(format!("{what} shows the database password"));
        }
        if text.contains(common::SECRET) {
            leaks.push(format!("{what} shows SERVER_SECRET"));
        }
    }
    let stop = app.shutdown_handle();
    let run = tokio::spawn(app.run_until_stopped());
    stop.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    assert!(leaks.is_empty(), "{leaks:#?}");
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
