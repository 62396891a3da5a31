//! The ratchet, end to end: runs the built `xtask` binary on a small
//! workspace written into a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A throw-away workspace; removed on drop.
struct TempWs {
    root: PathBuf,
}

impl TempWs {
    fn new(name: &str) -> Self {
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

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn baseline(&self) -> PathBuf {
        self.root.join("ratchet/baseline.json")
    }

    fn baseline_json(&self) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(self.baseline()).unwrap()).unwrap()
    }

    fn run(&self, args: &[&str]) -> Run {
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

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
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
const LIB: &str = "use db_sync::get_database_connection;

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

fn with_baseline(name: &str) -> TempWs {
    let ws = TempWs::new(name);
    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 0, "{r:?}");
    ws
}

#[test]
fn update_creates_the_baseline_and_check_passes() {
    let ws = TempWs::new("create");
    // no baseline: every count is 0, so existing uses fail the check
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("crates/app/src/lib.rs: 2 uses, baseline 0"),
        "{r:?}"
    );

    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        ws.baseline_json(),
        serde_json::json!({ "first_total": 2, "files": { "crates/app/src/lib.rs": 2 }, "infrastructure": {} })
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("ok: 2 blocking uses in 1 file(s)"),
        "{r:?}"
    );

    let r = ws.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("migrated: 0.0% of the baseline"), "{r:?}");
    assert!(r.stdout.contains("Not counted: test code"), "{r:?}");
}

const WIRING: &str = "//! Builds the pools.
//!
//! sync-usage: infrastructure (builds the blocking pool)
pub fn build() {
    db_sync::get_database_connection();
}
";

#[test]
fn opting_out_is_listed_with_its_count_and_a_new_opt_out_fails_the_check() {
    let ws = with_baseline("infra");
    ws.write("crates/app/src/wiring.rs", WIRING);

    // The report lists the opted-out file with its count and marker line.
    let r = ws.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("crates/app/src/wiring.rs (1)   marker at line 3, not in the baseline"),
        "{r:?}"
    );
    assert!(r.stdout.contains("(+1 opted out in 1 file(s)"), "{r:?}");

    // A new opt-out fails the check, naming the marker and the use, and the fix.
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "a new opt-out is a rise: {r:?}");
    assert!(
        r.stderr.contains(
            "crates/app/src/wiring.rs:3: `sync-usage: infrastructure` (a new opt-out): 1 uses, baseline 0"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("crates/app/src/wiring.rs:5  in wiring::build  (call)"),
        "{r:?}"
    );
    assert!(r.stderr.contains("fix: remove the marker"), "{r:?}");

    // --update refuses it; --allow-increase records it in the baseline.
    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 1, "{r:?}");
    let r = ws.run(&["--update", "--allow-increase"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        ws.baseline_json(),
        serde_json::json!({
            "first_total": 2,
            "files": { "crates/app/src/lib.rs": 2 },
            "infrastructure": { "crates/app/src/wiring.rs": 1 }
        })
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 0, "{r:?}");

    // Once recorded, more uses in the opted-out file fail the check too.
    ws.write(
        "crates/app/src/wiring.rs",
        &WIRING.replace("}\n", "    db_sync::fetch_one();\n}\n"),
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "crates/app/src/wiring.rs:3: `sync-usage: infrastructure` (more opted-out uses): 2 uses, baseline 1"
        ),
        "{r:?}"
    );
    assert!(r.stderr.contains("crates/app/src/wiring.rs:6"), "{r:?}");

    // Without the marker the file's uses are uses to port: a rise as well.
    ws.write(
        "crates/app/src/wiring.rs",
        "pub fn build() { db_sync::get_database_connection(); }\n",
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("crates/app/src/wiring.rs:1"), "{r:?}");
    assert!(
        r.stderr.contains("port it to db-async; see MIGRATION.md"),
        "{r:?}"
    );
}

/// A marker moving onto a file that has uses moves them out of the count to
/// port and into the opted-out count: the check still fails.
#[test]
fn marking_a_counted_file_as_infrastructure_fails_the_check() {
    let ws = with_baseline("infra-move");
    ws.write(
        "crates/app/src/lib.rs",
        &format!("//! sync-usage: infrastructure (just because)\n{LIB}"),
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "crates/app/src/lib.rs:1: `sync-usage: infrastructure` (a new opt-out): 2 uses, baseline 0"
        ),
        "{r:?}"
    );
}

