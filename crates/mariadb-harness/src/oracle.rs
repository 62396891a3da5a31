//! Exact client-side connection counting: I1 needs an exact oracle (ARCHITECTURE.md,
//! "Testing").
//!
//! The server's own counters lag and sample; to prove "this process never
//! had more than N connections to the server" a test needs an exact count.
//! This module drives an `LD_PRELOAD` shim (`oracle.c`, built at runtime with
//! the system `cc`) that interposes `connect` and `close`: it counts sockets
//! connected to one watched TCP port (and optionally one unix socket path),
//! incrementing *before* `connect()` and decrementing *after* `close()`, so
//! the count can only over-count, never under-count. [`max`] is the highest
//! count seen.
//!
//! `LD_PRELOAD` must be set when the process starts, so a test re-runs
//! itself under the shim:
//!
//! ```no_run
//! use mariadb_harness::{Server, ServerOptions, oracle};
//!
//! #[test]
//! fn budget_holds() {
//!     if !oracle::is_active() {
//!         let out = oracle::rerun_under_shim("budget_holds").unwrap();
//!         assert!(out.status.success());
//!         return;
//!     }
//!     let server = Server::start(ServerOptions::default()).unwrap();
//!     oracle::watch(server.port(), None);
//!     // ... exercise the pool ...
//!     assert!(oracle::max() <= 8);
//! }
//! # fn main() {}
//! ```
//!
//! Limits: only `connect`/`close` calls through the dynamic symbol are seen
//! (Rust std, tokio/mio and libc users all qualify); a socket closed by
//! `dup2` onto its fd is over-counted until that fd is closed; sockets with
//! fd >= 65536 are not tracked (see [`untracked`]). Processes spawned by the
//! harness itself (`mariadbd`, the `mariadb` client) run without the shim.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_void};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Set in the environment of a re-run child, to stop endless re-running if
/// the shim fails to load there.
const CHILD_ENV: &str = "MARIADB_HARNESS_ORACLE_CHILD";

type WatchFn = unsafe extern "C" fn(c_int, *const c_char);
type CountFn = unsafe extern "C" fn() -> c_long;
type ResetFn = unsafe extern "C" fn();

#[derive(Debug, Clone, Copy)]
struct Api {
    watch: WatchFn,
    current: CountFn,
    max: CountFn,
    untracked: CountFn,
    reset_max: ResetFn,
}

fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        let watch = lookup(c"conn_oracle_watch")?;
        let current = lookup(c"conn_oracle_current")?;
        let max = lookup(c"conn_oracle_max")?;
        let untracked = lookup(c"conn_oracle_untracked")?;
        let reset_max = lookup(c"conn_oracle_reset_max")?;
        // SAFETY: these symbols come from oracle.c, whose signatures match
        // the function pointer types.
        unsafe {
            Some(Api {
                watch: std::mem::transmute::<*mut c_void, WatchFn>(watch),
                current: std::mem::transmute::<*mut c_void, CountFn>(current),
                max: std::mem::transmute::<*mut c_void, CountFn>(max),
                untracked: std::mem::transmute::<*mut c_void, CountFn>(untracked),
                reset_max: std::mem::transmute::<*mut c_void, ResetFn>(reset_max),
            })
        }
    })
    .as_ref()
}

fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a valid C string.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!ptr.is_null()).then_some(ptr)
}

#[allow(
    clippy::useless_conversion,
    reason = "c_long is i64 here but i32 on 32-bit targets"
)]
fn widen(value: c_long) -> i64 {
    i64::from(value)
}

fn active_api() -> &'static Api {
    api().expect(
        "mariadb-harness oracle: the LD_PRELOAD shim is not loaded in this process; \
         check oracle::is_active() and use oracle::rerun_under_shim()",
    )
}

/// The shim library (built on first use), for running another program under the
/// oracle: start it with `LD_PRELOAD=<this path>`.
///
/// # Errors
///
/// If the shim cannot be compiled (no `cc`).
pub fn shim_library() -> io::Result<std::path::PathBuf> {
    crate::shim::shim_path()
}

/// Whether the shim is loaded in this process.
pub fn is_active() -> bool {
    api().is_some()
}

/// Counts connections to `127.0.0.1:port` (any address with that port) and,
/// if given, to the unix socket `unix_path`. Replaces any earlier watch;
/// sockets already counted stay counted until closed.
///
/// # Panics
///
/// If the shim is not active, or `unix_path` contains a NUL byte.
pub fn watch(port: u16, unix_path: Option<&Path>) {
    let api = active_api();
    let path = unix_path.map(|p| {
        CString::new(p.as_os_str().as_bytes()).expect("unix socket path contains a NUL byte")
    });
    let ptr = path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
    // SAFETY: the shim copies the string before returning.
    unsafe { (api.watch)(c_int::from(port), ptr) }
}

/// Sockets to the watched port/path currently open (counted from just before
/// `connect` until just after `close`).
///
/// # Panics
///
/// If the shim is not active.
pub fn current() -> i64 {
    // SAFETY: no arguments; the shim's counters are atomic.
    widen(unsafe { (active_api().current)() })
}

/// The highest value [`current`] has had since the start or [`reset_max`].
///
/// # Panics
///
/// If the shim is not active.
pub fn max() -> i64 {
    // SAFETY: as in `current`.
    widen(unsafe { (active_api().max)() })
}

/// Connects to the watched port/path on fds >= 65536, which are not counted.
/// Nonzero means [`current`] and [`max`] may under-count.
///
/// # Panics
///
/// If the shim is not active.
pub fn untracked() -> i64 {
    // SAFETY: as in `current`.
    widen(unsafe { (active_api().untracked)() })
}

/// Sets [`max`] to the current count.
///
/// # Panics
///
/// If the shim is not active.
pub fn reset_max() {
    // SAFETY: no arguments; the shim's counters are atomic.
    unsafe { (active_api().reset_max)() }
}

/// Re-runs one test of the current test binary with the shim preloaded.
///
/// Spawns `std::env::current_exe()` with
/// `--exact TEST_NAME --nocapture --test-threads=1`, `LD_PRELOAD` set to the
/// shim (in front of any existing value) and the rest of the environment
/// inherited; echoes the child's stdout and stderr (through `print!`/`eprint!`,
/// so libtest shows them only on failure or with `--nocapture`) and returns
/// its output. `test_name` is the full libtest name, e.g. `module::test`.
///
/// # Errors
///
/// If the shim cannot be built or the child cannot be run; if the child is
/// itself a re-run (the shim did not load there); or if the name matched no
/// test (the child would otherwise "pass" without running anything).
pub fn rerun_under_shim(test_name: &str) -> io::Result<Output> {
    if std::env::var_os(CHILD_ENV).is_some() {
        return Err(crate::error::other(
            "rerun_under_shim called inside a re-run child: the LD_PRELOAD shim did not load",
        ));
    }
    let shim = crate::shim::shim_path()?;
    let mut preload = shim.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let exe = std::env::current_exe()?;
    let out = Command::new(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("LD_PRELOAD", preload)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !stdout.contains("running 1 test") {
        return Err(crate::error::other(format!(
            "re-running {} --exact {test_name:?} did not run exactly one test ({})",
            exe.display(),
            out.status
        )));
    }
    Ok(out)
}
