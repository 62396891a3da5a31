//! Text and JSON output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::baseline::{Baseline, Change};
use super::scan::{Finding, INFRASTRUCTURE_MARKER, ScanOutput};
use super::workspace::rel_path;

const FIX: &str = "fix: port it to db-async; see MIGRATION.md\n     \
                   or, if this is intended: `cargo xtask sync-usage --update --allow-increase`\n";

const INFRA_FIX: &str = "fix: remove the marker and port the uses to db-async (see MIGRATION.md):\n     \
                         only code that builds, wires, probes or closes the blocking pool itself\n     \
                         may opt out. If this file is that: `cargo xtask sync-usage --update \
                         --allow-increase`\n     \
                         records it in the baseline's \"infrastructure\" section, for review\n";

/// How the counts moved against the baseline.
pub struct Changes<'a> {
    /// Uses to port.
    pub rose: &'a [Change],
    pub fell: &'a [Change],
    /// Opted-out uses.
    pub infra_rose: &'a [Change],
    pub infra_fell: &'a [Change],
}

impl Changes<'_> {
    pub fn none_rose(&self) -> bool {
        self.rose.is_empty() && self.infra_rose.is_empty()
    }
}

pub struct Context<'a> {
    pub root: &'a Path,
    pub baseline_path: &'a Path,
    pub baseline: Option<&'a Baseline>,
    pub scanned: &'a ScanOutput,
    /// Non-test uses to port, per file.
    pub counts: &'a BTreeMap<String, usize>,
    /// Non-test uses of each file that opted out (every marked file).
    pub infra_counts: &'a BTreeMap<String, usize>,
}

impl Context<'_> {
    fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn test_total(&self) -> usize {
        self.scanned.findings.iter().filter(|f| f.test).count()
    }

    fn infra_total(&self) -> usize {
        self.infra_counts.values().sum()
    }

    fn marker_line(&self, file: &str) -> Option<usize> {
        self.scanned
            .markers
            .iter()
            .find(|m| m.file == file)
            .map(|m| m.line)
    }

    fn baseline_display(&self) -> String {
        if self.baseline_path.starts_with(self.root) {
            rel_path(self.root, self.baseline_path)
        } else {
            self.baseline_path.display().to_string()
        }
    }

    /// `(overall %, % since the last --update)`, relative to `first_total`.
    fn migrated(&self) -> Option<(f64, f64)> {
        let b = self.baseline?;
        if b.first_total == 0 {
            return None;
        }
        let first = b.first_total as f64;
        let now = self.total() as f64;
        Some((
            (first - now) / first * 100.0,
            (b.total() as f64 - now) / first * 100.0,
        ))
    }

    /// The counted (non-test) findings of a file: its uses to port, or its
    /// opted-out uses.
    fn findings_of(&self, file: &str) -> impl Iterator<Item = &Finding> {
        self.scanned
            .findings
            .iter()
            .filter(move |f| f.file == file && !f.test)
    }
}

/// A file and its findings.
type FileGroup = (String, Vec<Finding>);
/// A crate and its files.
type CrateGroup = (String, Vec<FileGroup>);

/// Findings grouped by crate, then file (input is sorted that way).
fn group(findings: &[&Finding]) -> Vec<CrateGroup> {
    let mut out: Vec<CrateGroup> = Vec::new();
    for f in findings {
        if out.last().is_none_or(|(c, _)| *c != f.krate) {
            out.push((f.krate.clone(), Vec::new()));
        }
        let files = &mut out.last_mut().expect("pushed above").1;
        if files.last().is_none_or(|(p, _)| *p != f.file) {
            files.push((f.file.clone(), Vec::new()));
        }
        files.last_mut().expect("pushed above").1.push((*f).clone());
    }
    out
}

fn write_groups(out: &mut String, findings: &[&Finding]) {
    for (krate, files) in group(findings) {
        let n: usize = files.iter().map(|(_, f)| f.len()).sum();
        let _ = writeln!(out, "{krate} ({n})");
        for (file, fs) in files {
            let _ = writeln!(out, "  {file} ({})", fs.len());
            let fn_width = fs.iter().map(|f| f.function.len()).max().unwrap_or(0);
            for f in fs {
                let _ = writeln!(
                    out,
                    "    {:>5}  {:<fn_width$}  {:<9}  {}",
                    f.line,
                    f.function,
                    f.kind.as_str(),
                    f.text
                );
            }
        }
    }
}

