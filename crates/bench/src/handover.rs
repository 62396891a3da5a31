//! `cargo xtask bench handover`: the budget's allocation policy under steady mixed
//! saturation, the earlier `eager` policy and the `damped` shares side by side in one run.
//!
//! One private MariaDB that leaves the application's account budget + 1 connections
//! (the one is this program's sampler, a root connection kept open), no reserve at
//! all. MariaDB takes no `max_connections` below 10, so the server has 10 and this
//! program holds [`BALLAST`] idle connections of the application's account through the
//! whole run; the counts shown leave them out. Blocking threads and async
//! tasks share one budget of [`BUDGET`]; each caller takes a connection, runs the point
//! select, gives the connection back and "thinks" for up to 2 ms (the rest of a request),
//! in three mixes, from always saturated to near saturation. Counted: physical connects (the budget's own count, and
//! the server's `Connections`), the server's `Max_used_connections` and
//! `Connection_errors_max_connections` (its ERROR 1040s), `Aborted_connects`, errors the
//! callers saw, acquire waits per side, and the time a side that starts waiting needs to
//! receive its first unit. Writes section 7 of BENCHMARKS.md.
//!
//! sync-usage: infrastructure (benchmarks db-sync itself; goes when db-sync goes, not ported module by module).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, HandOver, Side};
use db_sync::SyncPool;
use mariadb_harness::{MIN_MAX_CONNECTIONS, Server, ServerOptions};
use r2d2_mysql::mysql::{self, prelude::Queryable};
use seeded_rng::Rng;

use crate::{ROWS, SQL, sysbench};

/// The budget of this benchmark (the figure: budget 8, hundreds of callers).
pub const BUDGET: u32 = 8;

/// Idle connections held so that the server's least `max_connections` (10) leaves the
/// application's account budget + 1 slots (the sampler's included).
pub const BALLAST: u32 = MIN_MAX_CONNECTIONS - (BUDGET + 1);
/// Blocking threads that keep the budget saturated in the first-unit measurement.
const THREADS: usize = 100;

/// One mix of callers: `callers` blocking threads and as many async tasks, each pausing
/// a random 0 to `think_max_us` µs between requests.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub callers: usize,
    pub think_max_us: u64,
}

/// From always saturated (every side always has waiters) to near saturation (a side
/// is now and then without waiters: when the earlier policy handed idle connections
/// over).
pub const SHAPES: [Shape; 3] = [
    Shape {
        callers: 100,
        think_max_us: 2_000,
    },
    Shape {
        callers: 24,
        think_max_us: 2_000,
    },
    Shape {
        callers: 12,
        think_max_us: 2_000,
    },
];
const WARMUP: Duration = Duration::from_secs(2);
/// Repetitions of each first-unit measurement.
const FIRST_UNIT_REPS: usize = 5;

/// What one policy did over one measured run.
pub struct LoadRun {
    pub policy: HandOver,
    pub shape: Shape,
    /// The shares at the end, `[async, sync]`.
    pub shares: [u32; 2],
    pub secs: f64,
    pub requests: [u64; 2],
    pub budget_connects: u64,
    pub server_connects: u64,
    pub max_used: u64,
    pub peak_threads_connected: u64,
    pub refused_1040: u64,
    pub aborted_connects: u64,
    pub caller_errors: u64,
    /// p99 acquire wait in µs, `[async, sync]`.
    pub p99_acquire_us: [u64; 2],
}

impl LoadRun {
    /// Adds a second run of the same policy and mix: counts add up, peaks and p99s take
    /// the worse of the two.
    fn merge(&mut self, other: LoadRun) {
        self.secs += other.secs;
        for i in 0..2 {
            self.requests[i] += other.requests[i];
            self.p99_acquire_us[i] = self.p99_acquire_us[i].max(other.p99_acquire_us[i]);
        }
        self.budget_connects += other.budget_connects;
        self.server_connects += other.server_connects;
        self.max_used = self.max_used.max(other.max_used);
        self.peak_threads_connected = self
            .peak_threads_connected
            .max(other.peak_threads_connected);
        self.refused_1040 += other.refused_1040;
        self.aborted_connects += other.aborted_connects;
        self.caller_errors += other.caller_errors;
        self.shares = other.shares;
    }
}

/// Milliseconds until a side that starts waiting holds its first unit.
pub struct FirstUnit {
    pub policy: HandOver,
    pub other_idle_ms: Vec<f64>,
    pub other_saturated_ms: Vec<f64>,
}

pub struct HandoverReport {
    pub runs: Vec<LoadRun>,
    pub first_unit: Vec<FirstUnit>,
    pub shedding: Vec<crate::shedding::ShedRun>,
    pub mariadb_version: String,
}

