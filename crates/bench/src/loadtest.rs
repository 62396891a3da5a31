//! `cargo xtask loadtest`: the original outage as a reproducible demo.
//!
//! Against a private server with MySQL's default `max_connections=151`, the same load runs
//! twice: first the legacy setup (a connect-per-call `get_database_connection()` that
//! leaks its connection on an error path, beside an independent 100-connection async
//! pool with no useful acquire timeout), then this project's budgeted pools with one
//! budget of 20. `Threads_connected` is sampled every 100 ms; ERROR 1040 is counted.
//! Writes LOADTEST.md and docs/loadtest.svg.
//!
//! sync-usage: infrastructure (load-tests db-sync itself; goes when db-sync goes, not ported module by module).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, DbError};
use db_sync::SyncPool;
use mariadb_harness::{Server, ServerOptions};
use r2d2_mysql::mysql::{self, prelude::Queryable};
use sqlx::mysql::MySqlPoolOptions;

use crate::svg::{Scale, Series, chart};
use crate::{ROWS, SQL, sysbench, workspace_root};

const THREADS: usize = 64;
const TASKS: usize = 128;
/// One legacy call in this many takes the error path (and, in the legacy setup, leaks).
const ERROR_EVERY: u64 = 10;

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    too_many: AtomicU64,
    other_errors: AtomicU64,
}

impl Counters {
    fn count_error(&self, text: &str) {
        if text.contains("1040") || text.contains("Too many connections") {
            self.too_many.fetch_add(1, Relaxed);
        } else if self.other_errors.fetch_add(1, Relaxed) < 3 {
            eprintln!("\n  error (not 1040): {text}");
        }
    }
}

struct RunResult {
    name: &'static str,
    samples: Vec<(f64, u64)>,
    ok: u64,
    too_many: u64,
    other_errors: u64,
    leaked: usize,
}

pub fn main(secs: u64) -> Result<(), String> {
    let server = Server::start(ServerOptions {
        max_connections: 151,
        ..Default::default()
    })
    .map_err(|e| format!("cannot start a private MariaDB: {e}"))?;
    let db = server
        .create_database("loadtest")
        .map_err(|e| e.to_string())?;
    sysbench::ensure_installed()?;
    sysbench::prepare(&server, &db)?;
    let url = DatabaseUrl::parse(&server.app_url(&db)).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let length = Duration::from_secs(secs);
    let legacy = run(
        &server,
        "legacy: connect per call + leaks, beside a 100-connection pool",
        length,
        |c, stop| legacy_load(&rt, &url, c, stop),
    );
    wait_for_server_to_drain(&server);
    let budgeted = run(
        &server,
        "budgeted: one budget of 20 for both sides",
        length,
        |c, stop| budgeted_load(&rt, &url, c, stop),
    );
    let report = render(&[&legacy, &budgeted], secs);
    println!("{report}");
    let root = workspace_root();
    std::fs::create_dir_all(root.join("docs")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("docs/loadtest.svg"), plot(&[&legacy, &budgeted]))
        .map_err(|e| e.to_string())?;
    std::fs::write(root.join("LOADTEST.md"), report).map_err(|e| e.to_string())?;
    eprintln!("wrote LOADTEST.md and docs/loadtest.svg");
    Ok(())
}

