//! Each instance under the exact connection oracle: the harness's `LD_PRELOAD` shim
//! counts the process's connections to the database, and `reporter.c` (preloaded
//! after it) publishes its counts to a file every 10 ms, since the server binary
//! knows nothing of the oracle. Here: building the reporter, the environment that
//! loads both, and reading what an instance wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mariadb_harness::oracle;

const SOURCE: &str = include_str!("reporter.c");

/// The environment variables that put a process under the oracle, watching
/// connections to `port`; its counts go to the file named by `FLEET_ORACLE_FILE`.
///
/// # Errors
///
/// The shim or the reporter cannot be built (no `cc`, or it failed).
pub fn environment(port: u16) -> Result<Vec<(String, String)>, String> {
    let shim = oracle::shim_library()
        .map_err(|e| format!("cannot build the connection oracle shim: {e}"))?;
    let reporter = reporter_library()?;
    Ok(vec![
        (
            "LD_PRELOAD".into(),
            format!("{}:{}", shim.display(), reporter.display()),
        ),
        ("FLEET_ORACLE_PORT".into(), port.to_string()),
    ])
}

/// The compiled reporter, cached in the temporary directory by a hash of its source
/// (built into a private name, then renamed, so that concurrent runs never load a
/// half-written library).
fn reporter_library() -> Result<PathBuf, String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in SOURCE.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let dir = std::env::temp_dir().join("fleet-sim");
    let target = dir.join(format!("reporter-{hash:016x}.so"));
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let private = dir.join(format!("reporter-{hash:016x}.{}", std::process::id()));
    let source = private.with_extension("c");
    std::fs::write(&source, SOURCE)
        .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
        .arg(&private)
        .arg(&source)
        .arg("-ldl")
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&source);
    let out = out.map_err(|e| format!("cannot run cc for the oracle reporter: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed to build the oracle reporter: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::rename(&private, &target)
        .map_err(|e| format!("cannot publish {}: {e}", target.display()))?;
    Ok(target)
}

/// One line of an instance's oracle file: the 10 ms window ending at `t_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// When the window ended (`CLOCK_MONOTONIC`, ns).
    pub t_ns: i64,
    /// Connections open at the end of the window.
    pub current: i64,
    /// The most connections open at once during the window (exact).
    pub max: i64,
    /// Connects the oracle could not track (nonzero: the counts may be low).
    pub untracked: i64,
}

/// Every complete line of `file` (a line being written is left for later); none when
/// the file was never created (the reporter did not load).
///
/// # Errors
///
/// The file exists but cannot be read.
pub fn read(file: &Path) -> Result<Vec<Record>, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

fn parse(text: &str) -> Vec<Record> {
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|v| v.parse::<i64>().ok());
            Some(Record {
                t_ns: f.next()??,
                current: f.next()??,
                max: f.next()??,
                untracked: f.next()??,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_still_being_written_is_not_read() {
        // The last line is cut short: its untracked count may be "1" of a "12" yet
        // to be written.
        let records = parse("10 1 2 0\n20 3 4 0\n30 5 6 1");
        assert_eq!(
            records,
            vec![
                Record {
                    t_ns: 10,
                    current: 1,
                    max: 2,
                    untracked: 0
                },
                Record {
                    t_ns: 20,
                    current: 3,
                    max: 4,
                    untracked: 0
                }
            ]
        );
    }
}
