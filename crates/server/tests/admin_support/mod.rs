//! Helpers for `tests/admin/`: a private database with both pools and the admin
//! router on an ephemeral port, a tiny HTTP/1.1 client, headless Chromium, a strict
//! parser of the Prometheus text format, and a real Prometheus with the shipped rules.

#![allow(dead_code)]

pub mod browser;
pub mod http;
pub mod load;
pub mod metrics;
pub mod prometheus;

use std::net::SocketAddr;
use std::time::Duration;

use db_async::AsyncPool;
use db_budget::{Budget, DatabaseUrl};
use db_sync::SyncPool;
use mariadb_harness::Server;
use server::admin::{AdminState, router};

/// The admin router served on `127.0.0.1:<ephemeral>` over a fresh database.
pub struct Admin {
    pub addr: SocketAddr,
    pub budget: Budget,
    pub async_pool: AsyncPool,
    pub sync_pool: SyncPool,
    /// The database this admin's pools use.
    pub db: String,
    /// The server's view, when started with [`start_with_view`].
    pub view: Option<db_view::ServerView>,
    serve: tokio::task::JoinHandle<()>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.serve.abort();
        self.sync_pool.close();
    }
}

/// Starts a database, a budget of `units`, both pools and the admin router.
pub async fn start(prefix: &str, units: u32) -> Admin {
    start_with_bulkheads(prefix, units, "").await
}

/// [`start`], with the budget divided by `bulkheads` (`DB_BULKHEADS` grammar; empty:
/// none). Module handles come from the pools' `for_module`.
pub async fn start_with_bulkheads(prefix: &str, units: u32, bulkheads: &str) -> Admin {
    start_full(prefix, units, bulkheads, None).await
}

/// [`start`], with the database server's view read every `interval` (its reader takes
/// one of the `units`).
pub async fn start_with_view(prefix: &str, units: u32, interval: Duration) -> Admin {
    start_full(prefix, units, "", Some(interval)).await
}

/// [`start`], reporting checkouts held longer than `leak_threshold` as suspected leaks
/// (`DB_LEAK_THRESHOLD`; the others use 30 s, its default).
pub async fn start_with_leak_threshold(
    prefix: &str,
    units: u32,
    leak_threshold: Duration,
) -> Admin {
    start_with(prefix, units, "", None, leak_threshold).await
}

/// A database, a budget of `units` divided by `bulkheads` (may be empty), both pools,
/// the server's view every `view` when given, and the admin router.
pub async fn start_full(
    prefix: &str,
    units: u32,
    bulkheads: &str,
    view: Option<Duration>,
) -> Admin {
    start_with(prefix, units, bulkheads, view, LEAK_THRESHOLD).await
}

const LEAK_THRESHOLD: Duration = Duration::from_secs(30);

async fn start_with(
    prefix: &str,
    units: u32,
    bulkheads: &str,
    view: Option<Duration>,
    leak_threshold: Duration,
) -> Admin {
    let server = Server::shared();
    let db = server.create_database(prefix).expect("create database");
    let url = DatabaseUrl::parse(&server.app_url(&db)).expect("database url");
    let budget = Budget::new(units, leak_threshold);
    let specs = db_budget::parse_bulkheads(bulkheads, units).expect("bulkheads");
    if !specs.is_empty() {
        budget.set_bulkheads(&specs);
    }
    let async_pool = AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .build();
    let sync_pool = SyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .build();
    let view = view.map(|interval| {
        let settings =
            db_view::ViewSettings::new(interval, db_view::Explained::Static { others: 0 });
        db_view::ServerView::start(&budget, &url, settings).expect("start the view")
    });
    let app = router(AdminState {
        budget: budget.clone(),
        async_pool: async_pool.clone(),
        sync_pool: sync_pool.clone(),
        view: view.as_ref().map(db_view::ServerView::handle),
        fleet: None,
        controls: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the admin listener");
    let addr = listener.local_addr().expect("local addr");
    let serve = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("admin server");
    });
    Admin {
        addr,
        budget,
        async_pool,
        sync_pool,
        db,
        view,
        serve,
    }
}

impl Admin {
    /// `GET path` on the admin listener.
    pub async fn get(&self, path: &str) -> http::Response {
        http::get(self.addr, path).await
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
