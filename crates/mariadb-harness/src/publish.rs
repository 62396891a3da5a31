//! Build-then-rename publication of shared cached artefacts.
//!
//! Many test processes (cargo nextest runs each test in its own process) may
//! need the same template or shim at once. Each builds into a private sibling
//! `<final>.tmp-<pid>-<n>` and then `rename`s it into place, which is atomic:
//! readers see either nothing or a complete artefact. If another process won
//! the race, its artefact is used and ours is discarded.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Returns `target`, building it with `build(tmp_path)` first if it does not exist.
///
/// `build` must create `tmp_path` (a file or a directory).
///
/// # Errors
///
/// Whatever `build` returns, or a rename error other than "someone else was faster".
pub(crate) fn publish(
    target: &Path,
    build: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    if target.exists() {
        return Ok(target.to_path_buf());
    }
    crate::paths::sweep_once();
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| crate::error::at(e, "cannot create", parent))?;
    }
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        crate::paths::next_serial()
    ));
    let tmp = PathBuf::from(tmp);
    let built = build(&tmp);
    let result = built.and_then(|()| match fs::rename(&tmp, target) {
        Ok(()) => Ok(()),
        // A directory cannot replace a non-empty directory: someone else won.
        Err(_) if target.exists() => Ok(()),
        Err(e) => Err(crate::error::at(e, "cannot publish", target)),
    });
    remove_any(&tmp);
    result.map(|()| target.to_path_buf())
}

fn remove_any(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}
