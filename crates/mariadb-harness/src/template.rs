//! The template datadir: initialised once per machine, copied per server.
//!
//! `mariadb-install-db` takes 0.7 s median with a multi-second tail; copying
//! an initialised datadir is much cheaper. The template is cached
//! at `temp_dir()/mariadb-harness/template-<hash>`, where the hash covers the
//! server version and everything that shapes the template, and is published
//! atomically (see [`crate::publish`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Accounts created in the template (see the file for details).
const ACCOUNTS_SQL: &str = include_str!("template.sql");

/// Bump when the template's shape changes in a way the hash cannot see.
const FORMAT: &str = "mariadb-harness template v2";

/// Server settings baked into the template so that every start matches them
/// (a different `innodb-log-file-size` would make each start rebuild the redo log).
pub(crate) const INNODB_ARGS: &[&str] = &[
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=48M",
];

/// Returns the path of the template datadir, creating it if needed.
///
/// # Errors
///
/// If the programs cannot be found or `mariadb-install-db` fails (the error
/// contains its output).
pub(crate) fn template_dir() -> io::Result<PathBuf> {
    static CACHED: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = CACHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = cached.as_ref().filter(|d| d.is_dir()) {
        return Ok(dir.clone());
    }
    let target = crate::paths::base_dir().join(format!("template-{}", version_hash()?));
    let dir = crate::publish::publish(&target, build)?;
    *cached = Some(dir.clone());
    Ok(dir)
}

/// Copies the template datadir to `dest` (which must not exist) with `cp -a`.
///
/// # Errors
///
/// If `cp` fails.
pub(crate) fn copy_to(dest: &Path) -> io::Result<()> {
    let template = template_dir()?;
    let out = Command::new("cp")
        .arg("-a")
        .arg(&template)
        .arg(dest)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(crate::error::other(format!(
            "cp -a {} {} failed ({}): {}",
            template.display(),
            dest.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn version_hash() -> io::Result<String> {
    let mariadbd = crate::programs::mariadbd()?;
    let version = Command::new(&mariadbd)
        .arg("--version")
        .stdin(Stdio::null())
        .output()?;
    let install_db = crate::programs::install_db()?;
    Ok(crate::hash::Fnv::new()
        .add(FORMAT.as_bytes())
        .add(&version.stdout)
        .add(mariadbd.as_os_str().as_encoded_bytes())
        .add(install_db.as_os_str().as_encoded_bytes())
        .add(ACCOUNTS_SQL.as_bytes())
        .add(INNODB_ARGS.join(" ").as_bytes())
        .add(&[u8::from(is_root())])
        .hex())
}

/// `--user=root` is required when running as root, and refused otherwise.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn build(datadir: &Path) -> io::Result<()> {
    let sibling = |suffix: &str| {
        let mut path = datadir.as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    };
    let sql_path = sibling(".sql");
    let tmpdir = sibling(".tmpdir");
    fs::write(&sql_path, ACCOUNTS_SQL)
        .map_err(|e| crate::error::at(e, "cannot write", &sql_path))?;
    fs::create_dir_all(&tmpdir).map_err(|e| crate::error::at(e, "cannot create", &tmpdir))?;
    let result = install(datadir, &sql_path, &tmpdir);
    let _ = fs::remove_file(&sql_path);
    let _ = fs::remove_dir_all(&tmpdir);
    result
}

/// Runs `mariadb-install-db`. `tmpdir` must be private: every `mariadbd`
/// (the bootstrap one included) deletes all `#sql*` files in its tmpdir when
/// it starts, so servers sharing `/tmp` destroy each other's temporary tables.
fn install(datadir: &Path, sql_path: &Path, tmpdir: &Path) -> io::Result<()> {
    let mut command = Command::new(crate::programs::install_db()?);
    command
        .arg("--no-defaults")
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--extra-file={}", sql_path.display()))
        .arg(format!("--tmpdir={}", tmpdir.display()))
        .args(INNODB_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if is_root() {
        command.arg("--user=root");
    }
    crate::sql::scrub_env(&mut command);
    let out = crate::spawner::spawn_tied(command)?.wait_with_output()?;
    if out.status.success() && datadir.join("mysql").is_dir() {
        return Ok(());
    }
    Err(crate::error::other(format!(
        "mariadb-install-db into {} failed ({}):\n{}\n{}",
        datadir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