/// Runs everything: the load for `secs` per policy and mix, then the first-unit times.
pub fn run(secs: u64) -> Result<HandoverReport, String> {
    let server = Server::start(ServerOptions {
        max_connections: MIN_MAX_CONNECTIONS,
        ..Default::default()
    })
    .map_err(|e| format!("cannot start a private MariaDB: {e}"))?;
    let db = server
        .create_database("handover")
        .map_err(|e| e.to_string())?;
    sysbench::ensure_installed()?;
    sysbench::prepare(&server, &db)?;
    let url = DatabaseUrl::parse(&server.app_url(&db)).map_err(|e| e.to_string())?;
    let mut sampler =
        mysql::Conn::new(mysql::Opts::from_url(&server.root_url(&db)).map_err(|e| e.to_string())?)
            .map_err(|e| format!("the sampler cannot connect: {e}"))?;
    let _ballast = server
        .hold_slots(BALLAST as usize)
        .map_err(|e| format!("cannot hold the ballast connections: {e}"))?;
    let mariadb_version: String = sampler
        .query_first("SELECT VERSION()")
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut report = HandoverReport {
        runs: Vec::new(),
        first_unit: Vec::new(),
        shedding: Vec::new(),
        mariadb_version,
    };
    for shape in SHAPES {
        // Eager, damped, damped, eager: drift on this shared machine hits both alike.
        let mut runs: Vec<LoadRun> = Vec::new();
        for policy in [
            HandOver::Eager,
            HandOver::Damped,
            HandOver::Damped,
            HandOver::Eager,
        ] {
            eprintln!(
                "handover: {} with {} + {} callers for {secs} s",
                policy.as_str(),
                shape.callers,
                shape.callers
            );
            let length = Duration::from_secs(secs);
            let run = load(&rt, &url, &mut sampler, policy, shape, length)?;
            match runs.iter_mut().find(|r| r.policy == policy) {
                Some(first) => first.merge(run),
                None => runs.push(run),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        report.runs.extend(runs);
    }
    for policy in [HandOver::Eager, HandOver::Damped] {
        eprintln!("handover: {} first-unit times", policy.as_str());
        report.first_unit.push(first_unit(&rt, &url, policy));
    }
    for limit in [None, Some(crate::shedding::MAX_WAITERS)] {
        eprintln!("handover: overload, DB_MAX_WAITERS={}", limit.unwrap_or(0));
        let length = Duration::from_secs(secs.div_ceil(2));
        report
            .shedding
            .push(crate::shedding::run(&rt, &url, limit, length));
    }
    Ok(report)
}

fn pools(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    policy: HandOver,
) -> (Budget, AsyncPool, SyncPool) {
    let _enter = rt.enter();
    let budget = Budget::new(BUDGET, Duration::from_secs(30));
    budget.set_hand_over(policy);
    let apool = AsyncPool::builder(url.clone(), budget.clone()).build();
    let spool = SyncPool::builder(url.clone(), budget.clone()).build();
    (budget, apool, spool)
}

fn status(sampler: &mut mysql::Conn, name: &str) -> Result<u64, String> {
    let row: Option<(String, String)> = sampler
        .query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'"))
        .map_err(|e| e.to_string())?;
    row.and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| format!("no status {name}"))
}

fn opened(budget: &Budget) -> u64 {
    let s = budget.snapshot();
    s.async_side.opened_total + s.sync_side.opened_total
}

/// The callers' shared flags and counters.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    measuring: AtomicBool,
    requests: [AtomicU64; 2],
    errors: AtomicU64,
}

impl Load {
    fn done(&self, side: Side, ok: bool, waited: Duration, waits: &mut Vec<u32>) {
        if !self.measuring.load(Relaxed) {
            return;
        }
        if ok {
            self.requests[slot(side)].fetch_add(1, Relaxed);
            waits.push(waited.as_micros().min(u128::from(u32::MAX)) as u32);
        } else if self.errors.fetch_add(1, Relaxed) == 0 {
            eprintln!("  first caller error on the {side} side");
        }
    }
}

/// The position of `side` in the `[async, sync]` arrays of this file.
fn slot(side: Side) -> usize {
    match side {
        Side::Async => 0,
        Side::Sync => 1,
    }
}

fn p99(mut v: Vec<u32>) -> u64 {
    v.sort_unstable();
    v.get((v.len().max(1) - 1) * 99 / 100)
        .map_or(0, |x| u64::from(*x))
}

