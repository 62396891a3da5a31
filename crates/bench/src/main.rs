//! `cargo xtask bench`: the budgeted pools measured side by side with raw sqlx, raw r2d2,
//! the legacy connect-per-call pattern and sysbench, on one private MariaDB, in one run.
//! Writes BENCHMARKS.md (and docs/scale-curve.svg) and prints the same: sections 1 to 6
//! (`report`), sections 7 and 8 kept from the file (`bench handover` and `bench
//! bulkheads` write them), section 9 (`timeout`: the statement timeout on vs off). `--only SECTION` runs one section and
//! prints it, writing nothing.
//!
//! The process re-runs itself under the connection oracle (an LD_PRELOAD shim), so the
//! peak number of physical connections is exact, not sampled.
//!
//! `bench fleet` (`cargo xtask fleet`) is apart: issue 15's simulation of several server
//! processes sharing one fleet budget, written to FLEET.md ([`fleet`]).

mod bulkheads;
mod cpu;
mod e2e;
mod fleet;
mod handover;
mod handover_md;
mod instructions;
mod loadtest;
mod measure;
mod report;
mod runs;
mod shedding;
mod soak;
mod svg;
mod sysbench;
mod timeout;

use std::process::{Command, ExitCode};
use std::time::Duration;

use mariadb_harness::{Server, ServerOptions, oracle};

use crate::measure::Timing;

/// The query every benchmark runs: sysbench's point select.
pub const SQL: &str = "SELECT c FROM sbtest1 WHERE id = ?";
pub const ROWS: u64 = 10_000;
/// `MAX_CONNECTIONS` for the budgeted pools, and `max_connections` of the raw pools.
pub const BUDGET: u32 = 20;
/// The sections `--only` accepts, in the order a full run measures them.
pub const SECTIONS: [&str; 7] = [
    "async", "sync", "mixed", "sysbench", "scale", "e2e", "timeout",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub timing: Timing,
    pub reps: usize,
    pub out: Option<std::path::PathBuf>,
    /// Run one section only (and write nothing): one of [`SECTIONS`].
    pub only: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        timing: Timing {
            warmup: Duration::from_millis(300),
            measure: Duration::from_secs(2),
        },
        reps: 3,
        out: Some(workspace_root().join("BENCHMARKS.md")),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                o.timing = Timing {
                    warmup: Duration::from_millis(100),
                    measure: Duration::from_millis(400),
                };
                o.reps = 1;
            }
            "--reps" => {
                o.reps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--reps takes a number")?
            }
            "--no-write" => o.out = None,
            "--only" => {
                let section = args.next().ok_or("--only takes a section name")?;
                if !SECTIONS.contains(&section.as_str()) {
                    return Err(format!(
                        "unknown section {section:?} (accepted: {})",
                        SECTIONS.join(", ")
                    ));
                }
                o.only = Some(section);
                o.out = None;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (accepted: --quick, --reps N, --no-write, --only SECTION)"
                ));
            }
        }
    }
    Ok(o)
}

pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> ExitCode {
    // The fleet's instances run under the oracle, not this process.
    if std::env::args().nth(1).as_deref() == Some("fleet") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return match fleet::main(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The client whose instructions section 9 counts runs under callgrind, not the oracle.
    if std::env::args().nth(1).as_deref() == Some("instructions-client") {
        let url = std::env::args().nth(2).unwrap_or_default();
        return match instructions::client_main(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !oracle::is_active() {
        return rerun_under_oracle();
    }
    if std::env::args().nth(1).as_deref() == Some("loadtest") {
        let secs = std::env::args()
            .skip_while(|a| a != "--secs")
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        return match loadtest::main(secs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::args().nth(1).as_deref() == Some("handover") {
        return handover_main();
    }
    if std::env::args().nth(1).as_deref() == Some("bulkheads") {
        return bulkheads_main();
    }
    if std::env::args().nth(1).as_deref() == Some("soak") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return match soak::main(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runs::all(&opts) {
        Ok(rep) => {
            if opts.only.as_deref() == Some("timeout") {
                println!("{}", timeout::render(&rep.timeout));
                return ExitCode::SUCCESS;
            }
            if let Some(only) = &opts.only {
                println!("{}", report::section(&report::render(&rep), only));
                return ExitCode::SUCCESS;
            }
            let own = report::render(&rep);
            let timeout = timeout::render(&rep.timeout);
            println!("{}\n\n{timeout}", own.trim_end());
            if let Some(path) = &opts.out {
                let svg = workspace_root().join("docs/scale-curve.svg");
                // Sections 7 and 8 come from `bench handover` and `bench bulkheads`; a
                // full run keeps them, between its own sections 1 to 6 and 9.
                let old = std::fs::read_to_string(path).unwrap_or_default();
                let text = handover_md::assemble(
                    &own,
                    &old,
                    &[handover_md::HEADING, bulkheads::HEADING],
                    (timeout::HEADING, &timeout),
                );
                let written = std::fs::create_dir_all(workspace_root().join("docs"))
                    .and_then(|()| std::fs::write(&svg, report::scale_svg(&rep)))
                    .and_then(|()| std::fs::write(path, &text));
                if let Err(e) = written {
                    eprintln!("error: could not write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("wrote {} and {}", path.display(), svg.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `bench handover [--secs N] [--no-write]`: section 7 of BENCHMARKS.md.
fn handover_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let secs = match args.iter().position(|a| a == "--secs") {
        Some(i) => match args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
        {
            Some(n) => n,
            None => {
                eprintln!("error: --secs takes a number of seconds");
                return ExitCode::from(2);
            }
        },
        None => 30,
    };
    let report = match handover::run(secs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let section = handover_md::render(&report, secs);
    println!("{section}");
    if args.iter().any(|a| a == "--no-write") {
        return ExitCode::SUCCESS;
    }
    let path = workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, handover_md::splice(&old, &section)) {
        eprintln!("error: could not write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote section 7 of {}", path.display());
    ExitCode::SUCCESS
}

/// `bench bulkheads [--secs N] [--reps N] [--no-write]`: section 8 of BENCHMARKS.md.
fn bulkheads_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let number = |flag: &str, default: u64| -> Result<u64, String> {
        match args.iter().position(|a| a == flag) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or(format!("{flag} takes a positive number")),
            None => Ok(default),
        }
    };
    for a in &args {
        if a.starts_with("--") && !matches!(a.as_str(), "--secs" | "--reps" | "--no-write") {
            eprintln!("error: unknown argument {a:?} (accepted: --secs N, --reps N, --no-write)");
            return ExitCode::from(2);
        }
    }
    let (secs, reps) = match (number("--secs", 10), number("--reps", 3)) {
        (Ok(s), Ok(r)) => (s, r as usize),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match bulkheads::run(secs, reps) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let section = bulkheads::render(&report);
    println!("{section}");
    if args.iter().any(|a| a == "--no-write") {
        return ExitCode::SUCCESS;
    }
    let path = workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = handover_md::splice_section(&old, bulkheads::HEADING, &section);
    if let Err(e) = std::fs::write(&path, new) {
        eprintln!("error: could not write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote section 8 of {}", path.display());
    ExitCode::SUCCESS
}

/// Starts this program again with the oracle shim preloaded.
fn rerun_under_oracle() -> ExitCode {
    if std::env::var_os("BENCH_UNDER_ORACLE").is_some() {
        eprintln!("error: the connection oracle shim did not load");
        return ExitCode::FAILURE;
    }
    let shim = match oracle::shim_library() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot build the connection oracle shim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("LD_PRELOAD", shim)
            .env("BENCH_UNDER_ORACLE", "1")
            .status()
    });
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The benchmark server: private, with room for connect-per-call at 256 tasks.
pub fn start_server() -> Result<(Server, String), String> {
    let server = Server::start(ServerOptions {
        max_connections: 700,
        ..Default::default()
    })
    .map_err(|e| format!("cannot start a private MariaDB: {e}"))?;
    oracle::watch(server.port(), Some(server.socket_path()));
    let db = server.create_database("bench").map_err(|e| e.to_string())?;
    sysbench::ensure_installed()?;
    sysbench::prepare(&server, &db)?;
    Ok((server, db))
}
