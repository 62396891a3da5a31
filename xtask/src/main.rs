//! Repository automation, rust-analyzer style: one binary, one module per
//! task, arguments parsed by hand. Run as `cargo xtask <task> [args]`.

use std::process::ExitCode;

mod bench;
mod db;
mod run;
mod sync_usage;
mod test;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  sync-usage   count uses of the blocking db-sync API; ratchet them down
               (--check, --update; see `cargo xtask sync-usage --help`)
  test         run every test of the workspace (nextest when installed)
  run          run the server (against DATABASE_URL, or a private MariaDB it starts)
  db           up|down|status|url|shell: the private development MariaDB (target/dev-db)
  bench        benchmarks side by side, release build; writes BENCHMARKS.md
  loadtest     the 1040 outage before and after (--secs N, default 30); writes LOADTEST.md
  soak         the fault tests' load for a long time (--minutes N, default 10): RSS,
               connections, requests/s and p99 every 10 s, and a verdict
               (--glibc-defaults: without the server binary's malloc setting)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match task.as_str() {
        "sync-usage" => sync_usage::run(&args[1..]),
        "test" => test::run(&args[1..]),
        "run" => run::run(&args[1..]),
        "db" => db::run(&args[1..]),
        "bench" => bench::run(&args[1..]),
        "loadtest" => {
            let mut a = vec!["loadtest".to_owned()];
            a.extend_from_slice(&args[1..]);
            bench::run(&a)
        }
        "soak" => {
            let mut a = vec!["soak".to_owned()];
            a.extend_from_slice(&args[1..]);
            bench::run(&a)
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("error: unknown task `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root (xtask's parent directory).
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