fn load(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    sampler: &mut mysql::Conn,
    policy: HandOver,
    shape: Shape,
    length: Duration,
) -> Result<LoadRun, String> {
    let (budget, apool, spool) = pools(rt, url, policy);
    let load = Arc::new(Load::default());
    let think_max = shape.think_max_us;
    let threads: Vec<_> = (0..shape.callers)
        .map(|w| {
            let (spool, load) = (spool.clone(), load.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(0xB10C ^ w as u64);
                let mut waits = Vec::with_capacity(1 << 14);
                while !load.stop.load(Relaxed) {
                    let started = Instant::now();
                    let ok = match spool.get() {
                        Ok(mut c) => {
                            let waited = started.elapsed();
                            let id = rng.below(ROWS) as i64 + 1;
                            let ok = c.fetch_one::<String>(SQL, (id,)).is_ok();
                            load.done(Side::Sync, ok, waited, &mut waits);
                            true
                        }
                        Err(_) => false,
                    };
                    if !ok {
                        load.done(Side::Sync, false, Duration::ZERO, &mut waits);
                    }
                    std::thread::sleep(Duration::from_micros(rng.below(think_max)));
                }
                waits
            })
        })
        .collect();
    let tasks: Vec<_> = (0..shape.callers)
        .map(|w| {
            let (apool, load) = (apool.clone(), load.clone());
            rt.spawn(async move {
                let mut rng = Rng::new(0xA5C ^ w as u64);
                let mut waits = Vec::with_capacity(1 << 14);
                while !load.stop.load(Relaxed) {
                    let started = Instant::now();
                    match apool.acquire().await {
                        Ok(mut c) => {
                            let waited = started.elapsed();
                            let id = rng.below(ROWS) as i64 + 1;
                            let ok = c.fetch_one::<(String,)>(SQL, args![id]).await.is_ok();
                            load.done(Side::Async, ok, waited, &mut waits);
                        }
                        Err(_) => load.done(Side::Async, false, Duration::ZERO, &mut waits),
                    }
                    tokio::time::sleep(Duration::from_micros(rng.below(think_max))).await;
                }
                waits
            })
        })
        .collect();
    std::thread::sleep(WARMUP);
    sampler
        .query_drop("FLUSH STATUS")
        .map_err(|e| e.to_string())?;
    let before = [
        status(sampler, "Connections")?,
        status(sampler, "Connection_errors_max_connections")?,
        status(sampler, "Aborted_connects")?,
    ];
    let opened_before = opened(&budget);
    load.measuring.store(true, Relaxed);
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < length {
        peak = peak.max(status(sampler, "Threads_connected")?.saturating_sub(BALLAST.into()));
        std::thread::sleep(Duration::from_millis(10));
    }
    load.measuring.store(false, Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let opened_after = opened(&budget);
    let after = [
        status(sampler, "Connections")?,
        status(sampler, "Connection_errors_max_connections")?,
        status(sampler, "Aborted_connects")?,
    ];
    // Beside the ballast, held all along.
    let max_used = status(sampler, "Max_used_connections")?.saturating_sub(BALLAST.into());
    let shares = [budget.share(Side::Async), budget.share(Side::Sync)];
    load.stop.store(true, Relaxed);
    let mut sync_waits = Vec::new();
    for t in threads {
        sync_waits.extend(t.join().map_err(|_| "a blocking caller panicked")?);
    }
    let mut async_waits = Vec::new();
    rt.block_on(async {
        for t in tasks {
            async_waits.extend(t.await.unwrap_or_default());
        }
    });
    rt.block_on(apool.close());
    spool.close();
    Ok(LoadRun {
        policy,
        shape,
        shares,
        secs,
        requests: [
            load.requests[0].load(Relaxed),
            load.requests[1].load(Relaxed),
        ],
        budget_connects: opened_after - opened_before,
        // The sampler's own connection was opened before the run.
        server_connects: after[0].saturating_sub(before[0]),
        max_used,
        peak_threads_connected: peak,
        refused_1040: after[1].saturating_sub(before[1]),
        aborted_connects: after[2].saturating_sub(before[2]),
        caller_errors: load.errors.load(Relaxed),
        p99_acquire_us: [p99(async_waits), p99(sync_waits)],
    })
}

/// Time for the async side, quiet until now, to get its first unit: once while the
/// blocking side holds the whole budget idle, once while it keeps the budget saturated.
fn first_unit(rt: &tokio::runtime::Runtime, url: &DatabaseUrl, policy: HandOver) -> FirstUnit {
    let (budget, apool, spool) = pools(rt, url, policy);
    let mut out = FirstUnit {
        policy,
        other_idle_ms: Vec::new(),
        other_saturated_ms: Vec::new(),
    };
    let timed_acquire = |apool: &AsyncPool| {
        let started = Instant::now();
        let conn = rt.block_on(apool.acquire());
        let ms = started.elapsed().as_secs_f64() * 1e3;
        drop(conn);
        // The async side goes quiet again before the next repetition.
        std::thread::sleep(Duration::from_millis(300));
        ms
    };
    for _ in 0..FIRST_UNIT_REPS {
        // The blocking side opens the whole budget, then leaves it idle.
        let held: Vec<_> = (0..BUDGET).filter_map(|_| spool.get().ok()).collect();
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        out.other_idle_ms.push(timed_acquire(&apool));
    }
    for _ in 0..FIRST_UNIT_REPS {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..THREADS)
            .map(|w| {
                let (spool, stop) = (spool.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::new(0x5A7 ^ w as u64);
                    while !stop.load(Relaxed) {
                        if let Ok(mut c) = spool.get() {
                            let _ = c.fetch_one::<String>(SQL, (rng.below(ROWS) as i64 + 1,));
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        out.other_saturated_ms.push(timed_acquire(&apool));
        stop.store(true, Relaxed);
        for t in threads {
            let _ = t.join();
        }
    }
    rt.block_on(apool.close());
    spool.close();
    drop(budget);
    out
}
