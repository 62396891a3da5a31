//! Section 9 of BENCHMARKS.md: the point select with the statement timeout on (10 s,
//! the default of `DB_STATEMENT_TIMEOUT`) and off (`Duration::ZERO`), through both
//! pools, interleaved in one run.
//!
//! The limit is set once per connection (a `SET SESSION max_statement_time` when it
//! opens), so it should cost nothing per request; what a statement does pay with the
//! limit on is the client's backstop (a timer on the async side, a socket timeout on
//! the blocking side). Each measurement starts with its pool already holding one
//! connection per caller, so the connects counted in the window (from the budget's
//! `opened_total`) are those the requests themselves caused.
//!
//! sync-usage: infrastructure (benchmarks db-sync itself; goes when db-sync goes, not ported module by module).

use std::fmt::Write as _;
use std::time::Duration;

use db_async::AsyncPool;
use db_budget::{Budget, DatabaseUrl};
use db_sync::SyncPool;

use crate::measure::{self, Stats, Timing, median, settle};
use crate::runs::ours_select;
use crate::{BUDGET, Options, ROWS, SQL};

/// The heading that starts the section (it runs to the end of the file).
pub const HEADING: &str = "## 9. Statement timeout on vs off";

/// Callers (tasks or threads) of each measurement.
pub const CONCURRENCY: [usize; 2] = [1, 16];

/// The two settings compared.
pub const ON: Duration = Duration::from_secs(10);
pub const OFF: Duration = Duration::ZERO;

/// Which pool a cell measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Async,
    Sync,
}

impl PoolKind {
    fn name(self) -> &'static str {
        match self {
            PoolKind::Async => "db-async",
            PoolKind::Sync => "db-sync",
        }
    }

    fn callers(self, n: usize) -> String {
        let word = match self {
            PoolKind::Async => "task",
            PoolKind::Sync => "thread",
        };
        format!("{n} {word}{}", if n == 1 { "" } else { "s" })
    }
}

/// All runs of one pool, one setting, one concurrency.
#[derive(Debug, Clone)]
pub struct TimeoutCell {
    pub pool: PoolKind,
    pub timeout: Duration,
    pub conc: usize,
    pub runs: Vec<Stats>,
    /// Connections opened inside the measured windows, over all runs.
    pub connects: u64,
    /// Requests completed inside the measured windows, over all runs.
    pub requests: u64,
}

/// What the section ran.
#[derive(Debug, Clone, Default)]
pub struct TimeoutReport {
    pub reps: usize,
    pub timing: Timing,
    pub cells: Vec<TimeoutCell>,
}

/// More runs than the other sections (7 for their 3): the goal (2 %) is below one
/// run's noise on a shared machine.
pub fn reps(opts: &Options) -> usize {
    opts.reps * 2 + 1
}

/// Runs every pool × concurrency × setting `reps` times; each round alternates which
/// setting goes first, so drift on a noisy machine hits both alike.
pub fn run(rt: &tokio::runtime::Runtime, url: &DatabaseUrl, opts: &Options) -> TimeoutReport {
    let _enter = rt.enter();
    let t = opts.timing;
    let reps = reps(opts);
    let mut cells: Vec<TimeoutCell> = Vec::new();
    for rep in 0..reps {
        for pool in [PoolKind::Async, PoolKind::Sync] {
            for conc in CONCURRENCY {
                let order = if rep % 2 == 0 { [ON, OFF] } else { [OFF, ON] };
                for timeout in order {
                    let (s, connects) = match pool {
                        PoolKind::Async => measure_async(rt, url, t, conc, timeout),
                        PoolKind::Sync => measure_sync(rt, url, t, conc, timeout),
                    };
                    let requests = (s.qps * t.measure.as_secs_f64()).round() as u64;
                    match cells
                        .iter_mut()
                        .find(|c| c.pool == pool && c.conc == conc && c.timeout == timeout)
                    {
                        Some(c) => {
                            c.runs.push(s);
                            c.connects += connects;
                            c.requests += requests;
                        }
                        None => cells.push(TimeoutCell {
                            pool,
                            timeout,
                            conc,
                            runs: vec![s],
                            connects,
                            requests,
                        }),
                    }
                    settle();
                }
            }
        }
    }
    TimeoutReport {
        reps,
        timing: t,
        cells,
    }
}

fn budget() -> Budget {
    Budget::new(BUDGET, Duration::from_secs(30))
}

/// One measurement through a fresh db-async pool: `(stats, connects in the window)`.
fn measure_async(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    t: Timing,
    conc: usize,
    timeout: Duration,
) -> (Stats, u64) {
    let budget = budget();
    let pool = AsyncPool::builder(url.clone(), budget.clone())
        .statement_timeout(timeout)
        .build();
    // One connection per task, open before the clock starts.
    rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..conc {
            held.push(pool.acquire().await.expect("a connection to warm the pool"));
        }
    });
    let before = budget.snapshot().async_side.opened_total;
    let p = pool.clone();
    let s = measure::tasks(rt, conc, ROWS, t, move |id| ours_select(p.clone(), id));
    let connects = budget.snapshot().async_side.opened_total - before;
    rt.block_on(pool.close());
    (s, connects)
}

