//! `cargo xtask soak --minutes N` (default 10): the application under the fault tests'
//! steady mixed load for a long time, watched for slow leaks.
//!
//! The application runs in this process (budget 20, the server's defaults otherwise)
//! against a private MariaDB; the load is the one of the fault tests, the `loadgen`
//! crate's (`crates/loadgen`): 200 simulated players, 50 of
//! them on WebSockets, async retention routes and blocking legacy routes mixed. Every
//! 10 s a row: RSS of this process, physical connections (the server's
//! `Threads_connected`, the budget's units in use, and the connection oracle's exact peak
//! over the interval), requests/s, latency p50/p99/max and non-2xx answers.
//!
//! Verdict (exit status 1 when it fails):
//! - no upward trend, second half of the run against the first (after a warm-up of a
//!   tenth of it): mean RSS within 5 % (or 2 MiB); median `Threads_connected` within
//!   10 % (or 2 connections) (the median, because a burst of slow answers opens
//!   connections for a few seconds, while a leak raises every sample); the oracle's
//!   exact peak never above `MAX_CONNECTIONS`;
//! - no stuck unit: once the load stops, every unit in use is an idle connection, and
//!   the idle reapers bring the budget to 0 (`DB_IDLE_TIMEOUT` plus r2d2's 30 s reaper
//!   period);
//! - no 5xx (nor broken connection, nor timeout), no unexpected answer.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::BUDGET;
use mariadb_harness::{Server, ServerOptions, oracle};
use server::memory::{MMAP_THRESHOLD, Tuning};

use loadgen::{Load, LoadConfig, Window};

/// Rows every this often.
const INTERVAL: Duration = Duration::from_secs(10);
/// `DB_IDLE_TIMEOUT` (the server's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// r2d2's reaper period: a blocking connection may idle this much past the idle timeout.
const SYNC_REAPER: Duration = Duration::from_secs(30);

struct Row {
    at: Duration,
    rss_kib: u64,
    heap_kib: u64,
    threads_connected: u64,
    in_use: u32,
    oracle_peak: i64,
    window: Window,
}

struct Options {
    length: Duration,
    /// Leave malloc as glibc sets it up, instead of the server binary's tuning.
    glibc_defaults: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut length = Duration::from_secs(10 * 60);
    let mut glibc_defaults = false;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let mut number = |what: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or(format!("{what} takes a positive number"))
        };
        match a.as_str() {
            "--minutes" => length = Duration::from_secs(60 * number("--minutes")?),
            "--secs" => length = Duration::from_secs(number("--secs")?),
            "--glibc-defaults" => glibc_defaults = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (accepted: --minutes N, --secs N, --glibc-defaults)"
                ));
            }
        }
    }
    Ok(Options {
        length,
        glibc_defaults,
    })
}

