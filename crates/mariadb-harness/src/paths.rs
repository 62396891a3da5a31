//! Where the harness keeps its files, and sweeping up after dead processes.
//!
//! Layout under `std::env::temp_dir()/mariadb-harness/`:
//! - `template-<hash>/`: the initialised template datadir (one per machine and version);
//! - `oracle-<hash>.so`: the compiled oracle shim;
//! - `run/<pid>-<n>/`: server `n` of process `pid`: `data/` (its datadir,
//!   holding also the socket, pid file and logs) and `tmp/` (its private tmpdir);
//! - `*.tmp-<pid>-<n>`: artefacts being built (see [`crate::publish`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

/// `temp_dir()/mariadb-harness`.
pub(crate) fn base_dir() -> PathBuf {
    std::env::temp_dir().join("mariadb-harness")
}

/// `temp_dir()/mariadb-harness/run`.
pub(crate) fn run_dir() -> PathBuf {
    base_dir().join("run")
}

/// A process-unique number, for names that must not collide within this process.
pub(crate) fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// A fresh, not yet existing path `run/<pid>-<n>` for a server's files.
pub(crate) fn new_server_dir() -> io::Result<PathBuf> {
    let run = run_dir();
    fs::create_dir_all(&run).map_err(|e| crate::error::at(e, "cannot create", &run))?;
    sweep_once();
    Ok(run.join(format!("{}-{}", std::process::id(), next_serial())))
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// Zombies still answer `kill(pid, 0)`; in a container whose init does not
/// reap orphans, a killed server can stay a zombie forever.
fn is_zombie(pid: u32) -> bool {
    matches!(process_state(pid), Some('Z' | 'X'))
}

/// The state letter of `/proc/<pid>/stat` (`T` stopped, `Z` zombie, …), if the
/// process exists. Format: "pid (comm) S ...": the state follows the last ')'.
pub(crate) fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The owning pid encoded at the start of a name like `1234-0` or `x.tmp-1234-0`.
fn owner_pid(name: &str) -> Option<u32> {
    let tail = match name.rsplit_once(".tmp-") {
        Some((_, tail)) => tail,
        None => name,
    };
    tail.split_once('-')?.0.parse().ok()
}

/// Removes, once per process, leftovers of processes that no longer exist.
pub(crate) fn sweep_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        sweep(&run_dir());
        sweep(&base_dir());
    });
}

/// Removes entries of `dir` owned by dead processes: server dirs in
/// `run/` and half-built `*.tmp-<pid>-<n>` artefacts in the base dir.
/// A server dir whose `data/mysqld.pid` names a live process is left alone.
fn sweep(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let is_run_dir = dir == run_dir();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_run_dir && !name.contains(".tmp-") {
            continue;
        }
        let Some(pid) = owner_pid(name) else { continue };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        if server_still_running(&path) {
            continue;
        }
        let _ = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
    }
}

fn server_still_running(server_dir: &Path) -> bool {
    fs::read_to_string(server_dir.join("data").join("mysqld.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(pid_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_both_forms() {
        assert_eq!(owner_pid("1234-0"), Some(1234));
        assert_eq!(owner_pid("template-abc.tmp-77-3"), Some(77));
        assert_eq!(owner_pid("oracle-ff.so.tmp-9-1"), Some(9));
        assert_eq!(owner_pid("template-abc"), None);
    }

    #[test]
    fn own_pid_is_alive() {
        assert!(pid_alive(std::process::id()));
    }
}
