//! Text and JSON output: the listing (`listing`), the ratchet's verdicts (`ratchet`),
//! and the JSON document (`json`), over one [`Context`].

mod json;
mod listing;
mod ratchet;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::baseline::Baseline;
use super::baseline::Change;
use super::scan::{Finding, ScanOutput};
use super::workspace::rel_path;

pub use json::{json, json_result};
pub use listing::text;
pub use ratchet::{check_failed, check_ok, update_refused, updated};

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

    /// How many files have uses to port.
    fn files_with_uses(&self) -> usize {
        self.counts.values().filter(|n| **n > 0).count()
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

/// One finding per line, its function column as wide as the widest of `fs`.
fn write_aligned(out: &mut String, fs: &[&Finding]) {
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

/// One finding with its location, as the ratchet's verdicts list it.
fn write_located(out: &mut String, f: &Finding) {
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
