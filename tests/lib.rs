//! Shared set-up for the cross-crate tests: a private MariaDB (never the machine's),
//! a database per test, and both pools on one budget.
//!
//! Each test binary (each test process, under nextest) starts its own `mariadbd` through
//! `mariadb-harness`; tests that need their own `max_connections` or restart the server
//! start a dedicated one.

pub mod endless;
pub mod reuse;
pub mod tight;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{Budget, DatabaseUrl};
use db_sync::SyncPool;
pub use mariadb_harness::{MIN_MAX_CONNECTIONS, Server, ServerOptions, oracle};

pub mod retention_world;

/// A fresh database on a private server, and the application account's URL for it.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The database name (unique per test).
    pub name: String,
    /// `mysql://app:…@127.0.0.1:PORT/name` (the non-SUPER account).
    pub url: DatabaseUrl,
}

impl TestDb {
    /// Creates a database named after `prefix` on `server`.
    ///
    /// # Panics
    ///
    /// If the server cannot create it.
    pub fn create(server: &Server, prefix: &str) -> TestDb {
        let name = server
            .create_database(prefix)
            .expect("create test database");
        let url = DatabaseUrl::parse(&server.app_url(&name)).expect("harness URL parses");
        TestDb { name, url }
    }

    /// Runs SQL as root in this database (schema set-up, admin queries).
    ///
    /// # Panics
    ///
    /// If the statement fails.
    pub fn admin(&self, server: &Server, sql: &str) -> String {
        server
            .sql(&format!("USE `{}`; {sql}", self.name))
            .unwrap_or_else(|e| panic!("admin SQL failed: {e}"))
    }
}

/// A budget with the default leak threshold.
pub fn budget(units: u32) -> Budget {
    Budget::new(units, Duration::from_secs(30))
}

/// An async pool for tests: a 10 s pool timeout (nothing in a passing test waits that
/// long), defaults otherwise. Call inside a tokio runtime.
pub fn async_pool(url: &DatabaseUrl, budget: &Budget) -> AsyncPool {
    AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .build()
}

/// A blocking pool for tests, set up like [`async_pool`].
pub fn sync_pool(url: &DatabaseUrl, budget: &Budget) -> SyncPool {
    SyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .build()
}

/// Polls `cond` every 5 ms until it holds or `within` passes; returns whether it held.
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Log lines written by `tracing` in this process, for tests that assert on what is
/// (not) logged. Installed once as the global subscriber.
pub fn captured_logs() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = LogCapture(Arc::new(Mutex::new(Vec::new())));
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test process");
        capture
    })
}

/// See [`captured_logs`].
#[derive(Clone, Debug)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs to stderr at `warn` (slow queries, leaks), for tests that do not capture.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_test_writer()
        .try_init();
}

/// A multi-thread runtime with two workers (the machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
