//! Running SQL through the `mariadb` command-line client.
//!
//! The client is used (rather than a Rust driver) so that this crate stays
//! dependency-free and so that administrative SQL goes over the unix socket,
//! never through the TCP port whose connections the tests count.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `sql` as root over the unix socket `socket` with
/// `--batch --skip-column-names` and returns stdout.
///
/// # Errors
///
/// If the client cannot be run or exits unsuccessfully; the error includes
/// the client's stderr and the SQL.
pub(crate) fn run(socket: &Path, sql: &str) -> io::Result<String> {
    let client = crate::programs::client()?;
    let mut command = Command::new(client);
    command
        .arg("--no-defaults")
        .arg("--protocol=socket")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
        .stdin(Stdio::null());
    scrub_env(&mut command);
    let out = command.output()?;
    if out.status.success() {
        return String::from_utf8(out.stdout)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Err(crate::error::other(format!(
        "mariadb client failed ({}): {}\nSQL: {sql}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Removes environment that would change what the client or server does: a
/// password from the environment, and this crate's own `LD_PRELOAD` shim
/// (helper processes must not count as the test's connections).
pub(crate) fn scrub_env(command: &mut Command) {
    command.env_remove("MYSQL_PWD");
    if let Some(preload) = std::env::var_os("LD_PRELOAD") {
        let kept: Vec<&str> = preload
            .to_str()
            .unwrap_or("")
            .split([':', ' '])
            .filter(|p| !p.is_empty() && !crate::shim::is_shim_path(p))
            .collect();
        if kept.is_empty() {
            command.env_remove("LD_PRELOAD");
        } else {
            command.env("LD_PRELOAD", kept.join(":"));
        }
    }
}

/// Quotes `s` as an SQL string literal (single quotes, backslashes escaped).
pub(crate) fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Turns `prefix` into a safe identifier fragment: `[A-Za-z0-9_]` only.
pub(crate) fn identifier_fragment(prefix: &str) -> String {
    let cleaned: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if cleaned.is_empty() {
        "db".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_cleans() {
        assert_eq!(quote_literal("a'b\\c"), "'a''b\\\\c'");
        assert_eq!(identifier_fragment("my-db.x"), "my_db_x");
        assert_eq!(identifier_fragment(""), "db");
    }
}
