//! The experiments. Each configuration runs `reps` times, interleaved with the others
//! (so drift on a noisy machine hits every variant alike); the median run is reported.
//!
//! sync-usage: infrastructure (benchmarks db-sync itself; goes when db-sync goes, not ported module by module).

use std::sync::Arc;
use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, HistogramSnapshot};
use db_sync::SyncPool;
use mariadb_harness::oracle;
use r2d2_mysql::MySqlConnectionManager;
use r2d2_mysql::mysql::{self, OptsBuilder, prelude::Queryable};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Connection, MySqlConnection};

use crate::measure::{self, Stats, Window, settle};
use crate::report::{Cell, Machine, Report, ScalePoint};
use crate::{BUDGET, Options, ROWS, SQL, start_server, sysbench};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];
pub const SCALE: [usize; 8] = [1, 10, 50, 100, 250, 500, 1000, 2000];

pub fn all(opts: &Options) -> Result<Report, String> {
    let (server, db) = start_server()?;
    let url = DatabaseUrl::parse(&server.root_url(&db)).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut report = Report {
        machine: Machine::read(),
        timing: opts.timing,
        reps: opts.reps,
        ..Default::default()
    };
    let run = |section: &str| opts.only.as_deref().is_none_or(|only| only == section);
    if run("async") {
        eprintln!("1/7 async: db-async vs raw sqlx vs connect-per-call");
        report.async_cells = async_point_select(&rt, &url, opts);
    }
    if run("sync") {
        eprintln!("2/7 blocking: db-sync vs raw r2d2 vs connect-per-call");
        report.sync_cells = sync_point_select(&rt, &url, opts);
    }
    if run("mixed") {
        eprintln!("3/7 mixed: blocking threads and async tasks on one budget");
        report.mixed = mixed(&rt, &url, opts);
    }
    if run("sysbench") {
        eprintln!("4/7 sysbench oltp_point_select, 20 threads");
        report.sysbench_qps = (0..opts.reps)
            .map(|_| {
                sysbench::point_select(
                    &server,
                    &db,
                    BUDGET as usize,
                    opts.timing.measure.as_secs().max(1),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        report.sysbench_version = sysbench::version();
    }
    if run("scale") {
        eprintln!("5/7 scale curve: 1 to 2000 tasks over a budget of {BUDGET}");
        report.scale = scale(&rt, &url, opts);
    }
    if run("e2e") {
        eprintln!("6/7 the server end to end: GET /api/players/{{id}}/quests, 256 connections");
        report.e2e = (0..opts.reps)
            .map(|_| crate::e2e::run(&rt, &server, opts.timing))
            .collect::<Result<Vec<_>, _>>()?;
    }
    if run("timeout") {
        eprintln!(
            "7/7 statement timeout on vs off: the point select, both pools, 1 and 16 callers"
        );
        report.timeout = crate::timeout::run(&rt, &url, server.pid(), opts)?;
        eprintln!("7/7 statement timeout on vs off: instructions per statement, under callgrind");
        report.timeout.instructions = Some(crate::instructions::run()?);
    }
    drop(server);
    Ok(report)
}

fn sqlx_options(url: &DatabaseUrl) -> MySqlConnectOptions {
    let mut o = MySqlConnectOptions::new()
        .host(url.host())
        .port(url.port())
        .username(url.user())
        .database(url.database());
    if let Some(p) = url.password() {
        o = o.password(p);
    }
    o
}

pub(crate) fn mysql_options(url: &DatabaseUrl) -> OptsBuilder {
    OptsBuilder::new()
        .ip_or_hostname(Some(url.host()))
        .tcp_port(url.port())
        .user(Some(url.user()))
        .pass(url.password())
        .db_name(Some(url.database()))
        .prefer_socket(false)
}

fn record(cells: &mut Vec<Cell>, variant: &'static str, conc: usize, s: Stats, peak: Option<i64>) {
    match cells
        .iter_mut()
        .find(|c| c.variant == variant && c.conc == conc)
    {
        Some(c) => {
            c.runs.push(s);
            c.peak = c.peak.max(peak);
        }
        None => cells.push(Cell {
            variant,
            conc,
            runs: vec![s],
            peak,
        }),
    }
}

/// Runs one measurement with nothing else connected and the oracle's peak reset, so the
/// peak belongs to the pool under test alone (each measurement builds and closes its own).
fn with_peak(f: impl FnOnce() -> Stats) -> (Stats, Option<i64>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while oracle::current() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    settle();
    oracle::reset_max();
    let s = f();
    (s, Some(oracle::max()))
}

fn budget() -> Budget {
    Budget::new(BUDGET, Duration::from_secs(30))
}

/// One point select through a checked-out db-async connection.
pub async fn ours_select(pool: AsyncPool, id: i64) -> Result<(), db_budget::DbError> {
    let mut c = pool.acquire().await?;
    let (_c,): (String,) = c.fetch_one(SQL, args![id]).await?;
    Ok(())
}

fn async_point_select(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    opts: &Options,
) -> Vec<Cell> {
    let _enter = rt.enter();
    let connect_opts = Arc::new(sqlx_options(url));
    let t = opts.timing;
    let mut cells = Vec::new();
    for _ in 0..opts.reps {
        for conc in CONCURRENCY {
            let (s, p) = with_peak(|| {
                let pool = AsyncPool::builder(url.clone(), budget()).build();
                let p = pool.clone();
                let s = measure::tasks(rt, conc, ROWS, t, move |id| ours_select(p.clone(), id));
                rt.block_on(pool.close());
                s
            });
            record(&mut cells, "db-async (budget 20)", conc, s, p);
            for (name, test_before_acquire) in
                [("raw sqlx, defaults", true), ("raw sqlx, tuned", false)]
            {
                let (s, p) = with_peak(|| {
                    let pool = MySqlPoolOptions::new()
                        .max_connections(BUDGET)
                        .test_before_acquire(test_before_acquire)
                        .connect_lazy_with(sqlx_options(url));
                    let p = pool.clone();
                    let s = measure::tasks(rt, conc, ROWS, t, move |id| {
                        let pool = p.clone();
                        async move {
                            sqlx::query_as::<_, (String,)>(SQL)
                                .bind(id)
                                .fetch_one(&pool)
                                .await
                                .map(drop)
                        }
                    });
                    rt.block_on(pool.close());
                    s
                });
                record(&mut cells, name, conc, s, p);
            }
            let o = connect_opts.clone();
            let (s, p) = with_peak(|| {
                measure::tasks(rt, conc, ROWS, t, move |id| {
                    let o = o.clone();
                    async move {
                        let mut conn = MySqlConnection::connect_with(&o).await?;
                        let _: (String,) =
                            sqlx::query_as(SQL).bind(id).fetch_one(&mut conn).await?;
                        conn.close().await
                    }
                })
            });
            record(&mut cells, "connect-per-call (sqlx)", conc, s, p);
        }
    }
    cells
}

/// r2d2 with r2d2_mysql's manager but no pings: its fastest honest setting.
#[derive(Debug)]
struct NoPing(MySqlConnectionManager);

impl r2d2::ManageConnection for NoPing {
    type Connection = mysql::Conn;
    type Error = mysql::Error;
    fn connect(&self) -> Result<mysql::Conn, mysql::Error> {
        self.0.connect()
    }
    fn is_valid(&self, conn: &mut mysql::Conn) -> Result<(), mysql::Error> {
        self.0.is_valid(conn)
    }
    fn has_broken(&self, _: &mut mysql::Conn) -> bool {
        false
    }
}

fn r2d2_select<M>(pool: &r2d2::Pool<M>, id: i64) -> Result<(), BoxError>
where
    M: r2d2::ManageConnection<Connection = mysql::Conn>,
{
    pool.get()?.exec_first::<String, _, _>(SQL, (id,))?;
    Ok(())
}

fn sync_point_select(rt: &tokio::runtime::Runtime, url: &DatabaseUrl, opts: &Options) -> Vec<Cell> {
    let opts_legacy = mysql::Opts::from(mysql_options(url));
    let t = opts.timing;
    let mut cells = Vec::new();
    for _ in 0..opts.reps {
        for conc in CONCURRENCY {
            let (s, p) = with_peak(|| {
                let pool = SyncPool::builder(url.clone(), budget()).build();
                let p = pool.clone();
                let s = measure::threads(rt, conc, ROWS, t, move |id| {
                    p.get()?.fetch_one::<String>(SQL, (id,)).map(drop)
                });
                pool.close();
                s
            });
            record(&mut cells, "db-sync (budget 20)", conc, s, p);
            let (s, p) = with_peak(|| {
                let pool = r2d2::Pool::builder()
                    .max_size(BUDGET)
                    .build_unchecked(MySqlConnectionManager::new(mysql_options(url)));
                measure::threads(rt, conc, ROWS, t, move |id| r2d2_select(&pool, id))
            });
            record(&mut cells, "raw r2d2, defaults", conc, s, p);
            let (s, p) = with_peak(|| {
                let pool = r2d2::Pool::builder()
                    .max_size(BUDGET)
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .build_unchecked(NoPing(MySqlConnectionManager::new(mysql_options(url))));
                measure::threads(rt, conc, ROWS, t, move |id| r2d2_select(&pool, id))
            });
            record(&mut cells, "raw r2d2, tuned", conc, s, p);
            let o = opts_legacy.clone();
            let (s, p) = with_peak(|| {
                measure::threads(rt, conc, ROWS, t, move |id| -> Result<(), BoxError> {
                    let mut conn = mysql::Conn::new(o.clone())?;
                    conn.exec_first::<String, _, _>(SQL, (id,))?;
                    Ok(())
                })
            });
            record(&mut cells, "connect-per-call (mysql)", conc, s, p);
        }
    }
    cells
}

/// Half blocking threads, half async tasks, on one budget; against all-async.
fn mixed(rt: &tokio::runtime::Runtime, url: &DatabaseUrl, opts: &Options) -> Vec<Cell> {
    let _enter = rt.enter();
    let t = opts.timing;
    let mut cells = Vec::new();
    for _ in 0..opts.reps {
        for total in [16, 64, 256] {
            let (st, p) = with_peak(|| {
                let budget = budget();
                let apool = AsyncPool::builder(url.clone(), budget.clone()).build();
                let spool = SyncPool::builder(url.clone(), budget).build();
                let (a, s) = (apool.clone(), spool.clone());
                let w = Window::new();
                let tasks = w.tasks(rt, total / 2, ROWS, move |id| ours_select(a.clone(), id));
                let threads = w.threads(total / 2, ROWS, move |id| {
                    s.get()?.fetch_one::<String>(SQL, (id,)).map(drop)
                });
                let st = w.run(rt, t, tasks, threads);
                rt.block_on(apool.close());
                spool.close();
                st
            });
            record(&mut cells, "mixed: half threads, half tasks", total, st, p);
            let (st, p) = with_peak(|| {
                let pool = AsyncPool::builder(url.clone(), budget()).build();
                let a = pool.clone();
                let st = measure::tasks(rt, total, ROWS, t, move |id| ours_select(a.clone(), id));
                rt.block_on(pool.close());
                st
            });
            record(&mut cells, "all async", total, st, p);
        }
    }
    cells
}

fn delta(after: &HistogramSnapshot, before: &HistogramSnapshot) -> HistogramSnapshot {
    HistogramSnapshot {
        counts: after
            .counts
            .iter()
            .zip(&before.counts)
            .map(|(a, b)| a - b)
            .collect(),
        sum_us: after.sum_us - before.sum_us,
    }
}

fn scale(rt: &tokio::runtime::Runtime, url: &DatabaseUrl, opts: &Options) -> Vec<ScalePoint> {
    let _enter = rt.enter();
    let budget = budget();
    let pool = AsyncPool::builder(url.clone(), budget.clone()).build();
    let t = opts.timing;
    let mut points: Vec<ScalePoint> = Vec::new();
    for _ in 0..opts.reps {
        for tasks in SCALE {
            let before = budget.snapshot().async_side.acquire_latency;
            let p = pool.clone();
            let (s, peak) = with_peak(|| {
                measure::tasks(rt, tasks, ROWS, t, move |id| ours_select(p.clone(), id))
            });
            let waits = delta(&budget.snapshot().async_side.acquire_latency, &before);
            let point = ScalePoint {
                tasks,
                stats: vec![s],
                peak: peak.unwrap_or(0),
                acquire_p99: waits.quantile_upper_bound(0.99).unwrap_or_default(),
            };
            match points.iter_mut().find(|p| p.tasks == tasks) {
                Some(existing) => {
                    existing.stats.push(s);
                    existing.peak = existing.peak.max(point.peak);
                    existing.acquire_p99 = existing.acquire_p99.max(point.acquire_p99);
                }
                None => points.push(point),
            }
        }
    }
    rt.block_on(pool.close());
    points
}
