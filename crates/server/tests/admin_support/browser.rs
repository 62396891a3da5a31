//! Headless Chromium, bounded in time: `--dump-dom` and `--screenshot` runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Longest a Chromium run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The Chromium binary: `$CHROMIUM`, else `chromium` / `chromium-browser` /
/// `google-chrome` on `PATH`.
///
/// # Panics
///
/// With install instructions when none is found: the dashboard test must fail, not
/// skip, without a browser.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CHROMIUM={} is not a file; the dashboard test needs headless Chromium: \
             `apt-get update && apt-get install -y chromium`",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the dashboard test needs headless Chromium and none was found on PATH \
         (looked for chromium, chromium-browser, google-chrome; or set CHROMIUM=/path). \
         Install it: `apt-get update && apt-get install -y chromium`"
    );
}

/// What one run printed.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
}

/// Runs headless Chromium on `url` with `extra` flags (e.g. `--dump-dom`) and a fresh
/// profile; kills its whole process group after [`RUN_LIMIT`].
pub fn run(url: &str, virtual_time_ms: u32, extra: &[String]) -> Run {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "admin-dashboard-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("profile")).expect("profile dir");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");

    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .arg(format!("--virtual-time-budget={virtual_time_ms}"))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(fs::File::create(&out_path).unwrap())
    .stderr(fs::File::create(&err_path).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            kill_group(child.id());
            let _ = child.wait();
            panic!(
                "chromium did not finish within {RUN_LIMIT:?} (killed); stderr:\n{}",
                tail(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Helpers that outlived the browser process go with their group.
    kill_group(child.id());
    let run = Run {
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_dir_all(&dir);
    assert!(
        status.success(),
        "chromium failed ({status}); stderr:\n{}",
        run.stderr
    );
    run
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The text inside the element with `id` in a dumped DOM (up to its first child tag).
pub fn text_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let open_end = at + dom[at..].find('>')?;
    let rest = &dom[open_end + 1..];
    Some(rest[..rest.find('<')?].trim().to_owned())
}

/// The opening tag of the element with `id`.
pub fn tag_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    Some(&dom[start..=end])
}
