//! The admin router with its control routes over a fresh database, a small HTTP client
//! that sends the token, and what the server itself says about its connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use db_async::{Args, AsyncConn, AsyncPool};
use db_budget::{Budget, DatabaseUrl};
use db_sync::{SyncConn, SyncPool};
use mariadb_harness::Server;
use serde_json::Value;
use server::admin::{AdminState, Controls, router};
use server::secret::AdminToken;

/// The `ADMIN_TOKEN` of these tests.
pub const TOKEN: &str = "controls-test-token-0123456789";

/// How the router under test is set up.
pub struct Setup {
    /// The most units the budget may hold (what the startup check would accept).
    pub limit: u32,
    /// The capacity it starts with.
    pub capacity: u32,
    /// `ADMIN_TOKEN` (`None`: the controls are off).
    pub token: Option<&'static str>,
    /// A fleet member (`DB_FLEET_BUDGET`).
    pub in_fleet: bool,
    /// `DB_BULKHEADS` (empty: none).
    pub bulkheads: &'static str,
    /// `DB_POOL_TIMEOUT` of both pools.
    pub pool_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            limit: 6,
            capacity: 4,
            token: Some(TOKEN),
            in_fleet: false,
            bulkheads: "",
            pool_timeout: Duration::from_secs(20),
        }
    }
}

/// The admin router served on `127.0.0.1:<ephemeral>` with its controls.
pub struct Ctl {
    pub addr: SocketAddr,
    pub budget: Budget,
    pub async_pool: AsyncPool,
    pub sync_pool: SyncPool,
    /// The test's database: the server's process list is filtered by it.
    pub db: String,
    serve: tokio::task::JoinHandle<()>,
}

impl Drop for Ctl {
    fn drop(&mut self) {
        self.serve.abort();
        self.budget.resume();
        self.sync_pool.close();
    }
}

/// Starts a database, the budget and both pools as `setup` says, and the admin router.
pub async fn start(prefix: &str, setup: Setup) -> Ctl {
    let server = Server::shared();
    let db = server.create_database(prefix).expect("create database");
    let url = DatabaseUrl::parse(&server.app_url(&db)).expect("database url");
    let budget = Budget::new(setup.limit, Duration::from_secs(30));
    let specs = db_budget::parse_bulkheads(setup.bulkheads, setup.limit).expect("bulkheads");
    if specs.is_empty() {
        budget
            .set_capacity(setup.capacity)
            .expect("a capacity within the limit");
    } else {
        budget.set_bulkheads(&specs);
    }
    let async_pool = AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(setup.pool_timeout)
        .build();
    let sync_pool = SyncPool::builder(url, budget.clone())
        .pool_timeout(setup.pool_timeout)
        .build();
    let token = setup
        .token
        .map(|t| AdminToken::new(t).expect("a valid admin token"));
    let app = router(AdminState {
        budget: budget.clone(),
        async_pool: async_pool.clone(),
        sync_pool: sync_pool.clone(),
        view: None,
        fleet: None,
        controls: Controls::new(token, setup.in_fleet),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the admin listener");
    let addr = listener.local_addr().expect("local addr");
    let serve = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("admin server");
    });
    Ctl {
        addr,
        budget,
        async_pool,
        sync_pool,
        db,
        serve,
    }
}

/// One response: status, headers (lower-cased names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Ctl {
    /// `POST path` with `body`, sending `Authorization: {authorization}` when given.
    pub async fn post_as(&self, path: &str, authorization: Option<&str>, body: &str) -> Reply {
        let head = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        self.send("POST", path, &head, body).await
    }

    /// `POST path` with `body` and the right token.
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.post_as(path, Some(&format!("Bearer {TOKEN}")), body)
            .await
    }

    /// `GET path` (no token).
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, "", "").await
    }

    /// The `controls` object of `/api/pool`.
    pub async fn controls(&self) -> Value {
        let r = self.get("/api/pool").await;
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["controls"].clone()
    }

    async fn send(&self, method: &str, path: &str, head: &str, body: &str) -> Reply {
        let (addr, method, path, head, body) = (
            self.addr,
            method.to_owned(),
            path.to_owned(),
            head.to_owned(),
            body.to_owned(),
        );
        tokio::task::spawn_blocking(move || request(addr, &method, &path, &head, &body))
            .await
            .expect("http client thread")
    }

    /// `CONNECTION_ID()`s of this test's database in the server's process list: the
    /// physical connections of both pools as the server sees them.
    pub fn server_connections(&self) -> Vec<u64> {
        let out = Server::shared()
            .sql(&format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{}' ORDER BY ID",
                self.db
            ))
            .expect("read the process list");
        out.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, head: &str, body: &str) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `SELECT CONNECTION_ID()` on an async checkout.
pub async fn async_id(conn: &mut AsyncConn) -> u64 {
    let (id,): (u64,) = conn
        .fetch_one("SELECT CONNECTION_ID()", Args::default())
        .await
        .expect("CONNECTION_ID() on the async connection");
    id
}

/// `SELECT CONNECTION_ID()` on a blocking checkout.
pub fn sync_id(conn: &mut SyncConn) -> u64 {
    let (id,): (u64,) = conn
        .fetch_one("SELECT CONNECTION_ID()", ())
        .expect("CONNECTION_ID() on the blocking connection");
    id
}

/// Polls `done` every 10 ms until it holds; panics after 10 s naming `what`.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
