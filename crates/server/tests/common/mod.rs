//! Shared set-up for the server's tests: the whole [`Application`] on port 0 against a
//! fresh database on the test process's private MariaDB, and a tiny HTTP/1.1 client
//! (`client`: raw bytes in, status/headers/body out, so tests can send what a
//! well-behaved client library would refuse to: invalid UTF-8, oversized bodies, bad
//! headers).

#![allow(dead_code)]

mod client;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use client::{Client, Response, assert_no_leak, auth_headers};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use db_async::AsyncPool;
use db_budget::Budget;
use db_sync::SyncPool;
use mariadb_harness::Server;
use serde_json::Value;
use server::shutdown::ShutdownHandle;
use server::{Application, Settings, StartupError};
use tokio::task::JoinHandle;

/// The `SERVER_SECRET` of every test app.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// How to start a test app.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// `MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// `DB_POOL_TIMEOUT`.
    pub pool_timeout: &'static str,
    /// More variables (override the above).
    pub env: Vec<(&'static str, String)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            max_connections: 6,
            pool_timeout: "10s",
            env: Vec::new(),
        }
    }
}

/// The settings of a test app on `server`'s database `db`, listening on port 0.
pub fn settings(server: &Server, db: &str, opts: &AppOptions) -> Result<Settings, String> {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", server.app_url(db)),
        ("SERVER_SECRET", SECRET.to_owned()),
        ("MAX_CONNECTIONS", opts.max_connections.to_string()),
        ("DB_POOL_TIMEOUT", opts.pool_timeout.to_owned()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("ADMIN_ADDR", "127.0.0.1:0".to_owned()),
        ("SHUTDOWN_TIMEOUT", "5s".to_owned()),
        // Off unless a test turns it on: most tests count on every unit of
        // MAX_CONNECTIONS being the pools' (the view's reader withholds one).
        ("DB_SERVER_VIEW_INTERVAL", "0".to_owned()),
    ]);
    for (k, v) in &opts.env {
        env.insert(k, v.clone());
    }
    Settings::from_args_and_lookup(["server"], |name| env.get(name).cloned())
        .map_err(|e| e.to_string())
}

/// A running application.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// The API's address.
    pub api_addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    /// A client for the API.
    pub client: Client,
    /// The app's budget.
    pub budget: Budget,
    /// The app's async pool (to hold its units in exhaustion tests).
    pub async_pool: AsyncPool,
    /// The app's blocking pool.
    pub sync_pool: SyncPool,
    /// Triggers the app's graceful shutdown.
    pub shutdown: ShutdownHandle,
    /// The database name.
    pub db: String,
    run: Option<JoinHandle<std::io::Result<()>>>,
}

/// Builds and starts an app on a fresh database of the shared private server.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// [`spawn_app`] with options.
pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    spawn_app_on(Server::shared(), opts).await
}

/// [`spawn_app_with`] on a fresh database of `server` (a test's own private server,
/// for tests that stop, pause or reconfigure it).
pub async fn spawn_app_on(server: &Server, opts: AppOptions) -> TestApp {
    let db = server
        .create_database("server")
        .expect("create a test database");
    let app = build(server, &db, &opts)
        .await
        .unwrap_or_else(|e| panic!("the app did not start: {e}"));
    start(app, db)
}

/// Builds an app without starting it.
pub async fn build(
    server: &Server,
    db: &str,
    opts: &AppOptions,
) -> Result<Application, StartupError> {
    let settings = settings(server, db, opts).expect("valid test settings");
    Application::build(settings).await
}

/// Starts serving a built app.
pub fn start(app: Application, db: String) -> TestApp {
    let api_addr = app.api_addr();
    let admin_addr = app.admin_addr();
    let budget = app.budget();
    let async_pool = app.async_pool();
    let sync_pool = app.sync_pool();
    let shutdown = app.shutdown_handle();
    let run = tokio::spawn(app.run_until_stopped());
    TestApp {
        api: format!("http://{api_addr}"),
        admin: format!("http://{admin_addr}"),
        api_addr,
        admin_addr,
        client: Client { addr: api_addr },
        budget,
        async_pool,
        sync_pool,
        shutdown,
        db,
        run: Some(run),
    }
}

impl TestApp {
    /// Signs up a player; returns `(id, token)`.
    pub async fn new_player(&self, name: &str) -> (u64, String) {
        let r = self
            .client
            .post_json("/api/players", None, &serde_json::json!({ "name": name }))
            .await;
        assert_eq!(r.status, 201, "sign-up failed: {}", r.text());
        let body = r.json();
        (
            body["id"].as_u64().expect("id"),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Saves a game for the player; returns its id.
    pub async fn new_game(&self, player: u64, token: &str, state: Value) -> u64 {
        let r = self
            .client
            .post_json(
                &format!("/api/players/{player}/games"),
                Some(token),
                &serde_json::json!({ "state": state }),
            )
            .await;
        assert_eq!(r.status, 201, "save failed: {}", r.text());
        r.json()["id"].as_u64().expect("game id")
    }

    /// Triggers the graceful shutdown and waits until `run_until_stopped` returns.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        let run = self.run.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("shutdown within 30 s")
            .expect("the run task did not panic")
            .expect("run_until_stopped succeeded");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A test that failed before `stop`: stop serving at least.
        if self.run.is_some() {
            self.shutdown.trigger();
        }
    }
}
