//! Startup and shutdown: the server check against the database server's limits, the
//! required secret, and a graceful shutdown that leaves no budget unit in use, both
//! in-process and for the real binary on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{AppOptions, SECRET, build, spawn_app, spawn_app_with};
use db_budget::Side;
use mariadb_harness::{Server, ServerOptions};
use serde_json::json;
use server::StartupError;

fn options(max_connections: u32, env: Vec<(&'static str, String)>) -> AppOptions {
    AppOptions {
        max_connections,
        env,
        ..AppOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_above_the_servers_limit_is_refused_with_the_numbers_and_the_fix() {
    // Arrange: a server allowing 20 connections, a budget of 18, 5 reserved.
    let small = tokio::task::spawn_blocking(|| {
        Server::start(ServerOptions {
            max_connections: 20,
            ..ServerOptions::default()
        })
    })
    .await
    .unwrap()
    .expect("start a small server");
    let db = small.create_database("limits").unwrap();

    // Act
    let err = build(&small, &db, &options(18, vec![]))
        .await
        .expect_err("refused");

    // Assert
    assert!(matches!(err, StartupError::ServerLimit(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "refusing to start: MAX_CONNECTIONS=18 × DB_INSTANCES=1 = 18 exceeds the server's \
         max_connections (20) minus DB_RESERVED_CONNECTIONS (5) = 15: lower MAX_CONNECTIONS \
         to 15 or raise the server's max_connections to 23"
    );
    let reserved_less = build(
        &small,
        &db,
        &options(18, vec![("DB_RESERVED_CONNECTIONS", "2".into())]),
    )
    .await
    .expect("fits with a smaller reserve");
    common::start(reserved_less, db).stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_check_multiplies_the_budget_by_the_instances() {
    // Arrange: the shared server allows 200 connections; 5 are reserved.
    let server = Server::shared();
    let db = server.create_database("instances").unwrap();

    // Act
    let refused = build(
        server,
        &db,
        &options(50, vec![("DB_INSTANCES", "4".into())]),
    )
    .await;
    let accepted = build(
        server,
        &db,
        &options(50, vec![("DB_INSTANCES", "3".into())]),
    )
    .await;

    // Assert
    let err = refused.expect_err("4 × 50 does not fit in 195").to_string();
    assert!(
        err.contains("MAX_CONNECTIONS=50 × DB_INSTANCES=4 = 200 exceeds"),
        "{err}"
    );
    assert!(err.contains("lower MAX_CONNECTIONS to 48"), "{err}");
    common::start(accepted.expect("3 × 50 fits"), db)
        .stop()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_refused_naming_the_variable() {
    // Arrange
    let server = Server::shared();
    let url = server.app_url("whatever");

    // Act
    let err = server::Settings::from_args_and_lookup(["server"], |name| {
        (name == "DATABASE_URL").then(|| url.clone())
    })
    .unwrap_err()
    .to_string();

    // Assert
    assert!(
        err.starts_with("invalid SERVER_SECRET=\"\": it is not set"),
        "{err}"
    );
}

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

/// The built binary, with a clean environment.
fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    cmd
}

#[test]
fn the_binary_refuses_to_start_without_a_secret() {
    // Arrange
    let server = Server::shared();
    let db = server.create_database("nosecret").unwrap();

    // Act
    let out = binary()
        .env("DATABASE_URL", server.app_url(&db))
        .output()
        .expect("run the server binary");

    // Assert
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SERVER_SECRET"), "{stderr}");
}

#[test]
fn the_token_command_prints_a_token_the_api_accepts() {
    // Act
    let out = binary()
        .env("SERVER_SECRET", SECRET)
        .args(["token", "42"])
        .output()
        .expect("run the server binary");

    // Assert
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let key = server::auth::TokenKey::new(&server::secret::Secret::new(SECRET).unwrap());
    assert_eq!(key.verify(token.trim()), Some(42));
}

#[test]
fn the_binary_shuts_down_on_sigterm_and_its_last_log_line_reports_zero_units() {
    // Arrange
    let server = Server::shared();
    let db = server.create_database("sigterm").unwrap();
    let mut child = binary()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", server.app_url(&db))
        .env("SERVER_SECRET", SECRET)
        .env("MAX_CONNECTIONS", "4")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let api = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'API listening' line; log so far: {log:#?}"));
        log.push(line.clone());
        if let Some(rest) = line.split("API listening on http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    // Use the database through the API, so both pools hold connections.
    let client = common::Client {
        addr: api.parse().unwrap(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let r = client
            .post_json("/api/players", None, &json!({ "name": "sig" }))
            .await;
        assert_eq!(r.status, 201);
        let body = r.json();
        let (id, token) = (
            body["id"].as_u64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        );
        let r = client
            .post_json(
                &format!("/api/players/{id}/games"),
                Some(&token),
                &json!({ "state": {} }),
            )
            .await;
        assert_eq!(r.status, 201);
    });

    // Act
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = child.wait().expect("the server exits");
    log.extend(lines_rx.iter());

    // Assert
    eprintln!("{}", log.join("\n"));
    assert!(status.success(), "exit status {status}; log: {log:#?}");
    let last = log
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("some log");
    assert!(
        last.contains("shutdown complete: budget units in use: 0"),
        "last line: {last}\nlog: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("SIGTERM received")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("malloc: mmap threshold fixed at 1024 KiB")),
        "the binary did not tune malloc (server::memory): {log:#?}"
    );
}
