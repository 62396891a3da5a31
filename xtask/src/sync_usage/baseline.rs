//! The committed ratchet:
//! `{ "first_total": N, "files": { "path.rs": count }, "infrastructure": { "path.rs": count } }`.
//!
//! One entry per line, sorted by path: a merge conflict is a line per file,
//! and re-running `--update` after a merge settles it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// The total recorded by the very first `--update`; never changes.
    pub first_total: usize,
    /// Non-test uses per file at the last `--update` (files with 0 omitted).
    pub files: BTreeMap<String, usize>,
    /// Files that opted out with the infrastructure marker, with their
    /// (non-test) uses at the last `--update`: every marked file is listed,
    /// so adding a marker shows in the baseline's diff. Absent in baselines
    /// written before opt-outs were recorded (then no file may opt out).
    #[serde(default)]
    pub infrastructure: BTreeMap<String, usize>,
}

impl Baseline {
    pub fn total(&self) -> usize {
        self.files.values().sum()
    }

    /// Opted-out uses at the last `--update`.
    pub fn infrastructure_total(&self) -> usize {
        self.infrastructure.values().sum()
    }
}

/// `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<Baseline>, String> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: invalid baseline: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub fn save(path: &Path, baseline: &Baseline) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(baseline).map_err(|e| e.to_string())?;
    text.push('\n');
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A file whose count differs from the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub file: String,
    pub count: usize,
    pub baseline: usize,
}

/// Files whose current count is above / below the recorded one (a file
/// missing from `recorded`, or a missing baseline, counts as 0).
pub fn compare(
    current: &BTreeMap<String, usize>,
    recorded: Option<&BTreeMap<String, usize>>,
) -> (Vec<Change>, Vec<Change>) {
    let base = |f: &str| recorded.and_then(|r| r.get(f)).copied().unwrap_or(0);
    let mut files: Vec<&String> = current.keys().collect();
    if let Some(r) = recorded {
        files.extend(r.keys());
    }
    files.sort();
    files.dedup();
    let mut rose = Vec::new();
    let mut fell = Vec::new();
    for f in files {
        let change = Change {
            file: f.clone(),
            count: current.get(f).copied().unwrap_or(0),
            baseline: base(f),
        };
        if change.count > change.baseline {
            rose.push(change);
        } else if change.count < change.baseline {
            fell.push(change);
        }
    }
    (rose, fell)
}
