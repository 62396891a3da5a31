//! `cargo xtask test`: the one command that runs every test (README, `.ci/run`).
//!
//! Runs the whole workspace under `cargo nextest` (a process per test, so tests that
//! restart or exhaust their private MariaDB cannot disturb each other), or `cargo test`
//! where nextest is not installed, after the doctests (`cargo test --doc`, which nextest
//! does not run). The doctests go first so that the end of the output is the tests'
//! summary, with every failure's output repeated there (`failure-output` in
//! `.config/nextest.toml`): a CI log cut to its head and tail still shows why a test
//! failed. Arguments after `test` are passed on to the tests (e.g. a filter; the
//! doctests are then skipped).

use std::process::{Command, ExitCode};

pub(crate) fn run(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    // nextest does not run doctests: the examples in the docs are tests too.
    let doctests = if has_nextest && args.is_empty() {
        let mut doc = Command::new(&cargo);
        doc.args(["test", "--doc", "--workspace"]);
        run_one(doc)
    } else {
        true
    };
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
    let tests = run_one(cmd);
    if !doctests {
        eprintln!("error: the doctests failed (their output is above the tests')");
    }
    if tests && doctests {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `cmd`, saying what it runs; `true` when it succeeded.
fn run_one(mut cmd: Command) -> bool {
    eprintln!("running: {cmd:?}");
    match cmd.status() {
        Ok(s) => s.success(),
        Err(e) => {
            eprintln!("error: could not run {cmd:?}: {e}");
            false
        }
    }
}