pub fn text(ctx: &Context<'_>) -> String {
    let mut out = String::new();
    let counted: Vec<&Finding> = ctx
        .scanned
        .findings
        .iter()
        .filter(|f| !f.test && !f.infrastructure)
        .collect();
    let tests: Vec<&Finding> = ctx.scanned.findings.iter().filter(|f| f.test).collect();
    let _ = writeln!(
        out,
        "Blocking db-sync API uses ({} file(s) scanned under {})\n",
        ctx.scanned.files_scanned,
        ctx.root.display()
    );
    if counted.is_empty() {
        let _ = writeln!(out, "No blocking uses (outside tests).");
    } else {
        write_groups(&mut out, &counted);
    }
    write_opted_out(&mut out, ctx);
    if !tests.is_empty() {
        let _ = writeln!(out, "\nNot counted: test code (#[cfg(test)], tests/ dirs):");
        write_groups(&mut out, &tests);
    }

    let mut per_crate: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for f in &ctx.scanned.findings {
        let e = per_crate.entry(&f.krate).or_default();
        if f.test {
            e.2 += 1;
        } else if f.infrastructure {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    let _ = writeln!(out, "\nTotals:");
    let width = per_crate
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(0)
        .max("overall".len());
    for (krate, (n, i, t)) in &per_crate {
        let _ = writeln!(
            out,
            "  {krate:<width$}  {n:>5}   (+{i} opted out, +{t} test)"
        );
    }
    let _ = writeln!(
        out,
        "  {:<width$}  {:>5}   (+{} opted out in {} file(s), +{} test)",
        "overall",
        ctx.total(),
        ctx.infra_total(),
        ctx.infra_counts.len(),
        ctx.test_total()
    );

    match ctx.baseline {
        None => {
            let _ = writeln!(
                out,
                "\nbaseline: none at {} (run `cargo xtask sync-usage --update` to create it)",
                ctx.baseline_display()
            );
        }
        Some(b) => {
            let _ = writeln!(
                out,
                "\nbaseline: {}: {} uses at the last --update, first_total {}; \
                 {} opted-out uses in {} file(s)",
                ctx.baseline_display(),
                b.total(),
                b.first_total,
                b.infrastructure_total(),
                b.infrastructure.len()
            );
            match ctx.migrated() {
                Some((overall, since)) => {
                    let _ = writeln!(
                        out,
                        "migrated: {overall:.1}% of the baseline (first_total {} -> now {}; \
                         {since:.1} points since the last --update)",
                        b.first_total,
                        ctx.total()
                    );
                }
                None => {
                    let _ = writeln!(out, "migrated: n/a (first_total is 0)");
                }
            }
        }
    }
    out
}

/// The files that opted out, each with its count, marker line, baseline
/// count and uses.
fn write_opted_out(out: &mut String, ctx: &Context<'_>) {
    if ctx.infra_counts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nOpted out: {} file(s) marked `{INFRASTRUCTURE_MARKER}`, counted apart \
         (the baseline records each; a new one or a rise fails --check):",
        ctx.infra_counts.len()
    );
    for (file, n) in ctx.infra_counts {
        let base = match ctx.baseline.and_then(|b| b.infrastructure.get(file)) {
            Some(b) => format!("baseline {b}"),
            None => "not in the baseline".to_string(),
        };
        let line = ctx.marker_line(file).unwrap_or(0);
        let _ = writeln!(out, "  {file} ({n})   marker at line {line}, {base}");
        let fs: Vec<&Finding> = ctx.findings_of(file).collect();
        let fn_width = fs.iter().map(|f| f.function.len()).max().unwrap_or(0);
        for f in fs {
            let _ = writeln!(
                out,
                "    {:>5}  {:<fn_width$}  {:<9}  {}",
                f.line,
                f.function,
                f.kind.as_str(),
                f.text
            );
        }
    }
}

fn write_infra_findings(out: &mut String, ctx: &Context<'_>, c: &Change) {
    let line = ctx.marker_line(&c.file).unwrap_or(0);
    let what = if c.baseline == 0 {
        "a new opt-out"
    } else {
        "more opted-out uses"
    };
    let _ = writeln!(
        out,
        "  {}:{line}: `{INFRASTRUCTURE_MARKER}` ({what}): {} uses, baseline {}",
        c.file, c.count, c.baseline
    );
    for f in ctx.findings_of(&c.file) {
        let _ = writeln!(
            out,
            "    {}:{}  in {}  ({})  {}",
            f.file,
            f.line,
            f.function,
            f.kind.as_str(),
            f.text
        );
    }
}

/// The rises, uses to port then opt-outs, each with its fix.
fn write_rises(out: &mut String, ctx: &Context<'_>, changes: &Changes<'_>) {
    for c in changes.rose {
        write_file_findings(out, ctx, c);
    }
    if !changes.rose.is_empty() {
        out.push_str(FIX);
    }
    if !changes.infra_rose.is_empty() {
        let _ = writeln!(
            out,
            "sync-usage: opted-out uses went up in {} file(s):",
            changes.infra_rose.len()
        );
        for c in changes.infra_rose {
            write_infra_findings(out, ctx, c);
        }
        out.push_str(INFRA_FIX);
    }
}

fn write_file_findings(out: &mut String, ctx: &Context<'_>, c: &Change) {
    let _ = writeln!(
        out,
        "  {}: {} uses, baseline {}",
        c.file, c.count, c.baseline
    );
    for f in ctx.findings_of(&c.file).filter(|f| !f.infrastructure) {
        let _ = writeln!(
            out,
            "    {}:{}  in {}  ({})  {}",
            f.file,
            f.line,
            f.function,
            f.kind.as_str(),
            f.text
        );
    }
}

pub fn check_failed(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sync-usage: blocking db-sync uses went up in {} file(s), opted-out uses in {} (baseline {}):",
        changes.rose.len(),
        changes.infra_rose.len(),
        ctx.baseline_display()
    );
    write_rises(&mut out, ctx, changes);
    out
}

