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
use r2d2_mysql::mysql::prelude::Queryable as _;

use crate::instructions::{InstructionReport, ROUNDS, STATEMENTS};
use crate::measure::{Stats, Timing, Window, median, settle};
use crate::runs::{mysql_options, ours_select};
use crate::{BUDGET, ROWS, SQL};

/// The heading that starts the section (it runs to the end of the file).
pub const HEADING: &str = "## 9. Statement timeout on vs off";

/// Callers (tasks or threads) of each measurement.
pub const CONCURRENCY: [usize; 2] = [1, 16];

/// The limit `on` gives: 10 s, the default of `DB_STATEMENT_TIMEOUT`.
pub const LIMIT: Duration = Duration::from_secs(10);

/// What a measurement runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// The pool's `statement_timeout` at [`LIMIT`]: the session limit set once per
    /// connection, and the client's backstop on each statement.
    On,
    /// `statement_timeout` zero: no limit anywhere.
    Off,
    /// The pool's timeout off, the server's global `max_statement_time` at
    /// [`LIMIT`]: the server's own cost of a limit, with the client exactly as `Off`.
    ServerOnly,
}

impl Setting {
    const ALL: [Setting; 3] = [Setting::On, Setting::Off, Setting::ServerOnly];

    /// The pool's `statement_timeout` under this setting.
    pub(crate) fn pool_timeout(self) -> Duration {
        match self {
            Setting::On => LIMIT,
            Setting::Off | Setting::ServerOnly => Duration::ZERO,
        }
    }
}

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

/// One measurement: throughput, and the CPU time the client (this process) and the
/// server used per request in its window.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub stats: Stats,
    pub client_us: f64,
    pub server_us: f64,
}

/// All runs of one pool, one setting, one concurrency.
#[derive(Debug, Clone)]
pub struct TimeoutCell {
    pub pool: PoolKind,
    pub setting: Setting,
    pub conc: usize,
    pub runs: Vec<Run>,
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
    /// The same statement counted in instructions (`crate::instructions`).
    pub instructions: Option<InstructionReport>,
}

/// More runs than the other sections (12 for their 3): the goal (2 %) is below one
/// run's noise on a shared machine. A multiple of the six orders of the three settings
/// ([`ORDERS`]), so each setting follows each other as often.
pub fn reps(opts: &crate::Options) -> usize {
    ORDERS.len() * opts.reps.saturating_sub(1).max(1)
}

/// The six orders of the three settings, one per round in turn. Rotating one order
/// would put each setting always after the same other (`off` after `on`, say), and
/// whatever a run leaves behind (its pool closing, the server's caches) would weigh on
/// one setting only: a 2 % bias, seen as `server` beating `off` with the very same
/// client.
pub const ORDERS: [[Setting; 3]; 6] = {
    use Setting::{Off, On, ServerOnly};
    [
        [On, Off, ServerOnly],
        [Off, ServerOnly, On],
        [ServerOnly, On, Off],
        [On, ServerOnly, Off],
        [Off, On, ServerOnly],
        [ServerOnly, Off, On],
    ]
};

/// Runs every pool × concurrency × setting `reps` times; each round takes the next of
/// [`ORDERS`], so drift on a noisy machine hits all alike. `server_pid` is
/// the benchmark server's process, whose CPU time each window reads.
pub fn run(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    server_pid: u32,
    opts: &crate::Options,
) -> Result<TimeoutReport, String> {
    let _enter = rt.enter();
    let t = opts.timing;
    let reps = reps(opts);
    let mut cells: Vec<TimeoutCell> = Vec::new();
    for rep in 0..reps {
        for pool in [PoolKind::Async, PoolKind::Sync] {
            for conc in CONCURRENCY {
                for setting in ORDERS[rep % ORDERS.len()] {
                    // Only `server` changes the server's global limit, and puts it back.
                    let global = setting == Setting::ServerOnly;
                    if global {
                        set_global_limit(url, LIMIT)?;
                    }
                    let m = Measurement {
                        rt,
                        url,
                        t,
                        conc,
                        timeout: setting.pool_timeout(),
                        server_pid,
                    };
                    let (r, connects) = match pool {
                        PoolKind::Async => m.db_async(),
                        PoolKind::Sync => m.db_sync(),
                    };
                    if global {
                        set_global_limit(url, Duration::ZERO)?;
                    }
                    let requests = (r.stats.qps * t.measure.as_secs_f64()).round() as u64;
                    match cells
                        .iter_mut()
                        .find(|c| c.pool == pool && c.conc == conc && c.setting == setting)
                    {
                        Some(c) => {
                            c.runs.push(r);
                            c.connects += connects;
                            c.requests += requests;
                        }
                        None => cells.push(TimeoutCell {
                            pool,
                            setting,
                            conc,
                            runs: vec![r],
                            connects,
                            requests,
                        }),
                    }
                    settle();
                }
            }
        }
    }
    Ok(TimeoutReport {
        reps,
        timing: t,
        cells,
        instructions: None,
    })
}

