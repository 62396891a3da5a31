//! Text and JSON output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::baseline::{Baseline, Change};
use super::scan::{Finding, ScanOutput};
use super::workspace::rel_path;

const FIX: &str = "fix: port it to db-async; see MIGRATION.md\n     \
                   or, if this is intended: `cargo xtask sync-usage --update --allow-increase`\n";

pub struct Context<'a> {
    pub root: &'a Path,
    pub baseline_path: &'a Path,
    pub baseline: Option<&'a Baseline>,
    pub scanned: &'a ScanOutput,
    /// Non-test uses per file.
    pub counts: &'a BTreeMap<String, usize>,
}

impl Context<'_> {
    fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn test_total(&self) -> usize {
        self.scanned.findings.iter().filter(|f| f.test).count()
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
    let counted: Vec<&Finding> = ctx.scanned.findings.iter().filter(|f| !f.test).collect();
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
    if !tests.is_empty() {
        let _ = writeln!(
            out,
            "\nNot counted: test code (#[cfg(test)], tests/ dirs) and files marked `sync-usage: infrastructure`:"
        );
        write_groups(&mut out, &tests);
    }

    let mut per_crate: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in &ctx.scanned.findings {
        let e = per_crate.entry(&f.krate).or_default();
        if f.test {
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
    for (krate, (n, t)) in &per_crate {
        let _ = writeln!(out, "  {krate:<width$}  {n:>5}   (+{t} test)");
    }
    let _ = writeln!(
        out,
        "  {:<width$}  {:>5}   (+{} test)",
        "overall",
        ctx.total(),
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
                "\nbaseline: {}: {} uses at the last --update, first_total {}",
                ctx.baseline_display(),
                b.total(),
                b.first_total
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

fn write_file_findings(out: &mut String, ctx: &Context<'_>, c: &Change) {
    let _ = writeln!(
        out,
        "  {}: {} uses, baseline {}",
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

pub fn check_failed(ctx: &Context<'_>, rose: &[Change]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sync-usage: blocking db-sync uses went up in {} file(s) (baseline {}):",
        rose.len(),
        ctx.baseline_display()
    );
    for c in rose {
        write_file_findings(&mut out, ctx, c);
    }
    out.push_str(FIX);
    out
}

fn fell_note(out: &mut String, fell: &[Change], advice: bool) {
    if fell.is_empty() {
        return;
    }
    let list: Vec<String> = fell
        .iter()
        .map(|c| format!("{} ({} -> {})", c.file, c.baseline, c.count))
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

pub fn check_ok(ctx: &Context<'_>, fell: &[Change]) -> String {
    let mut out = String::new();
    let files = ctx.counts.values().filter(|n| **n > 0).count();
    let base = match ctx.baseline {
        Some(b) => format!("baseline {}", b.total()),
        None => "no baseline file: all counts 0".to_string(),
    };
    let _ = writeln!(
        out,
        "sync-usage: ok: {} blocking uses in {files} file(s), none above the baseline ({base})",
        ctx.total()
    );
    fell_note(&mut out, fell, true);
    out
}

pub fn update_refused(ctx: &Context<'_>, rose: &[Change]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sync-usage: refusing to raise the baseline {}:",
        ctx.baseline_display()
    );
    for c in rose {
        write_file_findings(&mut out, ctx, c);
    }
    out.push_str(FIX);
    out
}

pub fn updated(ctx: &Context<'_>, rose: &[Change], fell: &[Change]) -> String {
    let mut out = String::new();
    let files = ctx.counts.values().filter(|n| **n > 0).count();
    let first = ctx.baseline.map_or(ctx.total(), |b| b.first_total);
    let _ = writeln!(
        out,
        "sync-usage: wrote {}: {} uses in {files} file(s), first_total {first}",
        ctx.baseline_display(),
        ctx.total()
    );
    if ctx.baseline.is_some() {
        for c in rose {
            let _ = writeln!(
                out,
                "  raised (--allow-increase): {} ({} -> {})",
                c.file, c.baseline, c.count
            );
        }
        for c in fell {
            let _ = writeln!(out, "  lowered: {} ({} -> {})", c.file, c.baseline, c.count);
        }
    }
    out
}

pub fn json_result(mode: &str, ok: bool, rose: &[Change], fell: &[Change], written: bool) -> Value {
    json!({
        "mode": mode,
        "ok": ok,
        "increased": rose,
        "decreased": fell,
        "baseline_written": written,
    })
}

pub fn json(ctx: &Context<'_>, result: Option<Value>) -> String {
    let all: Vec<&Finding> = ctx.scanned.findings.iter().collect();
    let crates: Vec<Value> = group(&all)
        .into_iter()
        .map(|(krate, files)| {
            let count = |fs: &[Finding], test: bool| fs.iter().filter(|f| f.test == test).count();
            let uses: usize = files.iter().map(|(_, fs)| count(fs, false)).sum();
            let test_uses: usize = files.iter().map(|(_, fs)| count(fs, true)).sum();
            let files: Vec<Value> = files
                .iter()
                .map(|(file, fs)| {
                    json!({
                        "file": file,
                        "uses": count(fs, false),
                        "test_uses": count(fs, true),
                        "findings": fs,
                    })
                })
                .collect();
            json!({ "crate": krate, "uses": uses, "test_uses": test_uses, "files": files })
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
        "baseline": {
            "path": ctx.baseline_display(),
            "exists": ctx.baseline.is_some(),
            "first_total": ctx.baseline.map(|b| b.first_total),
            "total": ctx.baseline.map(Baseline::total),
        },
        "migrated_percent": migrated.map(|m| m.0),
        "migrated_since_update_percent": migrated.map(|m| m.1),
    });
    if let Some(r) = result {
        doc["result"] = r;
    }
    serde_json::to_string_pretty(&doc).expect("JSON values serialise")
}
