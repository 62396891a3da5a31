//! `cargo xtask sync-usage`: counts the remaining uses of the blocking
//! `db-sync` API and keeps the count from going back up (a per-file ratchet
//! recorded in `xtask/sync-usage-baseline.json`).

mod baseline;
mod bindings;
mod manifest;
mod report;
mod resolve;
mod scan;
mod types;
mod visitor;
mod workspace;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use baseline::Baseline;

pub const USAGE: &str = "\
usage: cargo xtask sync-usage [--check | --update [--allow-increase]] [--json]
                              [--root <dir>] [--baseline <file>]

Lists every use of the blocking db-sync API (imports, calls, types, fn
signatures taking/returning the DbConnection guard, uses inside macros,
methods called on blocking values and fields holding them),
grouped per crate and file, with the migration progress against the baseline.
Blocking values are followed through their types: methods called on a
SyncPool, DbConnection or Tx (a typed parameter or let, a struct field such as
`state.sync_pool`, what a function returns) count, and so does a field holding
one. Uses in #[cfg(test)] code and under tests/ directories are listed
separately and not counted. A file whose module docs carry the marker
`sync-usage: infrastructure (why)` (it builds, wires, probes or closes the
pool itself) is listed apart with its count, and the baseline records it: a
new opt-out, or more uses in an opted-out file, fails --check like any rise.

  --check            exit 1 if any file has more uses than the baseline
                     (a file missing from the baseline counts as 0), or
                     more opted-out uses (a newly marked file included)
  --update           rewrite the baseline with the current counts; refuses
                     to raise any count (or record a new opt-out) unless
                     --allow-increase
  --allow-increase   with --update: accept counts going up
  --json             print a machine-readable JSON document instead of text
  --root <dir>       workspace to scan (default: the workspace around the
                     current directory, found at run time)
  --baseline <file>  baseline file (default: <root>/xtask/sync-usage-baseline.json)";

const DEFAULT_BASELINE: &str = "xtask/sync-usage-baseline.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Report,
    Check,
    Update,
}

#[derive(Debug)]
struct Options {
    mode: Mode,
    allow_increase: bool,
    json: bool,
    /// `None`: the workspace around the current directory.
    root: Option<PathBuf>,
    baseline: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        mode: Mode::Report,
        allow_increase: false,
        json: false,
        root: None,
        baseline: None,
    };
    let mut mode = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let new_mode = match arg.as_str() {
            "--check" => Some(Mode::Check),
            "--update" => Some(Mode::Update),
            "--allow-increase" => {
                opts.allow_increase = true;
                None
            }
            "--json" => {
                opts.json = true;
                None
            }
            "--root" => {
                opts.root = Some(PathBuf::from(value("--root")?));
                None
            }
            "--baseline" => {
                opts.baseline = Some(PathBuf::from(value("--baseline")?));
                None
            }
            other => return Err(format!("unknown argument `{other}`")),
        };
        if let Some(m) = new_mode {
            if mode.is_some_and(|old| old != m) {
                return Err("--check and --update are exclusive".into());
            }
            mode = Some(m);
        }
    }
    opts.mode = mode.unwrap_or(Mode::Report);
    if opts.allow_increase && opts.mode != Mode::Update {
        return Err("--allow-increase only goes with --update".into());
    }
    Ok(opts)
}

pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match execute(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn execute(opts: &Options) -> Result<ExitCode, String> {
    let root = match &opts.root {
        Some(r) => r.clone(),
        None => crate::root().map_err(|e| crate::error_chain(&e))?,
    };
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let baseline_path = opts
        .baseline
        .clone()
        .unwrap_or_else(|| root.join(DEFAULT_BASELINE));
    let ws = workspace::discover(&root).map_err(|e| format!("scanning {}: {e}", root.display()))?;
    let scanned = scan::scan(&ws);
    for e in &scanned.errors {
        eprintln!("warning: could not parse {e}");
    }
    let counts = count_per_file(&scanned.findings);
    let infra_counts = infrastructure_per_file(&scanned);
    let base = baseline::load(&baseline_path)?;
    let (rose, fell) = baseline::compare(&counts, base.as_ref().map(|b| &b.files));
    let (infra_rose, infra_fell) =
        baseline::compare(&infra_counts, base.as_ref().map(|b| &b.infrastructure));
    let changes = report::Changes {
        rose: &rose,
        fell: &fell,
        infra_rose: &infra_rose,
        infra_fell: &infra_fell,
    };
    let ctx = report::Context {
        root: &root,
        baseline_path: &baseline_path,
        baseline: base.as_ref(),
        scanned: &scanned,
        counts: &counts,
        infra_counts: &infra_counts,
    };

    match opts.mode {
        Mode::Report => {
            if opts.json {
                println!("{}", report::json(&ctx, None));
            } else {
                print!("{}", report::text(&ctx));
            }
            Ok(ExitCode::SUCCESS)
        }
        Mode::Check => {
            let ok = changes.none_rose();
            if opts.json {
                let result = report::json_result("check", ok, &changes, false);
                println!("{}", report::json(&ctx, Some(result)));
            } else if ok {
                print!("{}", report::check_ok(&ctx, &changes));
            } else {
                eprint!("{}", report::check_failed(&ctx, &changes));
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Mode::Update => {
            let refuse = base.is_some() && !changes.none_rose() && !opts.allow_increase;
            if !refuse {
                let total: usize = counts.values().sum();
                let new = Baseline {
                    first_total: base.as_ref().map_or(total, |b| b.first_total),
                    files: counts
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(f, n)| (f.clone(), *n))
                        .collect(),
                    infrastructure: infra_counts.clone(),
                };
                baseline::save(&baseline_path, &new)?;
            }
            if opts.json {
                let result = report::json_result("update", !refuse, &changes, !refuse);
                println!("{}", report::json(&ctx, Some(result)));
            } else if refuse {
                eprint!("{}", report::update_refused(&ctx, &changes));
            } else {
                print!("{}", report::updated(&ctx, &changes));
            }
            Ok(if refuse {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Non-test uses to port, per file (files with only test or opted-out uses
/// appear with 0).
fn count_per_file(findings: &[scan::Finding]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.file.clone()).or_insert(0) += usize::from(!f.test && !f.infrastructure);
    }
    counts
}

/// Non-test uses of every file that opted out with the infrastructure
/// marker (a marked file without uses appears with 0).
fn infrastructure_per_file(scanned: &scan::ScanOutput) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = scanned
        .markers
        .iter()
        .map(|m| (m.file.clone(), 0))
        .collect();
    for f in &scanned.findings {
        if f.infrastructure && !f.test {
            *counts.entry(f.file.clone()).or_insert(0) += 1;
        }
    }
    counts
}
