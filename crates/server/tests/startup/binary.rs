//! The real binary: it refuses to start without a secret, its token command prints a
//! token the API accepts, and it shuts down on SIGTERM with no unit in use.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mariadb_harness::Server;
use serde_json::json;

use crate::common::{self, SECRET};

/// The built binary, with a clean environment.
fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    cmd
}

#[test]
fn the_binary_refuses_to_start_without_a_secret() {
    // Arrange
    let server = Server::shared();
    let db = server.create_database("nosecret").unwrap();

    // Act
    let out = binary()
        .env("DATABASE_URL", server.app_url(&db))
        .output()
        .expect("run the server binary");

    // Assert
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SERVER_SECRET"), "{stderr}");
}

#[test]
fn the_token_command_prints_a_token_the_api_accepts() {
    // Act
    let out = binary()
        .env("SERVER_SECRET", SECRET)
        .args(["token", "42"])
        .output()
        .expect("run the server binary");

    // Assert
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let key = server::auth::TokenKey::new(&server::secret::Secret::new(SECRET).unwrap());
    assert_eq!(key.verify(token.trim()), Some(42));
}

#[test]
fn the_binary_shuts_down_on_sigterm_and_its_last_log_line_reports_zero_units() {
    // Arrange
    let server = Server::shared();
    let db = server.create_database("sigterm").unwrap();
    let mut child = binary()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", server.app_url(&db))
        .env("SERVER_SECRET", SECRET)
        .env("MAX_CONNECTIONS", "4")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let api = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'API listening' line; log so far: {log:#?}"));
        log.push(line.clone());
        if let Some(rest) = line.split("API listening on http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    // Use the database through the API, so both pools hold connections.
    let client = common::Client {
        addr: api.parse().unwrap(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let r = client
            .post_json("/api/players", None, &json!({ "name": "sig" }))
            .await;
        assert_eq!(r.status, 201);
        let body = r.json();
        let (id, token) = (
            body["id"].as_u64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        );
        let r = client
            .post_json(
                &format!("/api/players/{id}/games"),
                Some(&token),
                &json!({ "state": {} }),
            )
            .await;
        assert_eq!(r.status, 201);
    });

    // Act
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = child.wait().expect("the server exits");
    log.extend(lines_rx.iter());

    // Assert
    eprintln!("{}", log.join("\n"));
    assert!(status.success(), "exit status {status}; log: {log:#?}");
    let last = log
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("some log");
    assert!(
        last.contains("shutdown complete: budget units in use: 0"),
        "last line: {last}\nlog: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("SIGTERM received")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("malloc: mmap threshold fixed at 1024 KiB")),
        "the binary did not tune malloc (server::memory): {log:#?}"
    );
}
