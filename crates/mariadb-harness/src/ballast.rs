//! Idle connections of the application's account that take server slots: how a test
//! gets fewer than MariaDB's least `max_connections` (10).

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::other;
use crate::{APP_PASSWORD, APP_USER, Server, programs, sql};

/// How long [`Server::hold_slots`] waits for its connections to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections held by [`Server::hold_slots`]; dropping it ends them.
#[must_use = "the slots are given back when this is dropped"]
#[derive(Debug)]
pub struct Ballast {
    clients: Vec<Child>,
}

impl Ballast {
    /// How many connections are held.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// `true` if none are.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        for c in &mut self.clients {
            let _ = c.kill();
        }
        for c in &mut self.clients {
            let _ = c.wait();
        }
    }
}

impl Server {
    /// Takes `n` of the server's connection slots with idle sessions of the
    /// application's account (each a `mariadb` client over the unix socket, in its own
    /// process, so a connection oracle in this one does not count them), and returns
    /// once all are logged in. With `max_connections` 10 (MariaDB's least) and `n` = 10
    /// − k, the application's account gets k connections before ERROR 1040.
    ///
    /// # Errors
    ///
    /// If a client cannot be started, or the sessions are not all logged in within 30 s.
    pub fn hold_slots(&self, n: usize) -> io::Result<Ballast> {
        let marker = format!("ballast_{}", crate::paths::next_serial());
        let client = programs::client()?;
        let mut ballast = Ballast {
            clients: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let mut command = Command::new(&client);
            command
                .arg("--no-defaults")
                .arg("--protocol=socket")
                .arg(format!("--socket={}", self.socket_path().display()))
                .arg(format!("-u{APP_USER}"))
                .arg(format!("-p{APP_PASSWORD}"))
                // The marker finds these sessions in the process list.
                .args(["-e", &format!("SELECT SLEEP(86400) AS {marker}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            sql::scrub_env(&mut command);
            ballast.clients.push(command.spawn()?);
        }
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        let count = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%' \
             AND INFO NOT LIKE '%PROCESSLIST%'"
        );
        loop {
            let held: usize = self.sql(&count)?.trim().parse().unwrap_or(0);
            if held >= n {
                return Ok(ballast);
            }
            if Instant::now() > deadline {
                return Err(other(format!(
                    "only {held} of {n} held connections logged in within {LOGIN_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