/// One measurement through a fresh db-sync pool: `(stats, connects in the window)`.
fn measure_sync(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    t: Timing,
    conc: usize,
    timeout: Duration,
) -> (Stats, u64) {
    let budget = budget();
    let pool = SyncPool::builder(url.clone(), budget.clone())
        .statement_timeout(timeout)
        .build();
    let held: Vec<_> = (0..conc)
        .map(|_| pool.get().expect("a connection to warm the pool"))
        .collect();
    drop(held);
    let before = budget.snapshot().sync_side.opened_total;
    let p = pool.clone();
    let s = measure::threads(rt, conc, ROWS, t, move |id| {
        p.get()?.fetch_one::<String>(SQL, (id,)).map(drop)
    });
    let connects = budget.snapshot().sync_side.opened_total - before;
    pool.close();
    (s, connects)
}

fn cell(
    rep: &TimeoutReport,
    pool: PoolKind,
    conc: usize,
    timeout: Duration,
) -> Option<&TimeoutCell> {
    rep.cells
        .iter()
        .find(|c| c.pool == pool && c.conc == conc && c.timeout == timeout)
}

/// The median over the rounds of on's q/s over off's in the same round: the two runs
/// of a round are adjacent in time, so a slow stretch of a shared machine hits both.
fn paired_ratio(on: &TimeoutCell, off: &TimeoutCell) -> Option<f64> {
    let mut ratios: Vec<f64> = on
        .runs
        .iter()
        .zip(&off.runs)
        .filter(|(_, off)| off.qps > 0.0)
        .map(|(on, off)| on.qps / off.qps)
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied()
}

fn per_thousand(c: &TimeoutCell) -> f64 {
    c.connects as f64 * 1000.0 / c.requests.max(1) as f64
}

/// The section as Markdown (from [`HEADING`] on).
pub fn render(rep: &TimeoutReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADING}: the point select, both pools\n");
    let _ = writeln!(
        s,
        "Command: part of `cargo xtask bench`; alone: `cargo xtask bench --only timeout` (prints, writes nothing). \
         `on` is `statement_timeout` 10 s (the default of `DB_STATEMENT_TIMEOUT`: a `SET SESSION max_statement_time` \
         once per connection, and the client's backstop on each statement), `off` is `Duration::ZERO`. Each figure \
         is the median of {} runs of {:.1} s (after {:.1} s of warm-up), the two settings interleaved and taking \
         turns to go first. Each run starts with a fresh pool already holding one connection per caller; connects \
         are those opened inside the measured windows (the budget's `opened_total`), per 1,000 requests. \
         `on / off` is the median over the rounds of the ratio of the two runs of a round (adjacent in time).\n",
        rep.reps,
        rep.timing.measure.as_secs_f64(),
        rep.timing.warmup.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| pool | callers | on q/s | on p50 / p99 (µs) | off q/s | off p50 / p99 (µs) | on / off (paired) | connects per 1,000, on / off |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst: Option<f64> = None;
    let mut max_connects = 0.0f64;
    for pool in [PoolKind::Async, PoolKind::Sync] {
        for conc in CONCURRENCY {
            let (on, off) = (cell(rep, pool, conc, ON), cell(rep, pool, conc, OFF));
            let (mon, moff) = (
                on.map(|c| median(c.runs.clone())),
                off.map(|c| median(c.runs.clone())),
            );
            let ratio = on.zip(off).and_then(|(on, off)| paired_ratio(on, off));
            if let Some(r) = ratio {
                let apart = (r - 1.0).abs();
                worst = Some(worst.map_or(apart, |w| w.max(apart)));
            }
            let q = |m: Option<Stats>| m.map_or("–".into(), |m| format!("{:.0}", m.qps));
            let lat = |m: Option<Stats>| {
                m.map_or("–".into(), |m| format!("{} / {}", m.p50_us, m.p99_us))
            };
            for c in [on, off].into_iter().flatten() {
                max_connects = max_connects.max(per_thousand(c));
            }
            let conn = |c: Option<&TimeoutCell>| {
                c.map_or("–".into(), |c| format!("{:.2}", per_thousand(c)))
            };
            let connects = format!("{} / {}", conn(on), conn(off));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {connects} |",
                pool.name(),
                pool.callers(conc),
                q(mon),
                lat(mon),
                q(moff),
                lat(moff),
                ratio.map_or("–".into(), |r| format!("{r:.3}")),
            );
        }
    }
    let worst = worst.unwrap_or(f64::INFINITY);
    let verdict = |met: bool| if met { "**met**" } else { "**missed**" };
    let _ = writeln!(
        s,
        "\nGoals: on and off at most 2 % apart in q/s: {} (furthest {:.1} %). No connects per request with the \
         timeout on: {} (at most {:.2} per 1,000 requests in any cell).",
        verdict(worst <= 0.02),
        worst * 100.0,
        verdict(max_connects == 0.0),
        max_connects
    );
    s
}
