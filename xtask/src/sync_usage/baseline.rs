//! The committed ratchet: `{ "first_total": N, "files": { "path.rs": count } }`.

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
}

impl Baseline {
    pub fn total(&self) -> usize {
        self.files.values().sum()
    }

    pub fn count(&self, file: &str) -> usize {
        self.files.get(file).copied().unwrap_or(0)
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

/// Files whose current count is above / below the baseline (a missing
/// baseline counts as all zeros).
pub fn compare(
    current: &BTreeMap<String, usize>,
    baseline: Option<&Baseline>,
) -> (Vec<Change>, Vec<Change>) {
    let base = |f: &str| baseline.map_or(0, |b| b.count(f));
    let mut files: Vec<&String> = current.keys().collect();
    if let Some(b) = baseline {
        files.extend(b.files.keys());
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
