//! Locating the MariaDB programs.
//!
//! `mariadbd` lives in `/usr/sbin`, which is often not on a normal user's
//! `PATH`, so a few well-known directories are searched after `PATH`.

use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/local/mysql/bin",
    "/usr/local/mariadb/bin",
];

/// The server binary.
pub(crate) fn mariadbd() -> io::Result<PathBuf> {
    cached(&MARIADBD, &["mariadbd", "mysqld"])
}

/// The datadir initialisation script.
pub(crate) fn install_db() -> io::Result<PathBuf> {
    cached(&INSTALL_DB, &["mariadb-install-db", "mysql_install_db"])
}

/// The command-line client.
pub(crate) fn client() -> io::Result<PathBuf> {
    cached(&CLIENT, &["mariadb", "mysql"])
}

static MARIADBD: OnceLock<PathBuf> = OnceLock::new();
static INSTALL_DB: OnceLock<PathBuf> = OnceLock::new();
static CLIENT: OnceLock<PathBuf> = OnceLock::new();

fn cached(cell: &OnceLock<PathBuf>, names: &[&str]) -> io::Result<PathBuf> {
    if let Some(found) = cell.get() {
        return Ok(found.clone());
    }
    let found = find(names)?;
    Ok(cell.get_or_init(|| found).clone())
}

fn find(names: &[&str]) -> io::Result<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let dirs = path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "cannot find any of {names:?} on PATH or in {EXTRA_DIRS:?}; install mariadb-server and mariadb-client"
        ),
    ))
}
