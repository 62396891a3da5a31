//! How a private `mariadbd` is run: its command line, a free port, and
//! reading its logs when something goes wrong.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{ServerOptions, programs, sql, template};

/// The `mariadbd` command line for one server; output goes to `console.log`
/// in the datadir.
///
/// `tmpdir` must be private to this server: every `mariadbd` deletes all
/// `#sql*` files in its tmpdir when it starts, so servers sharing `/tmp`
/// would destroy each other's on-disk temporary tables.
///
/// # Errors
///
/// If `mariadbd` cannot be found or `console.log` cannot be created.
pub(crate) fn command(
    datadir: &Path,
    socket: &Path,
    tmpdir: &Path,
    port: u16,
    options: &ServerOptions,
) -> io::Result<Command> {
    let mariadbd = programs::mariadbd()?;
    let mut command = match options.wrapper.split_first() {
        None => Command::new(mariadbd),
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(mariadbd);
            c
        }
    };
    command.arg("--no-defaults");
    if template::is_root() {
        command.arg("--user=root");
    }
    command
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!(
            "--pid-file={}",
            datadir.join("mysqld.pid").display()
        ))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--max-connections={}", options.max_connections))
        .arg("--character-set-server=utf8mb4")
        .arg("--collation-server=utf8mb4_unicode_ci")
        .arg("--skip-log-bin")
        .args(template::INNODB_ARGS)
        .arg("--innodb-flush-log-at-trx-commit=2")
        .arg("--skip-name-resolve")
        .arg(format!(
            "--log-error={}",
            datadir.join("error.log").display()
        ))
        .arg(format!("--tmpdir={}", tmpdir.display()))
        .args(&options.extra_args);
    let console = File::options()
        .create(true)
        .append(true)
        .open(datadir.join("console.log"))?;
    command
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    sql::scrub_env(&mut command);
    Ok(command)
}

/// A port that was free a moment ago (never 3306).
///
/// # Errors
///
/// If no socket can be bound on 127.0.0.1.
pub(crate) fn free_port() -> io::Result<u16> {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if port != 3306 {
            return Ok(port);
        }
    }
}

/// The last 30 lines of the server's error log and console output.
pub(crate) fn log_tail(datadir: &Path) -> String {
    let mut out = String::new();
    for name in ["error.log", "console.log"] {
        let path = datadir.join(name);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- tail of {} ---\n", path.display()));
        for line in &lines[lines.len().saturating_sub(30)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether a failed start was caused by the port being taken (worth a retry
/// with another port).
pub(crate) fn is_port_problem(log: &str) -> bool {
    log.contains("Bind on TCP/IP port")
        || log.contains("Address already in use")
        || log.contains("another mysqld server running on port")
}
