//! `cargo xtask fleet`: issue 15's fleet simulation (crates/bench, `bench fleet`) in a
//! release build, against the release `server` binary it builds first. Writes FLEET.md
//! and docs/fleet.svg, and prints the report.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

pub(crate) fn run(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let server = match build_server(&cargo) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: cannot build the server binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = Command::new(&cargo)
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "bench",
            "--",
            "fleet",
            "--server-bin",
        ])
        .arg(&server)
        .args(args)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot run the fleet simulation: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo build --release -p server --bin server`; the binary's path, from cargo's
/// own report of what it built (so that any target directory works).
fn build_server(cargo: &str) -> Result<PathBuf, String> {
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "server",
            "--bin",
            "server",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut executable = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(path) = executable_of(&line) {
            executable = Some(path);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build failed: {status}"));
    }
    executable.ok_or_else(|| "cargo reported no executable for the server".into())
}

/// The executable of a `compiler-artifact` message for the `server` binary.
fn executable_of(line: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["reason"] != "compiler-artifact" || v["target"]["name"] != "server" {
        return None;
    }
    v["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::executable_of;

    #[test]
    fn the_server_binary_is_read_from_cargos_artifact_messages() {
        let bin = r#"{"reason":"compiler-artifact","target":{"name":"server","kind":["bin"]},"executable":"/t/release/server"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"server","kind":["lib"]},"executable":null}"#;
        let other = r#"{"reason":"compiler-artifact","target":{"name":"bench"},"executable":"/t/release/bench"}"#;
        assert_eq!(executable_of(bin), Some("/t/release/server".into()));
        assert_eq!(executable_of(lib), None);
        assert_eq!(executable_of(other), None);
        assert_eq!(executable_of("not json"), None);
    }
}
