//! Every 100 ms: the database server's own counters (one root session over its unix
//! socket) and each live instance's budget (`/api/pool` on its admin listener), with
//! a progress line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use loadgen::Http;
use mariadb_harness::Server;
use r2d2_mysql::mysql::{self, prelude::Queryable};

use super::clock::Clock;

/// The sampling period.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The server's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub threads_connected: u64,
    pub max_used: u64,
    pub connections: u64,
    pub aborted_connects: u64,
    /// `Connection_errors_max_connections`: connects refused with ERROR 1040.
    pub refused_1040: u64,
    /// Sessions of the application's account (the process list).
    pub app_sessions: u64,
}

/// One instance's budget at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub label: String,
    /// Connections it may have now (in a fleet: its floor less the control connection,
    /// plus its leases).
    pub capacity: u64,
    pub in_use: u64,
    /// Callers waiting for a connection, both sides.
    pub waiting: u64,
}

/// One sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    pub status: Status,
    pub pools: Vec<Pool>,
}

/// What the main thread tells the sampler (and its progress line).
#[derive(Debug, Default)]
pub struct Shared {
    /// The live instances: label and admin address.
    pub instances: Mutex<Vec<(String, SocketAddr)>>,
    /// The progress line's prefix (run and phase).
    pub progress: Mutex<String>,
}

/// A running sampler.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

/// A root session on the server's unix socket.
///
/// # Errors
///
/// It cannot be opened.
pub fn root_session(server: &Server) -> Result<mysql::Conn, String> {
    let opts = mysql::OptsBuilder::new()
        .socket(Some(server.socket_path().to_string_lossy().into_owned()))
        .user(Some("root"));
    mysql::Conn::new(opts).map_err(|e| format!("a root session on the private server: {e}"))
}

/// The server's counters now.
///
/// # Errors
///
/// A statement failed.
pub fn status(conn: &mut mysql::Conn, app_user: &str) -> Result<Status, mysql::Error> {
    let rows: Vec<(String, u64)> = conn.query(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', \
         'Max_used_connections', 'Connections', 'Aborted_connects', \
         'Connection_errors_max_connections')",
    )?;
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(0, |(_, v)| *v)
    };
    let app_sessions: Option<u64> = conn.exec_first(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
        (app_user,),
    )?;
    Ok(Status {
        threads_connected: get("Threads_connected"),
        max_used: get("Max_used_connections"),
        connections: get("Connections"),
        aborted_connects: get("Aborted_connects"),
        refused_1040: get("Connection_errors_max_connections"),
        app_sessions: app_sessions.unwrap_or(0),
    })
}

/// An instance's budget, from its `/api/pool`; `None` without a JSON answer.
///
/// # Cancel safety
///
/// Not cancel safe: a call dropped before its answer leaves `http` in the middle of one;
/// drop `http` too.
pub async fn pool(http: &mut Http, label: &str) -> Option<Pool> {
    let reply = http.request("GET", "/api/pool", None, None).await.ok()?;
    let v = reply.json()?;
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    Some(Pool {
        label: label.to_owned(),
        capacity: n(&v["capacity"]),
        in_use: n(&v["in_use"]),
        waiting: n(&v["async"]["waiting"]) + n(&v["sync"]["waiting"]),
    })
}

impl Sampler {
    /// Starts sampling on `conn`, a root session of its own.
    pub fn start(
        mut conn: mysql::Conn,
        app_user: &str,
        clock: Clock,
        shared: Arc<Shared>,
    ) -> Sampler {
        let app_user = app_user.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the sampler's runtime");
                let mut clients: Vec<(String, Http)> = Vec::new();
                let mut samples = Vec::new();
                let mut next = clock.now();
                while !stop.load(Relaxed) {
                    let t = clock.now();
                    let status = status(&mut conn, &app_user).unwrap_or_default();
                    let live = shared
                        .instances
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    clients.retain(|(l, _)| live.iter().any(|(k, _)| k == l));
                    for (label, addr) in &live {
                        if !clients.iter().any(|(l, _)| l == label) {
                            clients.push((label.clone(), Http::new(*addr)));
                        }
                    }
                    let pools: Vec<Pool> = rt.block_on(async {
                        let mut pools = Vec::new();
                        for (label, http) in &mut clients {
                            if let Some(p) = pool(http, label).await {
                                pools.push(p);
                            }
                        }
                        pools
                    });
                    let prefix = shared
                        .progress
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let held: u64 = pools.iter().map(|p| p.in_use).sum();
                    eprint!(
                        "\r{prefix} {t:>5.1} s  in use {held:>2}  app sessions {:>2}  Max_used {:>2}  1040s {} ",
                        status.app_sessions, status.max_used, status.refused_1040
                    );
                    let _ = std::io::stderr().flush();
                    samples.push(Sample { t, status, pools });
                    next += PERIOD.as_secs_f64();
                    let wait = next - clock.now();
                    if wait > 0.0 {
                        std::thread::sleep(Duration::from_secs_f64(wait));
                    }
                }
                eprintln!();
                samples
            })
        };
        Sampler { stop, thread }
    }

    /// Stops and returns every sample.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
