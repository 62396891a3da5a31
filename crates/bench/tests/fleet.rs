//! `cargo xtask fleet` in miniature, end to end, so that the simulation cannot rot:
//! the real `server` binary as two processes sharing a fleet budget of 8 on one
//! private MariaDB, the hot spot moving from one to the other, the hot one killed
//! with `kill -9` and started again (`bench fleet --tiny`, about 15 s), and the
//! invariants FLEET.md reports checked on what it measured.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `server` binary of this build's profile, built now unless a `cargo test` that
/// runs this test holds the build directory (then the one it built is taken).
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/fleet-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf();
    let binary = profile_dir.join("server");
    if build_directory_is_free(&profile_dir) {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .args([
                "build",
                "--quiet",
                "-p",
                "server",
                "--bin",
                "server",
                "--target-dir",
            ])
            .arg(profile_dir.parent().expect("target/<profile> has a parent"));
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => panic!("no profile in {}", profile_dir.display()),
        }
        let status = cmd.status().expect("run cargo build -p server");
        assert!(
            status.success(),
            "cargo build -p server --bin server: {status}"
        );
    }
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p server` first (or the tests under cargo nextest)",
        binary.display()
    );
    binary
}

/// Whether no cargo holds `<profile>/.cargo-lock` (a `cargo test` does while its tests
/// run: a nested build would wait for it forever).
fn build_directory_is_free(profile_dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(profile_dir.join(".cargo-lock")) else {
        return true;
    };
    // SAFETY: flock on a file descriptor we own; released when `file` is dropped.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    drop(file);
    taken
}

#[test]
fn a_tiny_fleet_stays_within_its_budget_refuses_no_connect_with_1040_and_every_instance_serves() {
    // Arrange
    let server = server_binary();
    let summary = std::env::temp_dir().join(format!("fleet-summary-{}.json", std::process::id()));

    // Act
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("fleet")
        .arg("--tiny")
        .arg("--server-bin")
        .arg(&server)
        .arg("--summary")
        .arg(&summary)
        .output()
        .expect("run bench fleet --tiny");

    // Assert
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench fleet --tiny failed: {}\n{stderr}",
        out.status
    );
    let text = std::fs::read_to_string(&summary).expect("the summary was written");
    let _ = std::fs::remove_file(&summary);
    let v: Value = serde_json::from_str(&text).expect("the summary is JSON");
    let budget = v["fleet_budget"].as_u64().unwrap();
    let instances = v["instances"].as_u64().unwrap();
    let run = &v["runs"][0];
    let n = |key: &str| {
        run[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {run}"))
    };
    // The instances' oracles: at no instant did the fleet hold more than its budget.
    assert!(n("oracle_peak") <= budget, "{report}");
    assert_eq!(n("untracked"), 0, "every connect was counted: {report}");
    // The server's own peak; it counts a closed connection a few ms longer, so it may
    // see one more per instance handing a unit over (ARCHITECTURE.md, server-side lag).
    assert!(
        n("max_used_connections") - n("own_sessions") <= budget + instances,
        "{report}"
    );
    assert!(
        n("server_peak") > 0,
        "the server counted the fleet: {report}"
    );
    assert_eq!(n("refused_1040"), 0, "{report}");
    assert_eq!(n("server_errors"), 0, "no 5xx answer: {report}");
    assert_eq!(n("surprises"), 0, "{report}");
    // Both instances served, and so did the one started again after the kill.
    let served = run["served"].as_object().expect("served per instance");
    for label in ["A", "B", "B2"] {
        let ok = served.get(label).and_then(Value::as_u64).unwrap_or(0);
        assert!(ok > 0, "{label} served no request: {served:?}\n{report}");
    }
    // The hot instances leased units above their floors; the killed one's leases came
    // free (the server ended its session).
    assert!(
        run["borrow"]
            .as_array()
            .is_some_and(|b| b.iter().any(|x| x[1].is_number())),
        "no hot instance ever leased a unit: {report}"
    );
    let freed = &run["freed"];
    assert!(
        freed["held"].as_u64() == Some(0) || freed["after"].is_number(),
        "the killed instance's leases were not freed: {freed}\n{report}"
    );
}