fn fell_note(out: &mut String, changes: &Changes<'_>, advice: bool) {
    if changes.fell.is_empty() && changes.infra_fell.is_empty() {
        return;
    }
    let list: Vec<String> = changes
        .fell
        .iter()
        .map(|c| format!("{} ({} -> {})", c.file, c.baseline, c.count))
        .chain(
            changes
                .infra_fell
                .iter()
                .map(|c| format!("{} (opted out: {} -> {})", c.file, c.baseline, c.count)),
        )
        .collect();
    let tail = if advice {
        "; run --update to lower the ratchet"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "sync-usage: fewer uses than the baseline in {}{tail}",
        list.join(", ")
    );
}

pub fn check_ok(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let files = ctx.counts.values().filter(|n| **n > 0).count();
    let base = match ctx.baseline {
        Some(b) => format!("baseline {}", b.total()),
        None => "no baseline file: all counts 0".to_string(),
    };
    let _ = writeln!(
        out,
        "sync-usage: ok: {} blocking uses in {files} file(s), none above the baseline ({base}); \
         {} opted-out uses in {} file(s), none above the baseline",
        ctx.total(),
        ctx.infra_total(),
        ctx.infra_counts.len()
    );
    fell_note(&mut out, changes, true);
    out
}

pub fn update_refused(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sync-usage: refusing to raise the baseline {}:",
        ctx.baseline_display()
    );
    write_rises(&mut out, ctx, changes);
    out
}

