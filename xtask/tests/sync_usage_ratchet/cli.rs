//! The command line: JSON output, bad invocations exit 2, and the repository itself
//! scanned, with or without `--root`.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{Run, TempWs, with_baseline};

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
