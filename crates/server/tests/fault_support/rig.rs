//! The rig of a fault test: a private MariaDB with the whole application on it, the
//! settings the fault tests run with, and the end-of-test check that no unit is stuck.

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_budget::Snapshot;
use loadgen::{Load, LoadConfig};
use mariadb_harness::{Server, ServerOptions};

use crate::common::{AppOptions, TestApp, spawn_app_on};

/// `DB_POOL_TIMEOUT` of the fault tests.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(1);
/// `DB_CONNECT_TIMEOUT` of the fault tests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Allowance for scheduling on a loaded 2-core machine (200 clients, the app and
/// mariadbd share it) on top of the documented waits.
pub const MARGIN: Duration = Duration::from_secs(1);
/// `MAX_CONNECTIONS` of the fault tests.
pub const BUDGET: u32 = 20;

/// The app settings of a fault test: budget 20, pool and connect timeouts of 1 s.
pub fn app_options() -> AppOptions {
    AppOptions {
        max_connections: BUDGET,
        pool_timeout: "1s",
        env: vec![("DB_CONNECT_TIMEOUT", "1s".to_owned())],
    }
}

/// Logs of the app to the test's output: errors by default, more with
/// `FAULT_LOG=warn` (or any `tracing` filter).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("FAULT_LOG"))
        .with_test_writer()
        .try_init();
}

/// A private server and an application on it: the test may stop, pause or reconfigure
/// the server without disturbing any other test.
pub struct Rig {
    /// The private server.
    pub server: Arc<Server>,
    /// The application.
    pub app: TestApp,
}

impl Rig {
    /// Starts a private server with `server` options, and the application on it.
    pub async fn start(server: ServerOptions, app: AppOptions) -> Rig {
        init_logs();
        let server = tokio::task::spawn_blocking(move || Server::start(server))
            .await
            .expect("starting the server")
            .expect("a private MariaDB server");
        let server = Arc::new(server);
        let app = spawn_app_on(&server, app).await;
        Rig { server, app }
    }

    /// Runs a blocking administrative action on the server (stop, pause, SQL as root)
    /// off the runtime's threads.
    pub async fn admin<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Server) -> T + Send + 'static,
    ) -> T {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || f(&server))
            .await
            .expect("admin action")
    }

    /// Starts the load (200 clients, 50 of them on WebSockets) against the app.
    pub fn load(&self) -> Load {
        Load::start(self.app.api_addr, LoadConfig::default())
    }

    /// Connections of the application's account the server has open.
    pub async fn server_connections(&self) -> u64 {
        self.admin(|s| {
            s.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        })
        .await
        .expect("count connections")
        .trim()
        .parse()
        .expect("a number")
    }

    /// Once the load has stopped: no budget unit is stuck (every unit in use is an idle
    /// connection of one of the pools, nothing is checked out or waited for), the server
    /// sees no more connections than that, and after a graceful shutdown every unit is
    /// back and the server sees none of the app's connections.
    pub async fn assert_no_stuck_units_and_stop(self) {
        let budget = self.app.budget.clone();
        let settled = |s: &Snapshot| {
            s.async_side.active == 0
                && s.sync_side.active == 0
                && s.async_side.waiting == 0
                && s.sync_side.waiting == 0
                && s.in_use == s.async_side.idle + s.sync_side.idle
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut snap = budget.snapshot();
        while !settled(&snap) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            snap = budget.snapshot();
        }
        assert!(
            settled(&snap),
            "units stuck with no load: {snap} (held: async {}, sync {})",
            snap.async_side.held,
            snap.sync_side.held
        );
        // The server may count a closed socket for a moment longer (ARCHITECTURE.md,
        // "Server-side lag").
        let mut seen = self.server_connections().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen > u64::from(budget.in_use()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen = self.server_connections().await;
        }
        assert!(
            seen <= u64::from(budget.in_use()),
            "the server sees {seen} connections of the app, the budget {}",
            budget.in_use()
        );
        let Rig { server, app } = self;
        app.stop().await;
        assert_eq!(budget.in_use(), 0, "units in use after shutdown");
        let mut seen = 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen > 0 && Instant::now() < deadline {
            seen = tokio::task::spawn_blocking({
                let server = server.clone();
                move || {
                    server.sql(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'",
                    )
                }
            })
            .await
            .unwrap()
            .expect("count connections")
            .trim()
            .parse()
            .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, 0, "the server still sees the app's connections");
    }
}