/// Sets the server's global `max_statement_time` (zero: none), which sessions opened
/// afterwards start with.
fn set_global_limit(url: &DatabaseUrl, limit: Duration) -> Result<(), String> {
    let mut conn = r2d2_mysql::mysql::Conn::new(mysql_options(url))
        .map_err(|e| format!("cannot connect to set max_statement_time: {e}"))?;
    conn.query_drop(format!(
        "SET GLOBAL max_statement_time = {}",
        limit.as_secs_f64()
    ))
    .map_err(|e| format!("cannot set the global max_statement_time: {e}"))
}

fn budget() -> Budget {
    Budget::new(BUDGET, Duration::from_secs(30))
}

/// One measurement's parameters.
struct Measurement<'a> {
    rt: &'a tokio::runtime::Runtime,
    url: &'a DatabaseUrl,
    t: Timing,
    conc: usize,
    timeout: Duration,
    server_pid: u32,
}

impl Measurement<'_> {
    /// Reads both processes' CPU time.
    fn cpu(&self) -> (Duration, Duration) {
        let read = |pid| crate::cpu::used(pid).unwrap_or_default();
        (read(std::process::id()), read(self.server_pid))
    }

    /// The window's stats and CPU per request.
    fn finish(&self, stats: Stats, [first, last]: [(Duration, Duration); 2]) -> Run {
        let requests = (stats.qps * self.t.measure.as_secs_f64()).max(1.0);
        let per = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() * 1e6 / requests;
        Run {
            stats,
            client_us: per(first.0, last.0),
            server_us: per(first.1, last.1),
        }
    }

    /// Through a fresh db-async pool: `(run, connects in the window)`.
    fn db_async(&self) -> (Run, u64) {
        let budget = budget();
        let pool = AsyncPool::builder(self.url.clone(), budget.clone())
            .statement_timeout(self.timeout)
            .build();
        // One connection per task, open before the clock starts.
        self.rt.block_on(async {
            let mut held = Vec::new();
            for _ in 0..self.conc {
                held.push(pool.acquire().await.expect("a connection to warm the pool"));
            }
        });
        let before = budget.snapshot().async_side.opened_total;
        let p = pool.clone();
        let w = Window::new();
        let tasks = w.tasks(self.rt, self.conc, ROWS, move |id| {
            ours_select(p.clone(), id)
        });
        let (stats, cpu) = w.run_sampled(self.rt, self.t, tasks, Vec::new(), || self.cpu());
        let connects = budget.snapshot().async_side.opened_total - before;
        self.rt.block_on(pool.close());
        (self.finish(stats, cpu), connects)
    }

    /// Through a fresh db-sync pool: `(run, connects in the window)`.
    fn db_sync(&self) -> (Run, u64) {
        let budget = budget();
        let pool = SyncPool::builder(self.url.clone(), budget.clone())
            .statement_timeout(self.timeout)
            .build();
        let held: Vec<_> = (0..self.conc)
            .map(|_| pool.get().expect("a connection to warm the pool"))
            .collect();
        drop(held);
        let before = budget.snapshot().sync_side.opened_total;
        let p = pool.clone();
        let w = Window::new();
        let threads = w.threads(self.conc, ROWS, move |id| {
            p.get()?.fetch_one::<String>(SQL, (id,)).map(drop)
        });
        let (stats, cpu) = w.run_sampled(self.rt, self.t, Vec::new(), threads, || self.cpu());
        let connects = budget.snapshot().sync_side.opened_total - before;
        pool.close();
        (self.finish(stats, cpu), connects)
    }
}

