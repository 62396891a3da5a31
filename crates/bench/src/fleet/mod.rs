//! `cargo xtask fleet`: issue 15's simulation of a fleet of server instances sharing
//! one connection budget, side by side with the static split. Writes FLEET.md and
//! docs/fleet.svg, and prints the report.
//!
//! # What runs
//!
//! One private MariaDB ([`Shape::full`]: `max_connections` 40, the application's
//! account fenced at `MAX_USER_CONNECTIONS` 30) behind a relay that delays every
//! packet ([`proxy`]); the real `server` binary as child processes ([`instance`]),
//! each under the exact connection oracle ([`oracle`]); `crates/loadgen`'s players in
//! slices that the schedule moves between instances ([`shape`]); a sampler of the
//! server's counters and every instance's budget every 100 ms ([`sampler`]). Each
//! repetition runs the schedule once with the fleet budget and once with the static
//! split ([`run`]), alternating which goes first; [`figures`] adds up what they
//! recorded, [`report`] writes it down, [`plot`] draws it.
//!
//! # Knobs
//!
//! `--phase-secs N` (7), `--reps N` (3), `--latency-ms N` (2, each way; 0 connects the
//! instances to the server directly), `--clients N` (players per slice, 10),
//! `--think-ms N` (100), `--only elastic|static` (one mode, nothing written),
//! `--no-write`, `--summary PATH` (JSON for tests), `--keep-files` (instance logs, oracle
//! files, the samples and the relay's log of every connection as CSV), `--peaks` (with
//! `--keep-files`: the server's process list whenever its count is above the fence,
//! [`peaks`]; one more root session, polling every 2 ms), `--tiny` (the test's two-instance version, elastic
//! only, nothing written), `--server-bin PATH` (required; `cargo xtask fleet` builds it).

mod clock;
mod figures;
mod instance;
mod oracle;
mod peaks;
mod plot;
mod proxy;
mod report;
mod run;
mod sampler;
mod shape;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mariadb_harness::{Server, ServerOptions};
use r2d2_mysql::mysql::prelude::Queryable;

use crate::workspace_root;
use shape::{Mode, Shape};

#[derive(Debug, Clone)]
struct Options {
    server_bin: Option<PathBuf>,
    phase_secs: u64,
    reps: usize,
    latency_ms: u64,
    slice_clients: usize,
    think_ms: u64,
    tiny: bool,
    /// One mode only (nothing written).
    only: Option<Mode>,
    write: bool,
    summary: Option<PathBuf>,
    keep_files: bool,
    peaks: bool,
}

const USAGE: &str = "accepted: --server-bin PATH, --phase-secs N, --reps N, --latency-ms N, \
                     --clients N, --think-ms N, --only elastic|static, --tiny, --no-write, \
                     --summary PATH, --keep-files, --peaks";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        server_bin: None,
        phase_secs: 7,
        reps: 3,
        latency_ms: 2,
        slice_clients: 10,
        think_ms: 100,
        tiny: false,
        only: None,
        write: true,
        summary: None,
        keep_files: false,
        peaks: false,
    };
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{what} takes a value ({USAGE})"))
        };
        let number = |what: &str, v: String, zero: bool| {
            v.parse::<u64>()
                .ok()
                .filter(|n| zero || *n > 0)
                .ok_or_else(|| {
                    format!(
                        "{what} takes a {}number, not {v:?}",
                        if zero { "" } else { "positive " }
                    )
                })
        };
        match a.as_str() {
            "--server-bin" => o.server_bin = Some(PathBuf::from(value(a)?)),
            "--phase-secs" => o.phase_secs = number(a, value(a)?, false)?,
            "--reps" => o.reps = number(a, value(a)?, false)? as usize,
            "--latency-ms" => o.latency_ms = number(a, value(a)?, true)?,
            "--clients" => o.slice_clients = number(a, value(a)?, false)? as usize,
            "--think-ms" => o.think_ms = number(a, value(a)?, true)?,
            "--tiny" => o.tiny = true,
            "--only" => {
                o.only = Some(match value(a)?.as_str() {
                    "elastic" => Mode::Elastic,
                    "static" => Mode::Static,
                    v => return Err(format!("--only takes elastic or static, not {v:?}")),
                });
                o.write = false;
            }
            "--no-write" => o.write = false,
            "--summary" => o.summary = Some(PathBuf::from(value(a)?)),
            "--keep-files" => o.keep_files = true,
            "--peaks" => {
                o.peaks = true;
                o.keep_files = true;
            }
            other => return Err(format!("unknown argument {other:?} ({USAGE})")),
        }
    }
    if o.tiny {
        o.write = false;
        o.reps = 1;
    }
    Ok(o)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Runs the simulation.
