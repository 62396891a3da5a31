//! A running private `mariadbd`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::other;
use crate::{ServerOptions, mariadbd, paths, ready, spawner, sql, template};

/// How long a start may take before it is reported as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts with different ports when the chosen port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// Longest unix socket path the kernel accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A running private MariaDB server with its own datadir, tmpdir and port.
///
/// Dropping it kills the server (SIGKILL) and removes its files. The server
/// is also killed when the process exits, even if it is never dropped.
/// Administrative SQL ([`Server::sql`]) runs as root over the unix socket.
#[derive(Debug)]
pub struct Server {
    /// `run/<pid>-<n>`: holds `data/` and `tmp/`.
    dir: PathBuf,
    datadir: PathBuf,
    socket: PathBuf,
    port: u16,
    options: ServerOptions,
    child: Mutex<Option<Child>>,
    pid: AtomicU32,
}

/// Why a launch failed: a lost race for the port is worth another try.
enum LaunchError {
    PortTaken(io::Error),
    Failed(io::Error),
}

impl LaunchError {
    fn into_io(self) -> io::Error {
        match self {
            LaunchError::PortTaken(e) | LaunchError::Failed(e) => e,
        }
    }
}

/// The least `max_connections` MariaDB takes: it raises a smaller value to this.
pub const MIN_MAX_CONNECTIONS: u32 = 10;