fn cell(
    rep: &TimeoutReport,
    pool: PoolKind,
    conc: usize,
    setting: Setting,
) -> Option<&TimeoutCell> {
    rep.cells
        .iter()
        .find(|c| c.pool == pool && c.conc == conc && c.setting == setting)
}

/// The median over the rounds of `a`'s q/s over `b`'s in the same round: the runs of
/// a round are adjacent in time, so a slow stretch of a shared machine hits both.
fn paired_ratio(a: &TimeoutCell, b: &TimeoutCell) -> Option<f64> {
    let ratios = a
        .runs
        .iter()
        .zip(&b.runs)
        .filter(|(_, b)| b.stats.qps > 0.0)
        .map(|(a, b)| a.stats.qps / b.stats.qps)
        .collect();
    middle(ratios)
}

fn middle(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
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
         once per connection, and the client's backstop on each statement), `off` is `Duration::ZERO`, and `server` \
         is the client exactly as `off` with the server's global `max_statement_time` at 10 s: what the server's \
         own limit costs, apart from anything the client does. Each figure is the median of {} runs of {:.1} s \
         (after {:.1} s of warm-up), the three settings interleaved, each round in another of their six orders (so each follows each other as often). Each run starts \
         with a fresh pool already holding one connection per caller; connects are those opened inside the \
         measured windows (the budget's `opened_total`), per 1,000 requests. A ratio is the median over the rounds \
         of the ratio of two runs of one round (adjacent in time). CPU is the user + system time the benchmark \
         process (client) and `mariadbd` (server) used in the window (`/proc/PID/stat`), per request.\n",
        rep.reps,
        rep.timing.measure.as_secs_f64(),
        rep.timing.warmup.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| pool | callers | on q/s | off q/s | server q/s | on / off | server / off | on / server | server CPU µs per request, on / off / server | client CPU µs per request, on / off | connects per 1,000, on / off |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst: Option<f64> = None;
    let mut worst_client: Option<f64> = None;
    let mut max_connects = 0.0f64;
    let farther = |w: &mut Option<f64>, r: Option<f64>| {
        if let Some(r) = r {
            let apart = (r - 1.0).abs();
            *w = Some(w.map_or(apart, |w: f64| w.max(apart)));
        }
    };
    for pool in [PoolKind::Async, PoolKind::Sync] {
        for conc in CONCURRENCY {
            let [on, off, server] = Setting::ALL.map(|set| cell(rep, pool, conc, set));
            let ratio = |a: Option<&TimeoutCell>, b: Option<&TimeoutCell>| {
                a.zip(b).and_then(|(a, b)| paired_ratio(a, b))
            };
            let (on_off, server_off, on_server) =
                (ratio(on, off), ratio(server, off), ratio(on, server));
            farther(&mut worst, on_off);
            farther(&mut worst_client, on_server);
            for c in [on, off].into_iter().flatten() {
                max_connects = max_connects.max(per_thousand(c));
            }
            let q = |c: Option<&TimeoutCell>| {
                c.map_or("–".into(), |c| {
                    format!(
                        "{:.0}",
                        median(c.runs.iter().map(|r| r.stats).collect()).qps
                    )
                })
            };
            let r = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.3}"));
            let cpu = |c: Option<&TimeoutCell>, of: fn(&Run) -> f64| {
                c.and_then(|c| middle(c.runs.iter().map(of).collect()))
                    .map_or("–".into(), |v| format!("{v:.1}"))
            };
            let server_cpu = [on, off, server]
                .map(|c| cpu(c, |r| r.server_us))
                .join(" / ");
            let client_cpu = [on, off].map(|c| cpu(c, |r| r.client_us)).join(" / ");
            let conn = |c: Option<&TimeoutCell>| {
                c.map_or("–".into(), |c| format!("{:.2}", per_thousand(c)))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {server_cpu} | {client_cpu} | {} / {} |",
                pool.name(),
                pool.callers(conc),
                q(on),
                q(off),
                q(server),
                r(on_off),
                r(server_off),
                r(on_server),
                conn(on),
                conn(off),
            );
        }
    }
    let worst = worst.unwrap_or(f64::INFINITY);
    let worst_client = worst_client.unwrap_or(f64::INFINITY);
    let verdict = |met: bool| if met { "**met**" } else { "**missed**" };
    let _ = writeln!(
        s,
        "\nGoals: on and off at most 2 % apart in q/s: {} (furthest {:.1} %). What the client adds to the server's \
         own limit (on against server) at most 2 %: {} (furthest {:.1} %). No connects per request with the timeout \
         on: {} (at most {:.2} per 1,000 requests in any cell).",
        verdict(worst <= 0.02),
        worst * 100.0,
        verdict(worst_client <= 0.02),
        worst_client * 100.0,
        if rep.cells.is_empty() {
            "**not measured**"
        } else {
            verdict(max_connects == 0.0)
        },
        max_connects
    );
    if let Some(ir) = &rep.instructions {
        render_instructions(&mut s, ir);
    }
    s
}