///
/// # Errors
///
/// Bad arguments, or a part that could not be set up (the server, an instance).
pub fn main(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let binary = o.server_bin.clone().ok_or(
        "--server-bin PATH is required (cargo xtask fleet builds the server and passes it)",
    )?;
    let shape = if o.tiny {
        Shape::tiny()
    } else {
        Shape::full(Duration::from_secs(o.phase_secs), o.slice_clients)
    };
    let modes: Vec<Mode> = match (o.tiny, o.only) {
        (true, _) => vec![Mode::Elastic],
        (false, Some(m)) => vec![m],
        (false, None) => vec![Mode::Elastic, Mode::Static],
    };
    let began = Instant::now();
    let load_before = load_average();
    let server = Server::start(ServerOptions {
        max_connections: shape.max_connections,
        ..Default::default()
    })
    .map_err(|e| format!("cannot start a private MariaDB: {e}"))?;
    let mut root = sampler::root_session(&server)?;
    root.query_drop(format!(
        "CREATE USER '{}'@'%' IDENTIFIED BY '{}' WITH MAX_USER_CONNECTIONS {}",
        run::USER,
        run::PASSWORD,
        shape.fleet_budget
    ))
    .map_err(|e| format!("cannot create the application's account: {e}"))?;
    drop(root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let direct: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let proxy = if o.latency_ms > 0 {
        Some(
            proxy::Proxy::start(&rt, direct, Duration::from_millis(o.latency_ms))
                .map_err(|e| format!("cannot start the relay: {e}"))?,
        )
    } else {
        None
    };
    let db_addr = proxy.as_ref().map_or(direct, |p| p.addr);
    let dir = std::env::temp_dir()
        .join("fleet-sim")
        .join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let env = run::Env {
        server: &server,
        rt: &rt,
        db_addr,
        proxy: proxy.as_ref(),
        peaks: o.peaks,
        binary: &binary,
        dir: &dir,
        think: Duration::from_millis(o.think_ms),
    };
    let total = o.reps * modes.len();
    let mut runs = Vec::new();
    for rep in 0..o.reps {
        let mut order = modes.clone();
        if rep % 2 == 1 {
            order.reverse();
        }
        for mode in order {
            wait_for_quiet(&server)?;
            let progress = run::Progress {
                run: runs.len(),
                runs: total,
            };
            let result = run::run(&env, &shape, mode, rep, progress).map_err(|e| {
                format!(
                    "{e}\n(instance logs and oracle files are kept in {})",
                    dir.display()
                )
            })?;
            runs.push(result);
        }
    }
    let figs: Vec<figures::Figures> = runs
        .iter()
        .map(|r| figures::figures(r, shape.fleet_budget))
        .collect();
    let setup = report::Setup {
        command: if o.tiny {
            "cargo xtask fleet --tiny".into()
        } else {
            "cargo xtask fleet".into()
        },
        latency_ms: o.latency_ms as f64,
        think_ms: o.think_ms,
        reps: o.reps,
        load_before,
        load_after: load_average(),
        minutes: began.elapsed().as_secs_f64() / 60.0,
    };
    let text = report::render(&shape, &setup, &runs, &figs) + &knobs();
    println!("{text}");
    if let Some(path) = &o.summary {
        let json = report::summary(&shape, &runs, &figs);
        std::fs::write(path, json.to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if o.write {
        let root = workspace_root();
        let svg_path = root.join("docs/fleet.svg");
        let series: Vec<(Mode, figures::Series, Vec<plot::Event>)> = [Mode::Elastic, Mode::Static]
            .into_iter()
            .filter_map(|m| runs.iter().find(|r| r.mode == m))
            .map(|r| (r.mode, figures::series(r), events(&shape, r)))
            .collect();
        let panels: Vec<plot::Panel<'_>> = series
            .iter()
            .map(|(m, s, e)| plot::Panel {
                title: {
                    let (max, n, fleet) = shape.settings(*m);
                    match m {
                        Mode::Elastic => format!(
                            "elastic: DB_FLEET_BUDGET={fleet}, MAX_CONNECTIONS={max} (run 1)"
                        ),
                        Mode::Static => {
                            format!("static: DB_INSTANCES={n} × MAX_CONNECTIONS={max} (run 1)")
                        }
                    }
                },
                series: s,
                events: e.clone(),
            })
            .collect();
        std::fs::create_dir_all(root.join("docs"))
            .and_then(|()| std::fs::write(&svg_path, plot::svg(&panels, shape.fleet_budget)))
            .and_then(|()| std::fs::write(root.join("FLEET.md"), &text))
            .map_err(|e| format!("cannot write FLEET.md or {}: {e}", svg_path.display()))?;
        eprintln!("wrote FLEET.md and {}", svg_path.display());
    }
    if !o.keep_files {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("instance logs and oracle files: {}", dir.display());
    }
    Ok(())
}

/// The plot's markers: every phase after the first.
fn events(shape: &Shape, run: &run::RunResult) -> Vec<plot::Event> {
    shape
        .phases
        .iter()
        .zip(&run.phases)
        .skip(1)
        .map(|(p, r)| {
            let colour = if p
                .actions
                .iter()
                .any(|a| matches!(a, shape::Action::Kill(_)))
            {
                "#d62728"
            } else if p
                .actions
                .iter()
                .any(|a| matches!(a, shape::Action::Start(_)))
            {
                "#2ca02c"
            } else {
                "#555555"
            };
            plot::Event {
                t: r.start,
                label: p.label.split(';').next().unwrap_or(p.label).to_owned(),
                colour,
            }
        })
        .collect()
}

/// Waits until the application's account has no session left (the previous run's
/// instances are gone), at most 20 s.
fn wait_for_quiet(server: &Server) -> Result<(), String> {
    let mut conn = sampler::root_session(server)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let s = sampler::status(&mut conn, run::USER).map_err(|e| e.to_string())?;
        if s.app_sessions == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the previous run's sessions did not end within 20 s".into())
}

fn knobs() -> String {
    "## Knobs\n\n\
     `cargo xtask fleet [--phase-secs N] [--reps N] [--latency-ms N] [--clients N] [--think-ms N] \
     [--only elastic|static] [--no-write] [--keep-files] [--peaks]`: a phase's length (default 7 s; a \
     run is five phases, plus the instances' starts), the repetitions (3), the database's \
     distance each way (2 ms; 0: no relay), players per slice (10; ten slices) and their \
     mean think time (100 ms); one mode only (nothing written); the instances' logs, oracle \
     files, samples and the relay's log of connections (CSV) kept; `--peaks` adds the \
     server's process list whenever its count is above the fence (peaks.csv, a diagnosis: \
     one more root session, polling every 2 ms). A longer, steadier run: `--phase-secs 30 --reps 5` \
     (about half an hour). `--tiny` is the test's version (two instances, a few seconds, \
     elastic only).\n"
        .into()
}
