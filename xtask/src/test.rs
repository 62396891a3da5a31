//! `cargo xtask test`: the one command that runs every test (README, `.ci/run`).
//!
//! Runs the whole workspace under `cargo nextest` (a process per test, so tests that
//! restart or exhaust their private MariaDB cannot disturb each other), or `cargo test`
//! where nextest is not installed. Arguments after `test` are passed on (e.g. a filter).

use std::process::{Command, ExitCode};

pub(crate) fn run(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = Command::new(&cargo);
    if has_nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!(
            "cargo-nextest not found; running `cargo test` (install: cargo install cargo-nextest)"
        );
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(args);
    eprintln!("running: {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: could not run {cmd:?}: {e}");
            ExitCode::FAILURE
        }
    }
}