fn render_instructions(s: &mut String, ir: &InstructionReport) {
    let _ = writeln!(
        s,
        "\nThe same point select in instructions ({}, `--tool=callgrind`), which do not depend on what else the \
         machine runs: the server (`mariadbd` under callgrind, counting inside `do_command` only: a client's command in its \
         connection's thread, not the background threads, whose work follows time, not statements) and a client process (this program, holding one pool \
         of each kind with the timeout on and one with it off, each connected first) count {STATEMENTS} statements in a \
         row, one caller, the same row ids each time; counters zeroed before and dumped after each measurement \
         (`callgrind_control`). Median of {ROUNDS} rounds, the two settings taking turns to go first. Instructions per \
         statement:\n",
        ir.valgrind
    );
    let _ = writeln!(
        s,
        "| pool | client on | client off | server on | server off | both on / off (median of the rounds) | rounds' on / off, lowest – highest |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    let mut worst = Some(0.0f64);
    let mut worst_server = 0.0f64;
    for pool in [PoolKind::Async, PoolKind::Sync] {
        let of = |setting: Setting, f: fn(&crate::instructions::Count) -> f64| {
            middle(
                ir.counts
                    .iter()
                    .filter(|c| c.pool == pool && c.setting == setting)
                    .map(f)
                    .collect(),
            )
            .unwrap_or(f64::NAN)
        };
        let (con, coff) = (
            of(Setting::On, |c| c.client),
            of(Setting::Off, |c| c.client),
        );
        let (son, soff) = (
            of(Setting::On, |c| c.server),
            of(Setting::Off, |c| c.server),
        );
        // Each round's own ratio (its two measurements are adjacent): the column and
        // the verdict come from these, never from medians of different rounds.
        let rounds: Vec<f64> = (0..ROUNDS)
            .filter_map(|round| {
                let sum = |setting| {
                    ir.counts
                        .iter()
                        .find(|c| c.round == round && c.pool == pool && c.setting == setting)
                        .map(|c| c.client + c.server)
                };
                Some(sum(Setting::On)? / sum(Setting::Off)?)
            })
            .filter(|r| r.is_finite())
            .collect();
        let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ratio = middle(rounds.clone());
        // The round furthest from 1 decides; a pool without a round is not measured.
        let furthest = rounds
            .iter()
            .map(|r| (r - 1.0).abs())
            .fold(None, |w: Option<f64>, a| Some(w.map_or(a, |w| w.max(a))));
        worst = match (worst, furthest) {
            (Some(w), Some(f)) => Some(w.max(f)),
            _ => None,
        };
        worst_server = worst_server.max(son / soff - 1.0);
        let _ = writeln!(
            s,
            "| {} | {con:.0} | {coff:.0} | {son:.0} | {soff:.0} | {} | {} |",
            pool.name(),
            ratio.map_or("–".into(), |r| format!("{r:.4}")),
            if rounds.is_empty() {
                "–".to_owned()
            } else {
                format!("{lo:.4} – {hi:.4}")
            },
        );
    }
    let verdict = match worst {
        Some(w) if w <= 0.02 => "**met**",
        Some(_) => "**missed**",
        None => "**not measured** (a pool has no round)",
    };
    let worst = worst.unwrap_or(f64::NAN);
    let _ = writeln!(
        s,
        "\nGoal in instructions (client and server together), on and off at most 2 % apart in every round: {verdict} \
         (furthest {:.2} %; the server's own part: at most {:+.2} %).",
        worst * 100.0,
        worst_server * 100.0
    );
}

#[cfg(test)]
mod tests {
    //! The instruction verdict, from rounds made up to miss (an adversary's cases).
    use super::{ORDERS, PoolKind, Setting, TimeoutReport, render};
    use crate::instructions::{Count, InstructionReport};

    fn count(round: usize, pool: PoolKind, setting: Setting, client: f64, server: f64) -> Count {
        Count {
            round,
            pool,
            setting,
            client: client * 400.0,
            server: server * 400.0,
        }
    }

    fn verdict(counts: Vec<Count>) -> String {
        let md = render(&TimeoutReport {
            instructions: Some(InstructionReport {
                counts,
                valgrind: "valgrind-test".into(),
            }),
            ..Default::default()
        });
        md.lines()
            .find(|l| l.starts_with("Goal in instructions"))
            .expect("the verdict line")
            .to_owned()
    }

    #[test]
    fn every_setting_follows_every_other_as_often_and_goes_first_as_often() {
        use std::collections::HashMap;
        let mut after: HashMap<(Setting, Setting), usize> = HashMap::new();
        let mut first: HashMap<Setting, usize> = HashMap::new();
        for order in ORDERS {
            *first.entry(order[0]).or_default() += 1;
            for pair in order.windows(2) {
                *after.entry((pair[0], pair[1])).or_default() += 1;
            }
        }
        assert_eq!(first.len(), 3);
        assert!(first.values().all(|&n| n == 2), "{first:?}");
        assert_eq!(after.len(), 6, "every ordered pair occurs: {after:?}");
        assert!(after.values().all(|&n| n == 2), "{after:?}");
    }

    #[test]
    fn rounds_each_ten_percent_apart_miss_even_when_the_medians_of_the_parts_agree() {
        // Each round's on / off is 1.10 to 1.11; the medians of the parts (on 50 + 50,
        // off 55 + 45) are equal.
        let on = [(50.0, 50.0), (55.0, 50.0), (50.0, 60.0)];
        let off = [(30.0, 60.0), (60.0, 35.0), (55.0, 45.0)];
        let mut counts = Vec::new();
        for pool in [PoolKind::Async, PoolKind::Sync] {
            for round in 0..3 {
                counts.push(count(round, pool, Setting::On, on[round].0, on[round].1));
                counts.push(count(round, pool, Setting::Off, off[round].0, off[round].1));
            }
        }
        let v = verdict(counts);
        assert!(v.contains("**missed**"), "{v}");
    }

    #[test]
    fn a_pool_without_counts_is_not_measured_not_met() {
        let mut counts = Vec::new();
        for round in 0..3 {
            counts.push(count(round, PoolKind::Sync, Setting::On, 50.0, 50.0));
            counts.push(count(round, PoolKind::Sync, Setting::Off, 50.0, 50.0));
        }
        let v = verdict(counts);
        assert!(v.contains("**not measured**"), "{v}");
    }

    #[test]
    fn rounds_within_two_percent_meet_the_goal() {
        let mut counts = Vec::new();
        for pool in [PoolKind::Async, PoolKind::Sync] {
            for round in 0..3 {
                counts.push(count(round, pool, Setting::On, 51.0, 50.0));
                counts.push(count(round, pool, Setting::Off, 50.0, 50.0));
            }
        }
        let v = verdict(counts);
        assert!(v.contains("**met**") && v.contains("1.00 %"), "{v}");
    }
}
