//! The legacy shim inside the running server: `db_sync::get_database_connection()` and
//! `db_async::global()` draw from the server's one budget, even with `DATABASE_URL` in
//! the environment (from which a second budget could be built), and never from a second
//! one after the server has stopped.

mod common;

use std::time::Duration;

use common::{AppOptions, spawn_app_with};
use db_budget::DbError;
use mariadb_harness::Server;

/// Puts the app's database URL in this process's environment, as in a deployment.
fn deployment_environment(url: &str) {
    // SAFETY: called first thing in the test, before any thread of this test process
    // reads the environment (nextest runs each test in its own process).
    unsafe {
        std::env::set_var("DATABASE_URL", url);
        std::env::set_var("MAX_CONNECTIONS", "20");
    }
}

/// Connections the server counts for the application account.
fn app_connections(server: &Server) -> u64 {
    let out = server
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        .expect("count the app's connections");
    out.trim().parse().expect("a count")
}

#[test]
fn with_the_server_s_budget_exhausted_the_legacy_shim_times_out_instead_of_connecting() {
    // Arrange: a budget of 2, both units held; DATABASE_URL is set in the environment.
    let server = Server::shared();
    let probe_db = server.create_database("shim_env").unwrap();
    deployment_environment(&server.app_url(&probe_db));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = spawn_app_with(AppOptions {
            max_connections: 2,
            pool_timeout: "500ms",
            ..AppOptions::default()
        })
        .await;
        let (id, token) = app.new_player("shim").await;
        let held = [
            app.async_pool.acquire().await.unwrap(),
            app.async_pool.acquire().await.unwrap(),
        ];
        assert_eq!(app.budget.in_use(), 2);

        // Act: the shim the way legacy code calls it, and a blocking route.
        let shim = tokio::task::spawn_blocking(|| db_sync::get_database_connection().map(drop))
            .await
            .unwrap();
        let global_async = match db_async::global() {
            Ok(pool) => pool.acquire().await.map(drop),
            Err(e) => Err(e),
        };
        let route = app
            .client
            .get(&format!("/api/players/{id}/games"), Some(&token))
            .await;

        // Assert: both time out on the server's budget; nothing connected past it.
        assert!(
            matches!(shim, Err(DbError::PoolTimeout { .. })),
            "the blocking shim: {shim:?}"
        );
        assert!(
            matches!(global_async, Err(DbError::PoolTimeout { .. })),
            "db_async::global(): {global_async:?}"
        );
        assert_eq!(route.status, 503, "{}", route.text());
        assert_eq!(app_connections(server), 2);
        drop(held);

        // Once a unit is back, the shim serves from the same budget.
        let mut conn = tokio::task::spawn_blocking(db_sync::get_database_connection)
            .await
            .unwrap()
            .expect("the shim serves once a unit is free");
        let budget = app.budget.clone();
        let in_use = tokio::task::spawn_blocking(move || {
            let (one,): (i64,) = conn.fetch_one("SELECT 1", ()).unwrap();
            assert_eq!(one, 1);
            budget.snapshot().sync_side.active
        })
        .await
        .unwrap();
        assert_eq!(
            in_use, 1,
            "the shim's connection is counted on the server's budget"
        );
        app.stop().await;
    });
}

#[test]
fn after_the_server_stops_the_shim_refuses_rather_than_building_a_second_budget() {
    let server = Server::shared();
    let probe_db = server.create_database("shim_after").unwrap();
    deployment_environment(&server.app_url(&probe_db));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = spawn_app_with(AppOptions::default()).await;
        app.stop().await;

        let shim = tokio::task::spawn_blocking(|| db_sync::get_database_connection().map(drop))
            .await
            .unwrap();
        assert!(
            matches!(shim, Err(DbError::NotInstalled { .. })),
            "the shim after shutdown: {shim:?}"
        );
        assert!(matches!(
            db_async::global(),
            Err(DbError::NotInstalled { .. })
        ));
        assert!(matches!(
            db_budget::global(),
            Err(DbError::NotInstalled { .. })
        ));
        // A new application in the same process installs its own.
        let again = spawn_app_with(AppOptions::default()).await;
        let ok = tokio::task::spawn_blocking(|| db_sync::get_database_connection().map(drop))
            .await
            .unwrap();
        assert!(ok.is_ok(), "{ok:?}");
        again.stop().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_application_in_the_same_process_is_refused_while_the_first_runs() {
    let first = spawn_app_with(AppOptions::default()).await;
    let server = Server::shared();
    let db = server.create_database("second_app").unwrap();
    let second = common::build(server, &db, &AppOptions::default()).await;
    let err = second.expect_err("a second app installed its pools over the first's");
    assert!(
        err.to_string().contains("process-wide"),
        "the error says what is wrong: {err}"
    );
    // The first still serves, through its own installed pools.
    let shim = tokio::task::spawn_blocking(|| db_sync::get_database_connection().map(drop))
        .await
        .unwrap();
    assert!(shim.is_ok(), "{shim:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    first.stop().await;
}

/// The bulkheads, the way a deployment meets them: a runaway legacy module (slow
/// statements through the shim, more callers than its cap) inside the running server
/// never reaches the retention module's floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_legacy_module_leaves_the_retention_routes_their_floor() {
    // Arrange: a budget of 4; retention's floor is 2, legacy may hold 2 at most.
    let app = spawn_app_with(AppOptions {
        max_connections: 4,
        pool_timeout: "1s",
        env: vec![("DB_BULKHEADS", "retention=2..4,legacy=0..2".to_owned())],
    })
    .await;
    let (id, token) = app.new_player("bulkheads").await;
    let runaway: Vec<_> = (0..6)
        .map(|_| {
            tokio::task::spawn_blocking(|| {
                // Legacy code as it is written: the shim, then a slow statement.
                let mut conn = db_sync::get_database_connection()?;
                conn.execute("DO SLEEP(3)", ()).map(drop)
            })
        })
        .collect();
    let saturated = std::time::Instant::now();
    while app.budget.snapshot().bulkheads[1].in_use < 2 {
        assert!(
            saturated.elapsed() < Duration::from_secs(5),
            "{}",
            app.budget.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: retention requests while legacy holds its cap for three seconds.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = app
            .client
            .get(&format!("/api/players/{id}/quests"), Some(&token))
            .await;
        statuses.push(r.status);
    }
    let during = app.budget.snapshot();

    // Assert: every retention request served; legacy never above its cap (its extra
    // callers time out in their own bulkhead).
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}; {during}");
    let legacy = &during.bulkheads[1];
    assert_eq!(
        (legacy.name.as_str(), legacy.in_use),
        ("legacy", 2),
        "{during:?}"
    );
    let mut timed_out = 0;
    for r in runaway {
        match r.await.unwrap() {
            Ok(()) => {}
            Err(DbError::PoolTimeout { phase, .. }) => {
                assert_eq!(phase, db_budget::TimeoutPhase::Bulkhead);
                timed_out += 1;
            }
            Err(e) => panic!("a legacy caller: {e:?}"),
        }
    }
    assert!(
        timed_out >= 1,
        "more legacy callers than its cap waited in their bulkhead"
    );
    app.stop().await;
}
