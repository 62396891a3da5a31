//! The startup check against the database server's limits, the required secret, and
//! no credentials in the Debug output of the application and its pools.

use std::time::Duration;

use mariadb_harness::{Server, ServerOptions};
use server::StartupError;

use crate::common::{self, AppOptions, build};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_above_the_accounts_own_connection_limit_is_refused_naming_it() {
    // Arrange: an account of its own, created WITH MAX_USER_CONNECTIONS 4 (the fence:
    // an overshoot gets ERROR 1226 for this account, not 1040 for everyone).
    let server = Server::shared();
    let db = server.create_database("user_limit").unwrap();
    let user = format!("capped_{}", std::process::id());
    server
        .sql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'capped-secret' WITH MAX_USER_CONNECTIONS 4; \
             GRANT ALL ON `{db}`.* TO '{user}'@'%'"
        ))
        .expect("create the account");
    let url = format!(
        "mysql://{user}:capped-secret@127.0.0.1:{}/{db}",
        server.port()
    );

    // Act: a budget of 6, then one of 4, on that account.
    let over = build(
        server,
        &db,
        &options(6, vec![("DATABASE_URL", url.clone())]),
    )
    .await;
    let fits = build(server, &db, &options(4, vec![("DATABASE_URL", url)])).await;

    // Assert: the account's limit is read (by the account itself) and enforced.
    let err = over.expect_err("refused");
    assert!(matches!(err, StartupError::ServerLimit(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "refusing to start: MAX_CONNECTIONS=6 × DB_INSTANCES=1 = 6 exceeds the server's \
         max_user_connections (4): lower MAX_CONNECTIONS to 4 or raise the server's \
         max_user_connections to 6"
    );
    common::start(fits.expect("a budget of 4 fits"), db)
        .stop()
        .await;
}
