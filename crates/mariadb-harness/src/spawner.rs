//! Spawning children that die with this process.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
//! not the process. libtest runs each test on its own short-lived thread, so
//! a server spawned directly from a test would be killed as soon as that test
//! function returned. Every tied child is therefore spawned by one dedicated
//! helper thread that lives (blocked on its channel) until the process exits.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};

struct Request {
    command: Command,
    reply: Sender<io::Result<Child>>,
}

static SPAWNER: OnceLock<Sender<Request>> = OnceLock::new();

/// Spawns `command` with `PR_SET_PDEATHSIG = SIGKILL` from the long-lived
/// helper thread, so the child is killed when this process exits.
///
/// # Errors
///
/// The spawn error, or an error if the helper thread cannot be started.
pub(crate) fn spawn_tied(command: Command) -> io::Result<Child> {
    let spawner = match SPAWNER.get() {
        Some(s) => s,
        None => {
            let tx = start_helper()?;
            SPAWNER.get_or_init(|| tx)
        }
    };
    let (reply, answer) = mpsc::channel();
    spawner
        .send(Request { command, reply })
        .map_err(|_| crate::error::other("mariadb-harness spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| crate::error::other("mariadb-harness spawner thread dropped a request"))?
}

fn start_helper() -> io::Result<Sender<Request>> {
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("mariadb-harness-spawner".into())
        .spawn(move || {
            // The sender lives in a static, so this loop never ends: the
            // thread (the children's "parent" for PDEATHSIG) lives as long
            // as the process. A losing racer's channel closes and its thread ends,
            // but that thread never spawned anything.
            for Request { mut command, reply } in rx {
                tie_to_this_thread(&mut command);
                let _ = reply.send(command.spawn());
            }
        })?;
    Ok(tx)
}

fn tie_to_this_thread(command: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // getppid) and does not allocate on the success path.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
