//! The infrastructure marker: an opted-out file is listed with its count, and a new
//! opt-out, or a marker moved onto a counted file, fails the check.

use crate::support::{LIB, with_baseline};

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
