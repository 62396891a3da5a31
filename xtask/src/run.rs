//! `cargo xtask run`: the server against `DATABASE_URL`, or against the private
//! development MariaDB (started when needed). Prints where the API and the dashboard are
//! and a development token; generates `SERVER_SECRET` and `ADMIN_TOKEN` when unset.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

pub(crate) fn run(args: &[String]) -> ExitCode {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["run", "--quiet", "-p", "server", "--", "serve"])
        .args(args);
    if std::env::var_os("DATABASE_URL").is_none() {
        let dir = match crate::db::dir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {}", crate::error_chain(&e));
                return ExitCode::FAILURE;
            }
        };
        match mariadb_harness::dev::up(&dir) {
            Ok(s) => {
                eprintln!(
                    "DATABASE_URL is not set: using the private MariaDB on port {} (`cargo xtask db down` stops it)",
                    s.port
                );
                cmd.env("DATABASE_URL", s.app_url());
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if std::env::var_os("SERVER_SECRET").is_none() {
        eprintln!(
            "development mode: SERVER_SECRET is not set, so a random one was generated (tokens die with this run)"
        );
        cmd.env("SERVER_SECRET", random_hex(32));
    }
    // The admin listener's control routes need a token; printed below once it is up.
    let admin_token = std::env::var_os("ADMIN_TOKEN").is_none().then(|| {
        let token = random_hex(32);
        cmd.env("ADMIN_TOKEN", &token);
        token
    });
    let api = local(&std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into()));
    let admin = local(&std::env::var("ADMIN_ADDR").unwrap_or_else(|_| "127.0.0.1:9090".into()));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot run the server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if wait_until_up(&admin, Duration::from_secs(300)) {
        let player = http(&api, "POST", "/api/players", r#"{"name":"dev"}"#)
            .ok()
            .and_then(|body| Some((extract(&body, "id")?, extract(&body, "token")?)));
        println!("API:       http://{api}/api");
        println!("dashboard: http://{admin}/dashboard   (metrics: http://{admin}/metrics)");
        match player {
            Some((id, t)) => println!(
                "development player {id}, token: {t}\n  curl -H 'Authorization: Bearer {t}' http://{api}/api/players/{id}/quests"
            ),
            None => println!("(could not create a development player; see the server log)"),
        }
        if let Some(t) = &admin_token {
            println!(
                "development admin token (ADMIN_TOKEN was not set): {t}\n  curl -X POST -H 'Authorization: Bearer {t}' http://{admin}/admin/suspend   (then /admin/resume)"
            );
        }
    }
    match child.wait() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `0.0.0.0:8080` → `127.0.0.1:8080`: where a local client reaches a listener.
fn local(addr: &str) -> String {
    addr.replacen("0.0.0.0", "127.0.0.1", 1)
}

fn wait_until_up(admin: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if http(admin, "GET", "/healthz", "").is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A minimal HTTP/1.1 request (no client crate in xtask); returns the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    if !resp.starts_with("HTTP/1.1 2") {
        return Err(std::io::Error::other(
            resp.lines().next().unwrap_or("").to_owned(),
        ));
    }
    Ok(resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

/// The value of `"key"` in a flat JSON object, as text (strings unquoted).
fn extract(json: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let nanos = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (nanos >> (i % 16 * 8)) as u8);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
