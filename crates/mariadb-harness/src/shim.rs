//! Building the oracle's `LD_PRELOAD` shim from `oracle.c`.
//!
//! The shim is compiled with the system C compiler on first use and cached
//! as `temp_dir()/mariadb-harness/oracle-<hash of the source>.so`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The shim's source.
pub(crate) const SOURCE: &str = include_str!("oracle.c");

const FILE_PREFIX: &str = "oracle-";

/// Whether an `LD_PRELOAD` entry is (a build of) this crate's shim.
pub(crate) fn is_shim_path(entry: &str) -> bool {
    Path::new(entry)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(".so"))
        && entry.contains("mariadb-harness")
}

/// The path of the compiled shim, compiling it if needed.
///
/// # Errors
///
/// If `cc` is missing or fails (the error contains its output).
pub(crate) fn shim_path() -> io::Result<PathBuf> {
    static CACHED: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = CACHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let hash = crate::hash::Fnv::new().add(SOURCE.as_bytes()).hex();
    let target = crate::paths::base_dir().join(format!("{FILE_PREFIX}{hash}.so"));
    let path = crate::publish::publish(&target, compile)?;
    *cached = Some(path.clone());
    Ok(path)
}

fn compile(output: &Path) -> io::Result<()> {
    let mut source = output.as_os_str().to_owned();
    source.push(".c");
    let source = PathBuf::from(source);
    std::fs::write(&source, SOURCE).map_err(|e| crate::error::at(e, "cannot write", &source))?;
    let result = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(output)
        .arg(&source)
        .arg("-ldl")
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&source);
    let out = result.map_err(|e| io::Error::new(e.kind(), format!("cannot run cc: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(crate::error::other(format!(
        "cc failed to build the oracle shim ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