/// Runs the soak; `Ok(false)` when the verdict is a failure.
pub fn main(args: &[String]) -> Result<bool, String> {
    let Options {
        length,
        glibc_defaults,
    } = parse(args)?;
    // What the server binary does first (before any thread starts), so the soak
    // measures the process as deployed.
    let tuning = (!glibc_defaults).then(server::memory::tune_allocator);
    let server = Server::start(ServerOptions::default())
        .map_err(|e| format!("cannot start a private MariaDB: {e}"))?;
    oracle::watch(server.port(), Some(server.socket_path()));
    let db = server.create_database("soak").map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let app = crate::e2e::start_app(&rt, &server, &db)?;
    let budget = app.budget();
    let addr = app.api_addr();
    let shutdown = app.shutdown_handle();
    let running = rt.spawn(app.run_until_stopped());

    let config = LoadConfig {
        keep_samples: false,
        ..LoadConfig::default()
    };
    eprintln!("{}", machine(&server));
    eprintln!(
        "soak: {} min, {} clients ({} on WebSockets, mean think time {} ms), budget {BUDGET}, malloc: {}",
        length.as_secs_f64() / 60.0,
        config.clients,
        config.ws_clients,
        config.think.as_millis(),
        match tuning {
            Some(Tuning::Applied) => format!(
                "mmap threshold fixed at {} KiB (server::memory)",
                MMAP_THRESHOLD / 1024
            ),
            Some(other) => format!("{other:?} (server::memory)"),
            None => "glibc's defaults (--glibc-defaults)".to_owned(),
        }
    );
    let load = {
        let _entered = rt.enter();
        Load::start(addr, config)
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    println!("{}", header());
    oracle::reset_max();
    let mut tick = started;
    while started.elapsed() < length {
        tick += INTERVAL;
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        let row = Row {
            at: started.elapsed(),
            window: load.recorder.take_window(),
            rss_kib: rss_kib(),
            heap_kib: heap_kib(),
            threads_connected: server
                .global_status("Threads_connected")
                .map(|n| n.saturating_sub(1)) // the sampler's own connection
                .unwrap_or(0),
            in_use: budget.in_use(),
            oracle_peak: oracle::max(),
        };
        oracle::reset_max();
        println!("{}", row_text(&row));
        let _ = std::io::stdout().flush();
        rows.push(row);
    }
    let recorder = rt.block_on(load.stop());
    let tail = recorder.take_window();
    let surprises = recorder.surprises();
    let failures = recorder.failures();

    // With no load: every unit in use must be an idle connection, and the reapers must
    // bring the budget to 0.
    let quiet = Instant::now();
    let mut snap = budget.snapshot();
    while (snap.async_side.active + snap.sync_side.active > 0) && quiet.elapsed() < INTERVAL {
        std::thread::sleep(Duration::from_millis(50));
        snap = budget.snapshot();
    }
    let not_idle = snap
        .in_use
        .saturating_sub(snap.async_side.idle + snap.sync_side.idle);
    let limit = IDLE_TIMEOUT + SYNC_REAPER + Duration::from_secs(5);
    while budget.in_use() > 0 && quiet.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = budget.in_use();
    let drained_in = quiet.elapsed();
    let snap_end = budget.snapshot();
    // Is RSS above the live heap memory the allocator keeps but could give back?
    let idle_rss = (rss_kib(), heap_kib());
    // SAFETY: malloc_trim only returns free memory of malloc's arenas to the system.
    unsafe { libc::malloc_trim(0) };
    let trimmed_rss = rss_kib();
    shutdown.trigger();
    let _ = rt.block_on(running);

    let verdict = Verdict::new(&rows, &tail, not_idle, left, surprises.len());
    let mut out = String::new();
    let _ = writeln!(out, "\n{}", verdict.render(drained_in, &snap_end));
    let _ = writeln!(
        out,
        "idle, before shutdown: RSS {:.1} MiB, heap in use {:.1} MiB; RSS after malloc_trim(0) {:.1} MiB",
        idle_rss.0 as f64 / 1024.0,
        idle_rss.1 as f64 / 1024.0,
        trimmed_rss as f64 / 1024.0
    );
    for s in surprises.iter().take(10) {
        let _ = writeln!(out, "unexpected answer: {s}");
    }
    for f in &failures {
        let _ = writeln!(out, "failed request {f}");
    }
    println!("{out}");
    Ok(verdict.pass())
}

fn machine(server: &Server) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let version = server
        .sql("SELECT VERSION()")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("machine: {cpus} CPUs ({model}), Linux {kernel}; MariaDB {version}")
}

/// `VmRSS` of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes malloc has handed out and not had back (all arenas, mmapped blocks included),
/// in KiB: what the program holds, as opposed to what the allocator keeps mapped.
fn heap_kib() -> u64 {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    ((info.uordblks + info.hblkhd) / 1024) as u64
}