/// Runs `load` for `length` while sampling `Threads_connected`, with a progress bar.
fn run(
    server: &Server,
    name: &'static str,
    length: Duration,
    load: impl FnOnce(Arc<Counters>, Arc<AtomicBool>) -> usize,
) -> RunResult {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let sampler = {
        let (stop, samples, counters) = (stop.clone(), samples.clone(), counters.clone());
        // Connected before the load starts: once the legacy load fills the server, even
        // root's extra slot may be taken.
        let opts = mysql::OptsBuilder::new()
            .socket(Some(server.socket_path().to_string_lossy().into_owned()))
            .user(Some("root"));
        let mut admin = mysql::Conn::new(opts).expect("admin connection to the private server");
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let t = started.elapsed().as_secs_f64();
                let n: Option<(String, u64)> = admin
                    .query_first("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
                    .ok()
                    .flatten();
                let n = n.map_or(0, |(_, v)| v);
                samples.lock().unwrap().push((t, n));
                let done = (t / length.as_secs_f64()).min(1.0);
                let bar = (done * 30.0) as usize;
                eprint!(
                    "\r[{}{}] {:>4.1}s  Threads_connected {:>3}  ok {:>7}  ERROR 1040 {:>6}  ",
                    "#".repeat(bar),
                    ".".repeat(30 - bar),
                    t,
                    n,
                    counters.ok.load(Relaxed),
                    counters.too_many.load(Relaxed)
                );
                let _ = std::io::stderr().flush();
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!();
        })
    };
    eprintln!("{name}");
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(length);
            stop.store(true, Relaxed);
        })
    };
    let leaked = load(counters.clone(), stop.clone());
    stopper.join().unwrap();
    stop.store(true, Relaxed);
    sampler.join().unwrap();
    let samples = samples.lock().unwrap().clone();
    RunResult {
        name,
        samples,
        ok: counters.ok.load(Relaxed),
        too_many: counters.too_many.load(Relaxed),
        other_errors: counters.other_errors.load(Relaxed),
        leaked,
    }
}

fn wait_for_server_to_drain(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && server
            .global_status("Threads_connected")
            .is_ok_and(|n| n > 1)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn legacy_load(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> usize {
    let opts = mysql::Opts::from(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(url.host()))
            .tcp_port(url.port())
            .user(Some(url.user()))
            .pass(url.password())
            .db_name(Some(url.database()))
            .prefer_socket(false),
    );
    // The async side of the old server: its own pool of 100, sized on its own.
    let _enter = rt.enter();
    let pool = MySqlPoolOptions::new()
        .max_connections(100)
        .acquire_timeout(Duration::from_secs(60))
        .connect_lazy_with(
            sqlx::mysql::MySqlConnectOptions::new()
                .host(url.host())
                .port(url.port())
                .username(url.user())
                .password(url.password().unwrap_or_default())
                .database(url.database()),
        );
    let leaked = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, c, stop) = (pool.clone(), c.clone(), stop.clone());
            rt.spawn(async move {
                let mut id = t as i64;
                while !stop.load(Relaxed) {
                    id = id % ROWS as i64 + 1;
                    match sqlx::query_as::<_, (String,)>(SQL)
                        .bind(id)
                        .fetch_one(&pool)
                        .await
                    {
                        Ok(_) => c.ok.fetch_add(1, Relaxed),
                        Err(e) => {
                            c.count_error(&e.to_string());
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            0
                        }
                    };
                }
            })
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (opts, c, stop, leaked) = (opts.clone(), c.clone(), stop.clone(), leaked.clone());
            s.spawn(move || {
                let mut n = t as u64;
                while !stop.load(Relaxed) {
                    n += 1;
                    // get_database_connection(): a brand-new connection every call.
                    let mut conn = match mysql::Conn::new(opts.clone()) {
                        Ok(conn) => conn,
                        Err(e) => {
                            c.count_error(&e.to_string());
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let sql = if n.is_multiple_of(ERROR_EVERY) {
                        "SELECT c FROM no_such_table WHERE id = ?"
                    } else {
                        SQL
                    };
                    match conn.exec_first::<String, _, _>(sql, (n % ROWS + 1,)) {
                        Ok(_) => {
                            c.ok.fetch_add(1, Relaxed);
                            drop(conn);
                        }
                        // No `finally`: the connection is never closed (it stays open until
                        // the server's wait_timeout; here, until the run ends).
                        Err(_) => leaked.lock().unwrap().push(conn),
                    }
                }
            });
        }
    });
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
        pool.close().await;
    });
    leaked.lock().unwrap().len()
}

