//! `cargo xtask bench`: the benchmarks (crates/bench), in a release build. Writes
//! BENCHMARKS.md and docs/scale-curve.svg, and prints the same.

use std::process::{Command, ExitCode};

pub(crate) fn run(args: &[String]) -> ExitCode {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "--release", "--quiet", "-p", "bench", "--"])
        .args(args)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot run the benchmarks: {e}");
            ExitCode::FAILURE
        }
    }
}