pub fn updated(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let files = ctx.counts.values().filter(|n| **n > 0).count();
    let first = ctx.baseline.map_or(ctx.total(), |b| b.first_total);
    let _ = writeln!(
        out,
        "sync-usage: wrote {}: {} uses in {files} file(s), first_total {first}; \
         {} opted-out uses in {} file(s)",
        ctx.baseline_display(),
        ctx.total(),
        ctx.infra_total(),
        ctx.infra_counts.len()
    );
    if ctx.baseline.is_some() {
        for c in changes.rose {
            let _ = writeln!(
                out,
                "  raised (--allow-increase): {} ({} -> {})",
                c.file, c.baseline, c.count
            );
        }
        for c in changes.infra_rose {
            let _ = writeln!(
                out,
                "  opted out, raised (--allow-increase): {}:{} ({} -> {})",
                c.file,
                ctx.marker_line(&c.file).unwrap_or(0),
                c.baseline,
                c.count
            );
        }
        for c in changes.fell {
            let _ = writeln!(out, "  lowered: {} ({} -> {})", c.file, c.baseline, c.count);
        }
        for c in changes.infra_fell {
            let _ = writeln!(
                out,
                "  opted out, lowered: {} ({} -> {})",
                c.file, c.baseline, c.count
            );
        }
    }
    out
}

pub fn json_result(mode: &str, ok: bool, changes: &Changes<'_>, written: bool) -> Value {
    json!({
        "mode": mode,
        "ok": ok,
        "increased": changes.rose,
        "decreased": changes.fell,
        "infrastructure_increased": changes.infra_rose,
        "infrastructure_decreased": changes.infra_fell,
        "baseline_written": written,
    })
}

pub fn json(ctx: &Context<'_>, result: Option<Value>) -> String {
    let all: Vec<&Finding> = ctx.scanned.findings.iter().collect();
    let crates: Vec<Value> = group(&all)
        .into_iter()
        .map(|(krate, files)| {
            let uses = |fs: &[Finding]| fs.iter().filter(|f| !f.test && !f.infrastructure).count();
            let infra = |fs: &[Finding]| fs.iter().filter(|f| !f.test && f.infrastructure).count();
            let tests = |fs: &[Finding]| fs.iter().filter(|f| f.test).count();
            let sum = |n: &dyn Fn(&[Finding]) -> usize| -> usize {
                files.iter().map(|(_, fs)| n(fs)).sum()
            };
            let (n_uses, n_infra, n_tests) = (sum(&uses), sum(&infra), sum(&tests));
            let files: Vec<Value> = files
                .iter()
                .map(|(file, fs)| {
                    json!({
                        "file": file,
                        "uses": uses(fs),
                        "infrastructure_uses": infra(fs),
                        "test_uses": tests(fs),
                        "findings": fs,
                    })
                })
                .collect();
            json!({
                "crate": krate,
                "uses": n_uses,
                "infrastructure_uses": n_infra,
                "test_uses": n_tests,
                "files": files,
            })
        })
        .collect();
    let migrated = ctx.migrated();
    let mut doc = json!({
        "root": ctx.root.display().to_string(),
        "files_scanned": ctx.scanned.files_scanned,
        "parse_errors": ctx.scanned.errors,
        "crates": crates,
        "total": ctx.total(),
        "test_total": ctx.test_total(),
        "counts": ctx.counts.iter().filter(|(_, n)| **n > 0).collect::<BTreeMap<_, _>>(),
        "infrastructure": ctx.scanned.markers.iter().map(|m| {
            (m.file.clone(), json!({
                "uses": ctx.infra_counts.get(&m.file).copied().unwrap_or(0),
                "marker_line": m.line,
                "baseline": ctx.baseline.and_then(|b| b.infrastructure.get(&m.file)),
            }))
        }).collect::<serde_json::Map<_, _>>(),
        "infrastructure_total": ctx.infra_total(),
        "baseline": {
            "path": ctx.baseline_display(),
            "exists": ctx.baseline.is_some(),
            "first_total": ctx.baseline.map(|b| b.first_total),
            "total": ctx.baseline.map(Baseline::total),
            "infrastructure_total": ctx.baseline.map(Baseline::infrastructure_total),
        },
        "migrated_percent": migrated.map(|m| m.0),
        "migrated_since_update_percent": migrated.map(|m| m.1),
    });
    if let Some(r) = result {
        doc["result"] = r;
    }
    serde_json::to_string_pretty(&doc).expect("JSON values serialise")
}