fn budgeted_load(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> usize {
    let _enter = rt.enter();
    let budget = Budget::new(20, Duration::from_secs(30));
    let apool = AsyncPool::builder(url.clone(), budget.clone()).build();
    let spool = SyncPool::builder(url.clone(), budget).build();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, c, stop) = (apool.clone(), c.clone(), stop.clone());
            rt.spawn(async move {
                let mut id = t as i64;
                while !stop.load(Relaxed) {
                    id = id % ROWS as i64 + 1;
                    let r: Result<(String,), DbError> = async {
                        let mut conn = pool.acquire().await?;
                        conn.fetch_one(SQL, args![id]).await
                    }
                    .await;
                    match r {
                        Ok(_) => c.ok.fetch_add(1, Relaxed),
                        Err(e) => {
                            c.count_error(&format!("{e} {e:?}"));
                            0
                        }
                    };
                }
            })
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, c, stop) = (spool.clone(), c.clone(), stop.clone());
            s.spawn(move || {
                let mut n = t as u64;
                while !stop.load(Relaxed) {
                    n += 1;
                    let sql = if n.is_multiple_of(ERROR_EVERY) {
                        "SELECT c FROM no_such_table WHERE id = ?"
                    } else {
                        SQL
                    };
                    // The guard goes back to the pool on every path, `?` included.
                    let r = pool
                        .get()
                        .and_then(|mut conn| conn.fetch_one::<String>(sql, (n % ROWS + 1,)));
                    match r {
                        Ok(_) => c.ok.fetch_add(1, Relaxed),
                        Err(e) if e.code() == Some(1146) => 0, // the deliberate error path
                        Err(e) => {
                            c.count_error(&format!("{e} {e:?}"));
                            0
                        }
                    };
                }
            });
        }
    });
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
        apool.close().await;
    });
    spool.close();
    0
}

fn peak(r: &RunResult) -> u64 {
    r.samples.iter().map(|s| s.1).max().unwrap_or(0)
}

fn render(runs: &[&RunResult], secs: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Load test: the ERROR 1040 outage, before and after\n");
    let _ = writeln!(
        s,
        "Command: `cargo xtask loadtest` ({secs} s per run; `--secs N` to change). A private MariaDB with MySQL's default \
         `max_connections=151`; the same load in both runs: {THREADS} blocking threads calling the database in a loop \
         (one call in {ERROR_EVERY} takes an error path) and {TASKS} async tasks running point selects. \
         `Threads_connected` sampled every 100 ms (it includes the sampler's own connection).\n"
    );
    let _ = writeln!(s, "![Threads_connected over time](docs/loadtest.svg)\n");
    let _ = writeln!(
        s,
        "| run | peak Threads_connected | ERROR 1040 | other errors | successful calls | calls/s | connections leaked |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} | {} |",
            r.name,
            peak(r),
            r.too_many,
            r.other_errors,
            r.ok,
            r.ok as f64 / secs as f64,
            r.leaked
        );
    }
    let _ = writeln!(
        s,
        "\nThe legacy setup asks for 100 (async pool) + one connection per blocking call + every leaked one: it climbs \
         to the server's limit and callers get ERROR 1040. The budgeted pools never hold more than 20 between them, \
         whatever the load, and a failing call returns its connection.\n"
    );
    s
}

fn plot(runs: &[&RunResult]) -> String {
    let colours = ["#d62728", "#2ca02c"];
    let series: Vec<Series<'_>> = runs
        .iter()
        .zip(colours)
        .map(|(r, colour)| Series {
            name: r.name,
            colour,
            points: r.samples.iter().map(|(t, n)| (*t, *n as f64)).collect(),
        })
        .collect();
    chart(
        "Threads_connected on a server with max_connections=151",
        "seconds",
        "connections",
        &series,
        Scale::Linear,
    )
}
