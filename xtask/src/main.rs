//! Repository automation, rust-analyzer style: one binary, one module per
//! task, arguments parsed by hand. Run as `cargo xtask <task> [args]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench;
mod db;
mod fleet;
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
               (--quick, --reps N, --no-write; --only async|sync|mixed|sysbench|scale|
               e2e|timeout: one section, printed, nothing written;
               `bench handover [--secs N]`: only section 7, the hand-over policies;
               `bench bulkheads [--secs N] [--reps N]`: only section 8, bulkheads)
  loadtest     the 1040 outage before and after (--secs N, default 30); writes LOADTEST.md
  fleet        several server processes sharing one DB_FLEET_BUDGET against the static
               split: kill -9, a surge, the hot spot moving; writes FLEET.md and
               docs/fleet.svg (--phase-secs N, --reps N, --latency-ms N, --clients N,
               --think-ms N, --only elastic|static, --no-write, --keep-files)
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
        "fleet" => fleet::run(&args[1..]),
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

/// The workspace root, found at run time: the nearest directory, from the
/// current one upwards, whose `Cargo.toml` has a `[workspace]` table (cargo
/// runs `cargo xtask` with the caller's current directory). Never the
/// directory xtask was compiled in: with a shared target directory one
/// binary can serve several checkouts.
///
/// # Errors
///
/// The current directory cannot be read, or neither it nor any parent holds
/// a workspace manifest.
pub(crate) fn root() -> Result<PathBuf, RootError> {
    let cwd = std::env::current_dir().map_err(RootError::CurrentDir)?;
    workspace_root_from(&cwd)
}

/// [`root`], starting from `start` instead of the current directory.
///
/// # Errors
///
/// As [`root`].
pub(crate) fn workspace_root_from(start: &Path) -> Result<PathBuf, RootError> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        match std::fs::read_to_string(&manifest) {
            Ok(text) if has_workspace_table(&text) => return Ok(dir.to_path_buf()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RootError::Read(manifest, e)),
        }
    }
    Err(RootError::NoWorkspace(start.to_path_buf()))
}

/// Why [`root`] found no workspace.
#[derive(Debug)]
pub(crate) enum RootError {
    CurrentDir(std::io::Error),
    Read(PathBuf, std::io::Error),
    NoWorkspace(PathBuf),
}

impl std::fmt::Display for RootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootError::CurrentDir(_) => write!(f, "cannot read the current directory"),
            RootError::Read(p, _) => write!(f, "cannot read {}", p.display()),
            RootError::NoWorkspace(start) => write!(
                f,
                "no Cargo.toml with a [workspace] table in {} or any parent: run from inside \
                 the workspace (or pass --root where the task takes one)",
                start.display()
            ),
        }
    }
}

impl std::error::Error for RootError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RootError::CurrentDir(e) | RootError::Read(_, e) => Some(e),
            RootError::NoWorkspace(_) => None,
        }
    }
}

/// The error and its sources, for a one-line message.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Whether a manifest declares a workspace (a `[workspace]` header, or any
/// `[workspace.*]` table, which implies one).
fn has_workspace_table(manifest: &str) -> bool {
    manifest.lines().any(|line| {
        let line = line.trim_start();
        line.strip_prefix('[')
            .map(|rest| rest.trim_start())
            .and_then(|rest| rest.strip_prefix("workspace"))
            .is_some_and(|rest| rest.trim_start().starts_with([']', '.']))
    })
}

#[cfg(test)]
mod tests {
    use super::has_workspace_table;

    #[test]
    fn a_workspace_manifest_is_recognised_by_its_tables() {
        assert!(has_workspace_table("[workspace]\nmembers = []\n"));
        assert!(has_workspace_table(
            "[package]\nname = \"a\"\n\n[ workspace ]\n"
        ));
        assert!(has_workspace_table("[workspace.dependencies]\nx = \"1\"\n"));
        assert!(!has_workspace_table(
            "[package]\nname = \"a\"\nworkspace = \"..\"\n"
        ));
        assert!(!has_workspace_table("[workspaces]\n"));
    }
}
