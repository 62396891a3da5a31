//! `cargo xtask db up|down|status|url|shell`: a private MariaDB for development, under
//! `target/dev-db` (its own port, its own data; never the machine's server).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use mariadb_harness::dev;

const USAGE: &str = "usage: cargo xtask db <up|down|status|url|shell>";

/// `target/dev-db` of the workspace around the current directory.
///
/// # Errors
///
/// As [`crate::root`].
pub(crate) fn dir() -> Result<PathBuf, crate::RootError> {
    Ok(crate::root()?.join("target/dev-db"))
}

pub(crate) fn run(args: &[String]) -> ExitCode {
    let dir = match dir() {
        Ok(d) => d,
        Err(e) => return fail(crate::error_chain(&e)),
    };
    match args.first().map(String::as_str) {
        Some("up") => match dev::up(&dir) {
            Ok(s) => {
                println!(
                    "MariaDB is up (pid {}, port {}, data in {})",
                    s.pid,
                    s.port,
                    dir.display()
                );
                println!("DATABASE_URL={}", s.app_url());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Some("down") => match dev::down(&dir) {
            Ok(true) => {
                println!("MariaDB stopped (data kept in {})", dir.display());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("MariaDB was not running");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Some("status") => match dev::status(&dir) {
            Some(s) => {
                println!(
                    "running: pid {}, port {}, socket {}",
                    s.pid,
                    s.port,
                    s.socket.display()
                );
                ExitCode::SUCCESS
            }
            None => {
                println!("not running (start it with `cargo xtask db up`)");
                ExitCode::from(1)
            }
        },
        Some("url") => match dev::status(&dir) {
            Some(s) => {
                println!("{}", s.app_url());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("not running (start it with `cargo xtask db up`)");
                ExitCode::from(1)
            }
        },
        Some("shell") => match dev::status(&dir) {
            Some(s) => {
                let status = Command::new("mariadb")
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", s.socket.display()))
                    .args(["-uroot", dev::DATABASE])
                    .status();
                match status {
                    Ok(st) if st.success() => ExitCode::SUCCESS,
                    Ok(_) => ExitCode::FAILURE,
                    Err(e) => fail(e),
                }
            }
            None => {
                eprintln!("not running (start it with `cargo xtask db up`)");
                ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
