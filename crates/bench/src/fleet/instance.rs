//! One server instance: the real `server` binary as a child process, under the
//! connection oracle, on ports 0 (read back from its log), its log kept in a file.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long an instance may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running instance.
#[derive(Debug)]
pub struct Instance {
    /// `A`, `B`, … and, for an instance started again, its generation (`B2`).
    pub label: String,
    /// The JSON API.
    pub api: SocketAddr,
    /// `/api/pool`, `/metrics`.
    pub admin: SocketAddr,
    /// Its oracle file (see [`super::oracle`]).
    pub oracle_file: PathBuf,
    child: Child,
}

/// What every instance of a run is started with.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `server` binary.
    pub binary: PathBuf,
    /// Environment variables (on top of `PATH` only: the rest is cleared).
    pub env: Vec<(String, String)>,
    /// Where logs and oracle files go.
    pub dir: PathBuf,
}

impl Instance {
    /// Starts `label` and waits until both listeners are bound.
    ///
    /// # Errors
    ///
    /// The binary cannot be run, exits, or does not log its listeners within 60 s
    /// (the error holds the end of its log).
    pub fn start(
        launch: &Launch,
        label: &str,
        oracle_env: &[(String, String)],
    ) -> Result<Instance, String> {
        let log_path = launch.dir.join(format!("{label}.log"));
        let oracle_file = launch.dir.join(format!("{label}.oracle"));
        let mut cmd = Command::new(&launch.binary);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .envs(oracle_env.iter().map(|(k, v)| (k, v)))
        .env("FLEET_ORACLE_FILE", &oracle_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child
        // when the thread that started it exits (the simulation starts every instance
        // from its main thread), so that no instance outlives the simulation.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", launch.binary.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = mpsc::channel::<String>();
        let mut log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut api, mut admin) = (None, None);
        while api.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    api = api.or_else(|| address_after(&line, "API listening on http://"));
                    admin = admin.or_else(|| address_after(&line, "dashboard on http://"));
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "instance {label} did not start listening; the end of {}:\n{}",
                        log_path.display(),
                        tail(&log_path)
                    ));
                }
            }
        }
        Ok(Instance {
            label: label.to_owned(),
            api: api.unwrap_or_else(|| unreachable!()),
            admin: admin.unwrap_or_else(|| unreachable!()),
            oracle_file,
            child,
        })
    }

    /// `kill -9`: no shutdown, no goodbye to the database; the kernel closes its sockets.
    pub fn kill(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.oracle_file
    }

    /// SIGTERM, and waits for the graceful shutdown (SIGKILL after 20 s).
    pub fn stop(mut self) -> PathBuf {
        // SAFETY: kill(2) with the pid of our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.oracle_file;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.oracle_file
    }
}

fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    line.split(marker).nth(1)?.split('/').next()?.parse().ok()
}

/// The last lines of a log, for an error message.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::address_after;

    #[test]
    fn the_listeners_are_read_from_the_log_lines() {
        let api = "2024-01-01T00:00:00Z  INFO server::startup: API listening on http://127.0.0.1:4242/api (WebSocket: ws://127.0.0.1:4242/ws)";
        assert_eq!(
            address_after(api, "API listening on http://"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(address_after(api, "dashboard on http://"), None);
    }
}
