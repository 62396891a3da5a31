//! A long-lived development server (`cargo xtask db up`): unlike [`Server`](crate::Server)
//! it outlives the process that starts it, and keeps its data between runs.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{ServerOptions, mariadbd, paths, ready, sql, template};

/// The database `up` creates for the game.
pub const DATABASE: &str = "game";

/// A running development server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevServer {
    /// Its directory (`data/`, `tmp/`, `port`).
    pub dir: PathBuf,
    pub pid: u32,
    pub port: u16,
    pub socket: PathBuf,
}

impl DevServer {
    /// `DATABASE_URL` for the application account and the game database.
    pub fn app_url(&self) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{DATABASE}",
            crate::APP_USER,
            crate::APP_PASSWORD,
            self.port
        )
    }

    /// Runs SQL as root over the socket.
    ///
    /// # Errors
    ///
    /// As [`Server::sql`](crate::Server::sql).
    pub fn sql(&self, sql: &str) -> io::Result<String> {
        sql::run(&self.socket, sql)
    }
}

fn datadir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// The server in `dir`, if one is running there.
pub fn status(dir: &Path) -> Option<DevServer> {
    let data = datadir(dir);
    let pid: u32 = fs::read_to_string(data.join("mysqld.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = fs::read_to_string(dir.join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !paths::pid_alive(pid) || !ready::tcp_greets(port) {
        return None;
    }
    Some(DevServer {
        dir: dir.to_owned(),
        pid,
        port,
        socket: data.join("mysql.sock"),
    })
}

/// Starts the server in `dir` unless it is already running (idempotent). The first start
/// copies the harness's template datadir and creates the `game` database; later starts
/// reuse the data and, when it is free, the port.
///
/// # Errors
///
/// If `mariadbd` is missing (the message gives the install command), the datadir cannot
/// be prepared, or the server does not become ready within 30 s (the error log's tail).
pub fn up(dir: &Path) -> io::Result<DevServer> {
    if let Some(running) = status(dir) {
        return Ok(running);
    }
    crate::programs::mariadbd().map_err(|_| {
        crate::error::other(
            "mariadbd is not installed: sudo apt-get install -y mariadb-server \
             (or set DATABASE_URL to an existing server)",
        )
    })?;
    let data = datadir(dir);
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp)?;
    if !data.join("mysql").is_dir() {
        let _ = fs::remove_dir_all(&data);
        template::copy_to(&data)?;
    }
    let port = fs::read_to_string(dir.join("port"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .map_or_else(mariadbd::free_port, Ok)?;
    fs::write(dir.join("port"), port.to_string())?;
    let socket = data.join("mysql.sock");
    let options = ServerOptions {
        max_connections: 151,
        ..Default::default()
    };
    let mut command = mariadbd::command(&data, &socket, &tmp, port, &options)?;
    // Its own session: a Ctrl-C in the terminal that ran `db up` must not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(running) = status(dir) {
            running.sql(&format!("CREATE DATABASE IF NOT EXISTS `{DATABASE}`"))?;
            return Ok(running);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(crate::error::other(format!(
        "the development server did not become ready:\n{}",
        mariadbd::log_tail(&data)
    )))
}

/// Stops the server in `dir` (SIGTERM, then waits up to 60 s). Returns whether one was
/// running. Data stays for the next `up`.
///
/// # Errors
///
/// If it does not stop in time.
pub fn down(dir: &Path) -> io::Result<bool> {
    let Some(running) = status(dir) else {
        return Ok(false);
    };
    // SAFETY: kill(2) with a pid read from the server's own pid file.
    unsafe {
        libc::kill(running.pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while paths::pid_alive(running.pid) {
        if Instant::now() > deadline {
            return Err(crate::error::other(
                "the development server did not stop within 60 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}
