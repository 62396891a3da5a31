//! The ceiling: sysbench's own point-select client on the same server.

use std::process::Command;

use mariadb_harness::Server;

fn base(server: &Server, db: &str) -> Command {
    let mut cmd = Command::new("sysbench");
    cmd.env_remove("LD_PRELOAD").args([
        "oltp_point_select",
        "--db-driver=mysql",
        "--mysql-host=127.0.0.1",
        &format!("--mysql-port={}", server.port()),
        "--mysql-user=root",
        "--mysql-password=",
        &format!("--mysql-db={db}"),
        "--tables=1",
        "--table-size=10000",
    ]);
    cmd
}

/// Makes sure `sysbench` is installed (Debian's package, installed when missing).
pub fn ensure_installed() -> Result<(), String> {
    ensure_program("sysbench", "sysbench")
}

/// Installs Debian's `package` (with apt-get) unless `program --version` runs.
pub fn ensure_program(program: &str, package: &str) -> Result<(), String> {
    if Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    eprintln!("{program} is missing: installing Debian's {package} package");
    let ok = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "could not install {program} (apt-get install -y {package})"
        ))
    }
}

/// Creates and fills `sbtest1` (10 000 rows): the table every benchmark reads.
pub fn prepare(server: &Server, db: &str) -> Result<(), String> {
    let out = base(server, db)
        .arg("prepare")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `oltp_point_select` with `threads` for `secs`; returns queries per second.
pub fn point_select(server: &Server, db: &str, threads: usize, secs: u64) -> Result<f64, String> {
    let out = base(server, db)
        .args([
            &format!("--threads={threads}"),
            &format!("--time={secs}"),
            "run",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "    queries:                             812345 (81234.50 per sec.)"
    text.lines()
        .find(|l| l.trim_start().starts_with("queries:"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected sysbench output:\n{text}"))
}

pub fn version() -> String {
    Command::new("sysbench")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
