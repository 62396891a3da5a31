//! Shared set-up for the server's tests: the whole [`Application`] on port 0 against a
//! fresh database on the test process's private MariaDB, and a tiny HTTP/1.1 client
//! (raw bytes in, status/headers/body out, so tests can send what a well-behaved
//! client library would refuse to: invalid UTF-8, oversized bodies, bad headers).

#![allow(dead_code)]

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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

/// A minimal HTTP/1.1 client: one connection per request, `Connection: close`.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The server.
    pub addr: SocketAddr,
}

/// A response, read in full.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// If it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the `{error, message}` shape and that nothing internal leaks; returns
    /// the `error` code.
    pub fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "error responses are JSON: {} {:?}",
            self.status,
            self.text()
        );
        let body = self.json();
        let obj = body.as_object().expect("an object");
        assert!(obj["message"].is_string(), "{body}");
        assert_no_leak(&self.text());
        obj["error"].as_str().expect("error code").to_owned()
    }
}

/// Asserts that a response body shows no SQL text and no credentials.
pub fn assert_no_leak(text: &str) {
    let lower = text.to_ascii_lowercase();
    for needle in [
        "select ",
        "insert ",
        "update ",
        " from ",
        "sqlstate",
        "app-secret",
        SECRET,
        "mysql://",
    ] {
        assert!(
            !lower.contains(&needle.to_ascii_lowercase()),
            "response leaks {needle:?}: {text}"
        );
    }
}

impl Client {
    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request("GET", path, &auth_headers(token), None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("serialize");
        self.post_raw(path, token, Some("application/json"), &bytes)
            .await
    }

    /// `POST path` with an empty body.
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Response {
        self.request("POST", path, &auth_headers(token), Some(b""))
            .await
    }

    /// `POST path` with raw bytes.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let mut headers = auth_headers(token);
        if let Some(ct) = content_type {
            headers.push(("Content-Type".to_owned(), ct.to_owned()));
        }
        self.request("POST", path, &headers, Some(body)).await
    }

    /// Any request. The body is written concurrently with reading the response, so a
    /// server that answers early (413) and closes is read correctly.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Response {
        let stream = TcpStream::connect(self.addr)
            .await
            .expect("connect to the app");
        let (mut rd, mut wr) = stream.into_split();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&out).await;
            // Keep the write half open until the response is read (no early FIN).
            wr
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(60), rd.read(&mut buf)).await {
                Err(_) => panic!("no response within 60 s to {method} {path}"),
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
                // A reset after an early answer: keep what was read.
                Ok(Err(e)) if !raw.is_empty() => {
                    let _ = e;
                    break;
                }
                Ok(Err(e)) => panic!("reading the response to {method} {path}: {e}"),
            }
        }
        writer.abort();
        parse(&raw).unwrap_or_else(|| {
            panic!(
                "malformed response to {method} {path}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }
}

/// `Authorization: Bearer <token>` when there is a token.
pub fn auth_headers(token: Option<&str>) -> Vec<(String, String)> {
    token
        .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
        .unwrap_or_default()
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().ok()?;
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
