//! `--update` writes the baseline and `--check` holds it: a rise fails naming file and
//! line, a fall passes and `--update` lowers it, a rise needs `--allow-increase`; what
//! is counted (a field or handle) and what is not (tests, comments, strings).

use std::fs;

use crate::support::{LIB, TempWs, with_baseline};

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
