//! A throw-away workspace with the blocking crate and one counted file, and the built
//! `xtask` binary run on it.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A throw-away workspace; removed on drop.
pub struct TempWs {
    pub root: PathBuf,
}

impl TempWs {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!(
            "xtask-sync-usage-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        let ws = TempWs { root };
        ws.write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"crates/db-sync\", \"crates/app\"]\n",
        );
        ws.write(
            "crates/db-sync/Cargo.toml",
            "[package]\nname = \"db-sync\"\nversion = \"0.1.0\"\n",
        );
        ws.write(
            "crates/db-sync/src/lib.rs",
            "pub fn get_database_connection() {}\npub fn fetch_one() {}\n",
        );
        ws.write(
            "crates/app/Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\ndb-sync = { path = \"../db-sync\" }\n",
        );
        ws.write("crates/app/src/lib.rs", LIB);
        ws.write("crates/app/src/clean.rs", "pub fn nothing() {}\n");
        ws
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn baseline(&self) -> PathBuf {
        self.root.join("ratchet/baseline.json")
    }

    pub fn baseline_json(&self) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(self.baseline()).unwrap()).unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("sync-usage")
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .arg("--baseline")
            .arg(self.baseline())
            .output()
            .unwrap();
        Run::from(out)
    }
}

impl Drop for TempWs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Two counted uses (lines 1 and 4), one test use.
pub const LIB: &str = "use db_sync::get_database_connection;

pub fn load() {
    get_database_connection();
}

#[cfg(test)]
mod tests {
    #[test]
    fn t() {
        db_sync::fetch_one();
    }
}
";

pub fn with_baseline(name: &str) -> TempWs {
    let ws = TempWs::new(name);
    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 0, "{r:?}");
    ws
}