/// `state.sync_pool.get()`, `pool.get()` on a `SyncPool` parameter, a
/// connection's and a transaction's methods: blocking access through a value
/// counts like a path into `db_sync`.
#[test]
fn blocking_access_through_a_field_or_handle_is_counted() {
    let ws = TempWs::new("handles");
    let handlers = "use db_sync::SyncPool;

pub struct AppState {
    pub sync_pool: SyncPool,
}

pub fn handler(state: &AppState) {
    let _ = state;
}
";
    ws.write("crates/app/src/handlers.rs", handlers);
    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(ws.baseline_json()["files"]["crates/app/src/handlers.rs"], 2);

    ws.write(
        "crates/app/src/handlers.rs",
        &(handlers.replace(
            "    let _ = state;\n",
            "    let mut conn = state.sync_pool.get().unwrap();\n    conn.fetch_one(\"SELECT 1\");\n    \
             work(&state.sync_pool);\n",
        ) + "\nfn work(pool: &SyncPool) {\n    pool.transaction(|tx| tx.execute(\"DO 1\"));\n}\n"),
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    for line in [
        "crates/app/src/handlers.rs:8  in handlers::handler  (method)  SyncPool::get via state.sync_pool",
        "crates/app/src/handlers.rs:9  in handlers::handler  (method)  SyncConn::fetch_one via conn",
        "crates/app/src/handlers.rs:10  in handlers::handler  (field)  SyncPool via state.sync_pool",
        "crates/app/src/handlers.rs:14  in handlers::work  (method)  SyncPool::transaction via pool",
        "crates/app/src/handlers.rs:14  in handlers::work  (method)  Transaction::execute via tx",
    ] {
        assert!(r.stderr.contains(line), "{line}: {r:?}");
    }
    assert!(
        r.stderr
            .contains("crates/app/src/handlers.rs: 8 uses, baseline 2"),
        "{r:?}"
    );
}

#[test]
fn adding_a_use_fails_the_check_naming_file_and_line() {
    let ws = with_baseline("add");
    ws.write(
        "crates/app/src/lib.rs",
        &LIB.replace(
            "    get_database_connection();\n",
            "    get_database_connection();\n    db_sync::fetch_one();\n",
        ),
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("crates/app/src/lib.rs: 3 uses, baseline 2"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("crates/app/src/lib.rs:5  in load  (call)  db_sync::fetch_one"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("crates/app/src/lib.rs:1  in <module>  (import)"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("port it to db-async; see MIGRATION.md"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("cargo xtask sync-usage --update --allow-increase"),
        "{r:?}"
    );
}

#[test]
fn removing_a_use_passes_and_update_lowers_the_baseline() {
    let ws = with_baseline("remove");
    ws.write(
        "crates/app/src/lib.rs",
        &LIB.replace("    get_database_connection();\n", ""),
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("crates/app/src/lib.rs (2 -> 1)"), "{r:?}");
    assert!(
        r.stdout.contains("run --update to lower the ratchet"),
        "{r:?}"
    );

    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        ws.baseline_json(),
        serde_json::json!({ "first_total": 2, "files": { "crates/app/src/lib.rs": 1 }, "infrastructure": {} })
    );
    let r = ws.run(&[]);
    assert!(
        r.stdout.contains("migrated: 50.0% of the baseline"),
        "{r:?}"
    );

    // the lowered ratchet holds: putting the use back now fails
    ws.write("crates/app/src/lib.rs", LIB);
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("crates/app/src/lib.rs: 2 uses, baseline 1"),
        "{r:?}"
    );
}

#[test]
fn update_refuses_a_rise_without_allow_increase() {
    let ws = with_baseline("rise");
    let before = fs::read_to_string(ws.baseline()).unwrap();
    ws.write(
        "crates/app/src/clean.rs",
        "pub fn now_dirty() {\n    db_sync::get_database_connection();\n}\n",
    );
    let r = ws.run(&["--update"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("refusing to raise the baseline"), "{r:?}");
    assert!(
        r.stderr
            .contains("crates/app/src/clean.rs: 1 uses, baseline 0"),
        "{r:?}"
    );
    assert_eq!(fs::read_to_string(ws.baseline()).unwrap(), before);

    let r = ws.run(&["--update", "--allow-increase"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        ws.baseline_json(),
        serde_json::json!({
            "first_total": 2,
            "files": { "crates/app/src/clean.rs": 1, "crates/app/src/lib.rs": 2 },
            "infrastructure": {}
        })
    );
}

#[test]
fn a_new_file_with_a_use_fails_the_check() {
    let ws = with_baseline("newfile");
    ws.write(
        "crates/app/src/fresh.rs",
        "pub fn f() -> u32 {\n    let _c = ::db_sync::get_database_connection();\n    0\n}\n",
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("crates/app/src/fresh.rs: 1 uses, baseline 0"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("crates/app/src/fresh.rs:2  in fresh::f  (call)"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("crates/app/src/lib.rs:"), "{r:?}");
}

#[test]
fn test_uses_comments_and_strings_do_not_move_the_ratchet() {
    let ws = with_baseline("tests");
    ws.write(
        "crates/app/src/clean.rs",
        "// db_sync::get_database_connection()\npub fn nothing() -> &'static str {\n    \"db_sync::fetch_one\"\n}\n\
         #[cfg(test)]\nmod tests {\n    use db_sync::fetch_one;\n}\n",
    );
    ws.write(
        "crates/app/tests/it.rs",
        "#[test]\nfn it() {\n    db_sync::fetch_one();\n}\n",
    );
    let r = ws.run(&["--check"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn json_output() {
    let ws = with_baseline("json");
    let r = ws.run(&["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["total"], 2);
    assert_eq!(doc["test_total"], 1);
    assert_eq!(doc["baseline"]["first_total"], 2);
    assert_eq!(doc["migrated_percent"], 0.0);
    let file = &doc["crates"][0]["files"][0];
    assert_eq!(doc["crates"][0]["crate"], "app");
    assert_eq!(file["file"], "crates/app/src/lib.rs");
    assert_eq!(file["uses"], 2);
    assert_eq!(file["findings"][1]["line"], 4);
    assert_eq!(file["findings"][1]["function"], "load");
    assert_eq!(file["findings"][1]["kind"], "call");
    assert_eq!(file["findings"][1]["text"], "get_database_connection");
    assert_eq!(file["findings"][2]["test"], true);

    let r = ws.run(&["--check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["result"]["ok"], true);
}

#[test]
fn bad_invocations_exit_2() {
    let xtask = |args: &[&str]| {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let r = xtask(&["no-such-task"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("sync-usage"), "{r:?}");
    assert_eq!(xtask(&[]).code, 2);
    assert_eq!(xtask(&["sync-usage", "--bogus"]).code, 2);
    assert_eq!(xtask(&["sync-usage", "--check", "--update"]).code, 2);
    assert_eq!(xtask(&["sync-usage", "--allow-increase"]).code, 2);
    assert_eq!(xtask(&["sync-usage", "--help"]).code, 0);
}

#[test]
fn the_repository_itself_scans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["sync-usage", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(doc["files_scanned"].as_u64().unwrap() > 0);
}

/// The xtask binary scans the workspace it is run in (found from the current
/// directory at run time), not the checkout it was compiled from: with a shared
/// target directory one binary serves several checkouts.
#[test]
fn without_root_it_scans_the_workspace_around_the_current_directory() {
    let ws = TempWs::new("cwd");
    let xtask = |args: &[&str], cwd: &Path| {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .arg("sync-usage")
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap(),
        )
    };
    // From a subdirectory, no --root and no --baseline: the temporary tree (no
    // baseline yet, so its two uses are above 0), not this repository.
    let sub = ws.root.join("crates/app/src");
    let r = xtask(&["--check"], &sub);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("crates/app/src/lib.rs: 2 uses, baseline 0"),
        "{r:?}"
    );
    let r = xtask(&["--json"], &sub);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        Path::new(doc["root"].as_str().unwrap()),
        ws.root.canonicalize().unwrap(),
        "{r:?}"
    );

    // --update writes the baseline of that workspace.
    let r = xtask(&["--update"], &sub);
    assert_eq!(r.code, 0, "{r:?}");
    let written: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(ws.root.join("xtask/sync-usage-baseline.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written["files"]["crates/app/src/lib.rs"], 2, "{written}");

    // A new blocking call in that tree now fails the check from its root.
    ws.write(
        "crates/app/src/clean.rs",
        "pub fn now_dirty() {\n    db_sync::get_database_connection();\n}\n",
    );
    let r = xtask(&["--check"], &ws.root);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("crates/app/src/clean.rs:2"), "{r:?}");

    // Outside any workspace: a clear error, not some other tree.
    let outside = ws.root.join("crates");
    fs::write(ws.root.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let r = xtask(&["--check"], &outside);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("[workspace]"), "{r:?}");
}