impl Server {
    /// Starts a new server from the template datadir on a free port and
    /// waits until it accepts connections (at most 30 s).
    ///
    /// The first call on a machine initialises the template (a few seconds).
    ///
    /// # Errors
    ///
    /// If `opts.max_connections` is below [`MIN_MAX_CONNECTIONS`] (`InvalidInput`: the
    /// server would run with 10, and a test of a smaller limit would pass without
    /// testing it), the programs are missing, the template cannot be built, or the
    /// server does not become ready; the error includes the tail of the server's error
    /// log.
    pub fn start(opts: ServerOptions) -> io::Result<Server> {
        if opts.max_connections < MIN_MAX_CONNECTIONS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "max_connections {} is below MariaDB's least, {MIN_MAX_CONNECTIONS} (the server \
                     would quietly run with {MIN_MAX_CONNECTIONS}); to leave a test fewer slots, hold \
                     the others with idle connections",
                    opts.max_connections
                ),
            ));
        }
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let dir = paths::new_server_dir()?;
            let datadir = dir.join("data");
            let socket = datadir.join("mysql.sock");
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(other(format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter TMPDIR",
                    socket.display()
                )));
            }
            let server = Server {
                dir,
                datadir,
                socket,
                port: mariadbd::free_port()?,
                options: opts.clone(),
                child: Mutex::new(None),
                pid: AtomicU32::new(0),
            };
            // On failure, dropping `server` removes its files.
            server.prepare_files()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(LaunchError::PortTaken(e)) => last_error = Some(e),
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| other("server start failed")))
    }

    /// The process-wide server, started on first use with
    /// [`ServerOptions::default()`] and never dropped (it dies with the process).
    ///
    /// # Panics
    ///
    /// If the server cannot be started.
    pub fn shared() -> &'static Server {
        SHARED.get_or_init(|| {
            let server = Server::start(ServerOptions::default()).unwrap_or_else(|e| {
                panic!("mariadb-harness: cannot start the shared MariaDB server: {e}")
            });
            // SAFETY: registering a plain `extern "C"` function.
            unsafe { libc::atexit(remove_shared_at_exit) };
            server
        })
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix socket of the server.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The server's datadir.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The pid of the current (or, after [`Server::stop`], the last) `mariadbd` process.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// The configured `max_connections`.
    pub fn max_connections(&self) -> u32 {
        self.options.max_connections
    }

    /// URL for the non-SUPER application account:
    /// `mysql://app:app-secret@127.0.0.1:PORT/DB`.
    pub fn app_url(&self, database: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{database}",
            crate::APP_USER,
            crate::APP_PASSWORD,
            self.port
        )
    }

    /// URL for root (SUPER, empty password) over TCP: `mysql://root@127.0.0.1:PORT/DB`.
    pub fn root_url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh database named `<prefix>_<pid>_<n>` (the prefix
    /// reduced to `[A-Za-z0-9_]` and shortened to fit 64 characters) and
    /// returns its name.
    ///
    /// # Errors
    ///
    /// If `CREATE DATABASE` fails.
    pub fn create_database(&self, prefix: &str) -> io::Result<String> {
        let suffix = format!("_{}_{}", std::process::id(), paths::next_serial());
        let mut name = sql::identifier_fragment(prefix);
        name.truncate(64 - suffix.len());
        name.push_str(&suffix);
        self.sql(&format!("CREATE DATABASE `{name}`"))?;
        Ok(name)
    }

    /// Runs `sql` as root through the `mariadb` client over the unix socket
    /// (`--batch --skip-column-names`) and returns its stdout.
    ///
    /// # Errors
    ///
    /// If the client fails; the error includes its stderr.
    pub fn sql(&self, sql: &str) -> io::Result<String> {
        sql::run(&self.socket, sql)
    }

    /// `SHOW GLOBAL STATUS LIKE 'name'`, parsed as `u64`.
    ///
    /// # Errors
    ///
    /// If the query fails, the variable does not exist or is not a number.
    pub fn global_status(&self, name: &str) -> io::Result<u64> {
        let out = self.sql(&format!(
            "SHOW GLOBAL STATUS LIKE {}",
            sql::quote_literal(name)
        ))?;
        let value = out
            .lines()
            .filter_map(|line| line.split_once('\t'))
            // LIKE treats `_` as a wildcard; keep only the exact name.
            .find(|(found, _)| found.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no global status variable {name:?}"),
                )
            })?;
        value.parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("status {name} = {value:?} is not a u64: {e}"),
            )
        })
    }

    /// Stops the server cleanly (SIGTERM, then waits for it to exit),
    /// keeping datadir and port for [`Server::restart_after_stop`].
    /// A paused server is resumed so that it can shut down.
    ///
    /// # Errors
    ///
    /// If the server is not running, or does not exit within 60 s (it is then killed).
    pub fn stop(&self) -> io::Result<()> {
        let mut guard = self.lock_child();
        let Some(mut child) = guard.take() else {
            return Err(other("server is not running"));
        };
        self.signal(libc::SIGTERM)?;
        self.signal(libc::SIGCONT)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(other(format!(
                    "server did not stop within {STOP_TIMEOUT:?}; killed it\n{}",
                    mariadbd::log_tail(&self.datadir)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts the server again after [`Server::stop`], on the same port and
    /// datadir, and waits until it is ready.
    ///
    /// # Errors
    ///
    /// If the server is still running, or does not become ready (for
    /// example because another process took the port meanwhile).
    pub fn restart_after_stop(&self) -> io::Result<()> {
        if self.lock_child().is_some() {
            return Err(other("server is still running; call stop() first"));
        }
        self.launch().map_err(LaunchError::into_io)
    }

    /// Freezes the server with SIGSTOP: connections stay open but nothing is answered.
    ///
    /// # Errors
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn pause(&self) -> io::Result<()> {
        let _guard = self.running()?;
        self.signal(libc::SIGSTOP)
    }

    /// Continues a server frozen by [`Server::pause`] (SIGCONT).
    ///
    /// # Errors
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn resume(&self) -> io::Result<()> {
        let _guard = self.running()?;
        self.signal(libc::SIGCONT)
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> io::Result<MutexGuard<'_, Option<Child>>> {
        let guard = self.lock_child();
        if guard.is_none() {
            return Err(other("server is not running"));
        }
        Ok(guard)
    }

    fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).map_err(|_| other("bad pid"))?;
        // SAFETY: plain kill(2) on our own child's pid (not reaped while we hold the lock).
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Creates the server's directories: a copy of the template datadir and
    /// an empty private tmpdir (see [`Server::command`]).
    fn prepare_files(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| crate::error::at(e, "cannot create", &self.dir))?;
        fs::create_dir_all(self.tmpdir())?;
        template::copy_to(&self.datadir)
    }

    fn tmpdir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Spawns `mariadbd` for this datadir and port and waits until it is ready.
    fn launch(&self) -> Result<(), LaunchError> {
        let command = mariadbd::command(
            &self.datadir,
            &self.socket,
            &self.tmpdir(),
            self.port,
            &self.options,
        )
        .map_err(LaunchError::Failed)?;
        let child = spawner::spawn_tied(command).map_err(LaunchError::Failed)?;
        self.pid.store(child.id(), Ordering::SeqCst);
        *self.lock_child() = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                *self.lock_child() = None;
                let tail = mariadbd::log_tail(&self.datadir);
                let error = other(format!(
                    "mariadbd on port {} exited during startup ({status})\n{tail}",
                    self.port
                ));
                return Err(if mariadbd::is_port_problem(&tail) {
                    LaunchError::PortTaken(error)
                } else {
                    LaunchError::Failed(error)
                });
            }
            if ready::tcp_greets(self.port) && self.sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                if let Some(mut child) = self.lock_child().take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(LaunchError::Failed(other(format!(
                    "mariadbd on port {} not ready after {READY_TIMEOUT:?}\n{}",
                    self.port,
                    mariadbd::log_tail(&self.datadir)
                ))));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the child has exited.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut guard = self.lock_child();
        guard.as_mut()?.try_wait().ok().flatten()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.lock_child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

static SHARED: OnceLock<Server> = OnceLock::new();

/// At normal process exit: kill the shared server and remove its files, so
/// they need not wait for the next process's sweep. (If the process dies
/// abnormally, PDEATHSIG kills the server and the sweep removes the files.)
extern "C" fn remove_shared_at_exit() {
    let Some(server) = SHARED.get() else { return };
    if let Ok(mut guard) = server.child.try_lock()
        && let Some(mut child) = guard.take()
    {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = fs::remove_dir_all(&server.dir);
}