fn header() -> String {
    "|    t | RSS MiB | heap MiB | Threads_connected | budget in use | oracle peak | req/s | p50 ms | p99 ms | max ms | non-2xx | 5xx |\n\
     |-----:|--------:|---------:|------------------:|--------------:|------------:|------:|-------:|-------:|-------:|--------:|----:|"
        .to_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row_text(r: &Row) -> String {
    let w = &r.window;
    format!(
        "| {:>4.0} | {:>7.1} | {:>8.1} | {:>17} | {:>13} | {:>11} | {:>5.0} | {:>6.1} | {:>6.1} | {:>6.0} | {:>7} | {:>3} |",
        r.at.as_secs_f64(),
        r.rss_kib as f64 / 1024.0,
        r.heap_kib as f64 / 1024.0,
        r.threads_connected,
        r.in_use,
        r.oracle_peak,
        w.requests as f64 / INTERVAL.as_secs_f64(),
        ms(w.latencies.quantile(0.5)),
        ms(w.latencies.quantile(0.99)),
        ms(w.latencies.max()),
        w.non_2xx(),
        w.server_errors()
    )
}

struct Verdict {
    rss: (f64, f64),
    heap: (f64, f64),
    connections: (f64, f64),
    peak_connections: i64,
    requests: u64,
    non_2xx: u64,
    server_errors: u64,
    not_idle: u32,
    left: u32,
    surprises: usize,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

impl Verdict {
    fn new(rows: &[Row], tail: &Window, not_idle: u32, left: u32, surprises: usize) -> Verdict {
        let warm = (rows.len() / 10).max(1).min(rows.len().saturating_sub(2));
        let steady = &rows[warm..];
        let (first, second) = steady.split_at(steady.len() / 2);
        let half = |rows: &[Row], f: fn(&Row) -> f64| mean(rows.iter().map(f));
        let rss = |r: &Row| r.rss_kib as f64 / 1024.0;
        let heap = |r: &Row| r.heap_kib as f64 / 1024.0;
        let median_conns = |rows: &[Row]| {
            let mut v: Vec<u64> = rows.iter().map(|r| r.threads_connected).collect();
            v.sort_unstable();
            v.get(v.len() / 2).map_or(0.0, |&n| n as f64)
        };
        let windows = rows.iter().map(|r| &r.window).chain([tail]);
        let (mut requests, mut non_2xx, mut server_errors) = (0, 0, 0);
        for w in windows {
            requests += w.requests;
            non_2xx += w.non_2xx();
            server_errors += w.server_errors();
        }
        Verdict {
            rss: (half(first, rss), half(second, rss)),
            heap: (half(first, heap), half(second, heap)),
            connections: (median_conns(first), median_conns(second)),
            peak_connections: rows.iter().map(|r| r.oracle_peak).max().unwrap_or(0),
            requests,
            non_2xx,
            server_errors,
            not_idle,
            left,
            surprises,
        }
    }

    fn rss_ok(&self) -> bool {
        let (a, b) = self.rss;
        b <= a * 1.05 || b - a <= 2.0
    }

    fn connections_ok(&self) -> bool {
        let (a, b) = self.connections;
        (b <= a * 1.10 || b - a <= 2.0) && self.peak_connections <= i64::from(BUDGET)
    }

    fn pass(&self) -> bool {
        self.rss_ok()
            && self.connections_ok()
            && self.server_errors == 0
            && self.not_idle == 0
            && self.left == 0
            && self.surprises == 0
    }

    fn render(&self, drained_in: Duration, end: &db_budget::Snapshot) -> String {
        let ok = |b: bool| if b { "ok" } else { "FAIL" };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "- RSS: mean {:.1} MiB in the first half, {:.1} MiB in the second ({:+.1} %): {}",
            self.rss.0,
            self.rss.1,
            (self.rss.1 / self.rss.0.max(f64::MIN_POSITIVE) - 1.0) * 100.0,
            ok(self.rss_ok())
        );
        let _ = writeln!(
            s,
            "- heap in use (malloc): mean {:.1} MiB in the first half, {:.1} MiB in the second ({:+.1} %)",
            self.heap.0,
            self.heap.1,
            (self.heap.1 / self.heap.0.max(f64::MIN_POSITIVE) - 1.0) * 100.0,
        );
        let _ = writeln!(
            s,
            "- physical connections: Threads_connected median {:.0} in the first half, {:.0} in the second; \
             exact peak (oracle) {} for a budget of {BUDGET}: {}",
            self.connections.0,
            self.connections.1,
            self.peak_connections,
            ok(self.connections_ok())
        );
        let _ = writeln!(
            s,
            "- requests: {}; non-2xx {}; 5xx/broken/timed out {}; unexpected answers {}: {}",
            self.requests,
            self.non_2xx,
            self.server_errors,
            self.surprises,
            ok(self.server_errors == 0 && self.surprises == 0)
        );
        let _ = writeln!(
            s,
            "- stuck units: {} in use but not idle once the load stopped; {} still in use after {:.1} s \
             (idle timeout {} s + r2d2 reaper {} s): {}",
            self.not_idle,
            self.left,
            drained_in.as_secs_f64(),
            IDLE_TIMEOUT.as_secs(),
            SYNC_REAPER.as_secs(),
            ok(self.not_idle == 0 && self.left == 0)
        );
        let leaks = end.async_side.leaks_suspected_total + end.sync_side.leaks_suspected_total;
        let timeouts = end.async_side.acquire_timeouts_total + end.sync_side.acquire_timeouts_total;
        let opened = end.async_side.opened_total + end.sync_side.opened_total;
        let _ = writeln!(
            s,
            "- pools: {opened} connections opened in all, {timeouts} acquire timeouts, {leaks} suspected leaks"
        );
        let _ = write!(s, "verdict: {}", if self.pass() { "PASS" } else { "FAIL" });
        s
    }
}
