//! The fleet budget (`DB_FLEET_BUDGET`) in the application: an instance keeps
//! `MAX_CONNECTIONS` of its own and leases the rest while its callers wait, and the
//! startup check weighs the fleet budget, not `MAX_CONNECTIONS × DB_INSTANCES`, against
//! the server's limits.

use std::time::Duration;

use mariadb_harness::{Server, ServerOptions};
use server::StartupError;

use crate::common::{self, AppOptions, build};

fn fleet_options(max_connections: u32, env: Vec<(&'static str, String)>) -> AppOptions {
    AppOptions {
        max_connections,
        env,
        ..AppOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fleet_budget_an_instance_leases_above_its_floor_while_its_callers_wait() {
    // Arrange: a floor of 2 (its control connection and one more), up to 2 instances,
    // a fleet budget of 10: a lease pool of 6.
    let server = Server::shared();
    let db = server.create_database("fleet_app").unwrap();
    let opts = fleet_options(
        2,
        vec![
            ("DB_INSTANCES", "2".into()),
            ("DB_FLEET_BUDGET", "10".into()),
        ],
    );
    let app = common::start(build(server, &db, &opts).await.expect("starts"), db);
    let budget = app.budget.clone();
    // Startup's own statements (the server check, migrations) may have leased a unit;
    // a lease idle for a second is given back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while budget.usable() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let floor_usable = budget.usable();

    // Act: five callers hold a connection at once.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            tokio::time::timeout(Duration::from_secs(10), app.async_pool.acquire())
                .await
                .expect("within the pool timeout")
                .expect("a connection"),
        );
    }
    let usable_busy = budget.usable();
    let snap = budget.snapshot();
    drop(held);

    // Assert: one unit of its own to start with, more leased for its callers, every
    // unit it uses covered (capacity 2 + 6, the rest withheld).
    assert_eq!(floor_usable, 1);
    assert!(usable_busy >= 5, "usable {usable_busy}: {snap}");
    assert_eq!(snap.capacity + snap.withheld, 8, "{snap}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_budget_above_the_servers_limit_is_refused_with_the_numbers_and_the_fix() {
    // Arrange: a server allowing 20 connections, 5 reserved; a fleet budget of 18 for
    // up to 3 instances with 4 each of their own (fits: 12 < 18, but 18 > 15).
    let small = tokio::task::spawn_blocking(|| {
        Server::start(ServerOptions {
            max_connections: 20,
            ..ServerOptions::default()
        })
    })
    .await
    .unwrap()
    .expect("start a small server");
    let db = small.create_database("fleet_limits").unwrap();
    let opts = fleet_options(
        4,
        vec![
            ("DB_INSTANCES", "3".into()),
            ("DB_FLEET_BUDGET", "18".into()),
        ],
    );

    // Act
    let err = build(&small, &db, &opts).await.expect_err("refused");

    // Assert
    assert!(matches!(err, StartupError::ServerLimit(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "refusing to start: DB_FLEET_BUDGET=18 exceeds the server's max_connections (20) \
         minus DB_RESERVED_CONNECTIONS (5) = 15: lower DB_FLEET_BUDGET to 15 or raise the \
         server's max_connections to 23"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_shows_its_part_of_the_fleet_on_metrics_the_json_and_the_dashboard() {
    // Fail (not skip) at once, with install instructions, when there is no browser.
    let _ = crate::browser::chromium();
    // Arrange: a floor of 2, up to 2 instances, a fleet budget of 10; three callers hold
    // a connection, so the instance leases above its floor.
    let server = Server::shared();
    let db = server.create_database("fleet_ops").unwrap();
    let opts = fleet_options(
        2,
        vec![
            ("DB_INSTANCES", "2".into()),
            ("DB_FLEET_BUDGET", "10".into()),
        ],
    );
    let app = common::start(build(server, &db, &opts).await.expect("starts"), db);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::time::timeout(Duration::from_secs(10), app.async_pool.acquire())
                .await
                .expect("within the pool timeout")
                .expect("a connection"),
        );
    }
    let admin = common::Client {
        addr: app.admin_addr,
    };

    // Act
    let metrics = admin.get("/metrics", None).await.text();
    let json = admin.get("/api/pool", None).await.json();
    let url = format!("http://{}/dashboard", app.admin_addr);
    let dom = tokio::task::spawn_blocking(move || {
        crate::browser::run(&url, 4000, &["--dump-dom".to_owned()])
    })
    .await
    .expect("chromium runner")
    .stdout;
    drop(held);

    // Assert: 3 callers on a floor of 2 with one unit for the control connection: at
    // least 2 leased, and each figure the same on every page.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not on /metrics:\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("db_fleet_budget"), 10.0);
    assert_eq!(value("db_fleet_floor"), 2.0);
    assert_eq!(value("db_fleet_connected"), 1.0);
    let leased = value("db_fleet_leased");
    assert!(leased >= 2.0, "leased {leased}");
    let fleet = &json["fleet"];
    assert_eq!(fleet["settings"]["fleet_budget"], 10, "{json:#}");
    assert_eq!(fleet["connected"], true);
    let text = |id: &str| crate::browser::text_of(&dom, id).unwrap_or_default();
    let panel = crate::browser::tag_of(&dom, "fleet").expect("the fleet panel");
    assert!(!panel.contains("hidden"), "{panel}");
    assert_eq!(text("fl-budget"), "10");
    assert_eq!(text("fl-connected"), "open");
    let own: f64 = text("fl-own").parse().expect("a number");
    assert!(own >= 4.0, "floor 2 + at least 2 leased: {own}");
    app.stop().await;
}
