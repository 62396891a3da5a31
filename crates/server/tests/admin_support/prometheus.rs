//! The shipped Prometheus rules (`ops/prometheus/`), `promtool`, and a real `prometheus`
//! process in a temporary directory that scrapes one admin listener and evaluates the
//! rules; killed on drop.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::http;

/// How the tools are installed; `.ci/run` does this when `promtool` is missing.
pub const INSTALL: &str = "apt-get update && apt-get install -y prometheus";

/// Longest wait for a started Prometheus to answer `/-/ready`.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// `ops/prometheus/` in the repository.
pub fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/prometheus")
}

/// The text of `ops/prometheus/<name>`.
pub fn read_rules_file(name: &str) -> String {
    let path = rules_dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The binary `name` (`promtool` or `prometheus`): `$PROMTOOL` / `$PROMETHEUS` when set,
/// else the first on `PATH`.
///
/// # Panics
///
/// With the install command when there is none: the alert tests fail, never skip,
/// without the tools.
pub fn tool(name: &str) -> PathBuf {
    let var = name.to_ascii_uppercase();
    if let Some(p) = std::env::var_os(&var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} is not a file; the alert tests need Prometheus's tools: `{INSTALL}`",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the alert tests need `{name}` and it is not on PATH (or set {var}=/path). \
                 Install it: `{INSTALL}` (Debian's package has prometheus and promtool)"
            )
        })
}

/// Runs `promtool args…` in `ops/prometheus/`.
pub fn promtool(args: &[&str]) -> Output {
    Command::new(tool("promtool"))
        .args(args)
        .current_dir(rules_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}"))
}

/// `rules` with every `for:` duration replaced by `to`, nothing else changed, and how
/// many were replaced.
pub fn with_for(rules: &str, to: &str) -> (String, usize) {
    let mut replaced = 0;
    let mut out = String::with_capacity(rules.len());
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("for:") {
            replaced += 1;
            out.push_str(&line[..indent]);
            out.push_str("for: ");
            out.push_str(to);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    (out, replaced)
}

/// A `prometheus` process scraping one target every second and evaluating one rules
/// file every second, with its storage in a temporary directory.
pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port with `rules` as its only rules file,
    /// scraping `http://{target}/metrics` as job `game`; returns once it is ready.
    ///
    /// # Panics
    ///
    /// When Prometheus is missing, exits, or is not ready within a minute (with its
    /// log).
    pub fn start(target: SocketAddr, rules: &str) -> Prometheus {
        // The port is free when chosen but may be taken before Prometheus binds it:
        // then it exits at once, and another port is tried.
        let mut last_log = String::new();
        for _ in 0..3 {
            match Self::try_start(target, rules) {
                Ok(prometheus) => return prometheus,
                Err(log) => last_log = log,
            }
        }
        panic!("prometheus did not start; its last log:\n{last_log}");
    }

    fn try_start(target: SocketAddr, rules: &str) -> Result<Prometheus, String> {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "admin-prometheus-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("data")).expect("prometheus temp dir");
        fs::write(dir.join("alerts.yml"), rules).expect("write the rules");
        fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - alerts.yml\n\
                 scrape_configs:\n  - job_name: game\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let addr = free_port();
        let log = fs::File::create(dir.join("log")).expect("log file");
        let child = Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        let mut prometheus = Prometheus { addr, child, dir };
        prometheus.wait_ready()?;
        Ok(prometheus)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for prometheus") {
                return Err(format!("exited ({status}):\n{}", self.log()));
            }
            let listening =
                TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok();
            if listening && http::get_blocking(self.addr, "/-/ready").status == 200 {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {READY_LIMIT:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What Prometheus logged so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// `GET path` on Prometheus's HTTP API, as JSON, whose `status` is `success`.
    pub async fn api(&self, path: &str) -> serde_json::Value {
        let r = http::get(self.addr, path).await;
        assert_eq!(r.status, 200, "GET {path} on prometheus: {r:?}");
        let v = r.json();
        assert_eq!(v["status"], "success", "GET {path} on prometheus: {v}");
        v["data"].clone()
    }

    /// The active (pending or firing) alerts named `name`.
    pub async fn alerts(&self, name: &str) -> Vec<serde_json::Value> {
        let data = self.api("/api/v1/alerts").await;
        data["alerts"]
            .as_array()
            .expect("data.alerts is a list")
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect()
    }

    /// The instant vector `query` evaluates to now (`result` of `/api/v1/query`).
    pub async fn query(&self, query: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", url_encode(query));
        let data = self.api(&path).await;
        data["result"].as_array().expect("data.result").clone()
    }
}

/// A loopback address whose port was free a moment ago.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
