//! The admin listener against a real, private MariaDB (`mariadb-harness`): health and
//! readiness, Prometheus metrics, the JSON snapshot, and the live dashboard rendered by
//! headless Chromium.
//!
//! Each test builds its own budget and pools over its own database and serves
//! `server::admin::router` on an ephemeral port; it does not need the rest of the server.

mod admin_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use admin_support::browser::{self, tag_of, text_of};
use admin_support::load::{Churn, Held};
use admin_support::start;
use db_async::Args;

// ---- /healthz and /readyz ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_without_the_database() {
    let admin = start("admin_healthz", 4).await;
    let r = admin.get("/healthz").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(
        admin.budget.snapshot().in_use,
        0,
        "healthz took a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_probes_both_pools_and_names_the_failed_side() {
    let admin = start("admin_readyz", 4).await;

    let r = admin.get("/readyz").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"async": "ok", "sync": "ok"}));
    let snap = admin.budget.snapshot();
    assert!(
        snap.async_side.opened_total >= 1 && snap.sync_side.opened_total >= 1,
        "each probe went through its own pool: {snap:?}"
    );

    admin.sync_pool.close();
    let r = admin.get("/readyz").await;
    assert_eq!(r.status, 503, "{r:?}");
    let v = r.json();
    assert_eq!(v["async"], "ok", "{v}");
    assert_eq!(v["sync"], "failed", "{v}");
    assert_eq!(v["errors"]["sync"], "the database pool is closed", "{v}");
    assert!(v["errors"].get("async").is_none(), "{v}");

    admin.async_pool.close().await;
    let r = admin.get("/readyz").await;
    assert_eq!(r.status, 503, "{r:?}");
    let v = r.json();
    assert_eq!(v["async"], "failed", "{v}");
    assert_eq!(v["errors"]["async"], "the database pool is closed", "{v}");
    assert_eq!(v["errors"]["sync"], "the database pool is closed", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_stays_ready_while_working_callers_use_every_connection_but_not_when_nothing_finishes()
 {
    // Arrange: a budget of 4, every unit held by a caller that keeps running short
    // statements on it for the whole test (a probe would wait for one far beyond its
    // 2 s, as it did before readiness stopped competing for the budget).
    let admin = start("admin_readyz_busy", 4).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (pool, halt) = (admin.async_pool.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.expect("async worker connection");
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                let _: (i64,) = conn.fetch_one("SELECT 1", Args::default()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        let (pool, halt) = (admin.sync_pool.clone(), stop.clone());
        workers.push(tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().expect("blocking worker connection");
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                let _: (i64,) = conn.fetch_one("SELECT 1", ()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Every unit taken and every connect finished (a unit is in use from before its
    // connect, which includes the session's set-up).
    let opened = |s: &db_budget::Snapshot| s.async_side.opened_total + s.sync_side.opened_total;
    while opened(&admin.budget.snapshot()) < 4 {
        assert!(
            Instant::now() < deadline,
            "the workers did not take every unit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act
    let busy = admin.get("/readyz").await;

    // Assert: ready, and the check took no connection.
    assert_eq!(busy.status, 200, "{busy:?}");
    assert_eq!(
        busy.json(),
        serde_json::json!({"async": "ok", "sync": "ok"})
    );
    let snap = admin.budget.snapshot();
    assert_eq!(
        snap.async_side.opened_total + snap.sync_side.opened_total,
        4,
        "readiness opened a connection of its own: {snap:?}"
    );

    // Arrange: the same four units, now held by callers that run nothing (what a
    // frozen server looks like from here).
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let mut held = Held::default();
    held.hold_async(&admin.async_pool, 2).await;
    held.hold_sync(&admin.sync_pool, 2).await;

    // Act
    let stuck = admin.get("/readyz").await;

    // Assert
    assert_eq!(stuck.status, 503, "{stuck:?}");
    let v = stuck.json();
    for side in ["async", "sync"] {
        assert_eq!(v[side], "failed", "{v}");
        let why = v["errors"][side].as_str().unwrap_or_default();
        assert!(why.contains("no statement finished"), "{v}");
    }
    held.release().await;
}

// ---- /metrics ---------------------------------------------------------------------

/// One sample line: `name{k="v",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

struct Metrics {
    samples: Vec<Sample>,
    /// family name → type, from `# TYPE` lines.
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text format strictly: every line is a `# HELP`/`# TYPE` comment or a
/// sample whose family was declared before it.
fn parse_metrics(text: &str) -> Metrics {
    let mut m = Metrics {
        samples: Vec::new(),
        types: HashMap::new(),
        helps: HashMap::new(),
    };
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(is_name(name), "bad name in {line:?}");
            assert!(!help.is_empty(), "{line:?}");
            m.helps.insert(name.into(), help.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(is_name(name), "bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(m.helps.contains_key(name), "HELP before TYPE: {line:?}");
            assert!(
                m.types.insert(name.into(), kind.into()).is_none(),
                "dup {line:?}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels close with }");
                    let labels = inner
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label k=v");
                            assert!(is_name(k), "bad label name in {line:?}");
                            let v = v
                                .strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .unwrap_or_else(|| panic!("unquoted label in {line:?}"));
                            (k.to_owned(), v.to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            assert!(is_name(name), "bad metric name in {line:?}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| m.types.get(*f).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert!(m.types.contains_key(family), "no # TYPE before {line:?}");
            m.samples.push(Sample {
                name: name.into(),
                labels,
                value,
            });
        }
    }
    m
}

impl Metrics {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect();
        assert_eq!(found.len(), 1, "exactly one {name}{labels:?}");
        found[0].value
    }

    fn side(&self, name: &str, side: &str) -> f64 {
        self.get(name, &[("side", side)])
    }

    /// Checks one histogram series: cumulative buckets with increasing `le`, ending at
    /// `+Inf` equal to `_count`.
    fn check_histogram(&self, family: &str, side: &str) {
        let buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == format!("{family}_bucket")
                    && s.labels.iter().any(|(k, v)| k == "side" && v == side)
            })
            .map(|s| {
                let le = &s.labels.iter().find(|(k, _)| k == "le").expect("le").1;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("numeric le")
                };
                (le, s.value)
            })
            .collect();
        assert!(buckets.len() >= 2, "{family} {side}: {buckets:?}");
        for w in buckets.windows(2) {
            assert!(w[0].0 < w[1].0, "{family} {side}: le not increasing {w:?}");
            assert!(w[0].1 <= w[1].1, "{family} {side}: not cumulative {w:?}");
        }
        let (last_le, last) = *buckets.last().unwrap();
        assert!(
            last_le.is_infinite(),
            "{family} {side}: last bucket is le=\"+Inf\""
        );
        assert_eq!(last, self.side(&format!("{family}_count"), side));
        assert!(self.side(&format!("{family}_sum"), side) >= 0.0);
    }
}

const FAMILIES: [(&str, &str); 13] = [
    ("db_budget_capacity", "gauge"),
    ("db_budget_units_in_use", "gauge"),
    ("db_budget_units_held", "gauge"),
    ("db_connections_active", "gauge"),
    ("db_connections_idle", "gauge"),
    ("db_waiters", "gauge"),
    ("db_acquire_duration_seconds", "histogram"),
    ("db_acquire_timeouts_total", "counter"),
    ("db_connections_opened_total", "counter"),
    ("db_connections_closed_total", "counter"),
    ("db_leaks_suspected_total", "counter"),
    ("db_query_duration_seconds", "histogram"),
    ("db_slow_queries_total", "counter"),
];

async fn scrape(admin: &admin_support::Admin) -> Metrics {
    let r = admin.get("/metrics").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_metrics(&r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_well_formed_and_counters_move() {
    let admin = start("admin_metrics", 6).await;
    let before = scrape(&admin).await;
    for (family, kind) in FAMILIES {
        assert_eq!(
            before.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    assert_eq!(before.get("db_budget_capacity", &[]), 6.0);
    assert_eq!(before.get("db_budget_units_in_use", &[]), 0.0);
    for side in ["async", "sync"] {
        for gauge in [
            "db_budget_units_held",
            "db_connections_active",
            "db_waiters",
        ] {
            assert_eq!(before.side(gauge, side), 0.0, "{gauge} {side}");
        }
        before.check_histogram("db_acquire_duration_seconds", side);
        before.check_histogram("db_query_duration_seconds", side);
        for reason in [
            "idle_timeout",
            "max_lifetime",
            "yielded",
            "broken",
            "cancelled",
            "pool_closed",
        ] {
            before.get(
                "db_connections_closed_total",
                &[("side", side), ("reason", reason)],
            );
        }
    }

    // Five statements through each pool, then one connection per side held.
    for _ in 0..5 {
        let mut conn = admin.async_pool.acquire().await.unwrap();
        let (one,): (i64,) = conn.fetch_one("SELECT 1", Args::default()).await.unwrap();
        assert_eq!(one, 1);
    }
    let pool = admin.sync_pool.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            let (one,): (i64,) = pool.fetch_one("SELECT 1", ()).unwrap();
            assert_eq!(one, 1);
        }
    })
    .await
    .unwrap();
    let mut held = Held::default();
    held.hold_async(&admin.async_pool, 1).await;
    held.hold_sync(&admin.sync_pool, 1).await;

    let after = scrape(&admin).await;
    let in_use = admin.budget.snapshot().in_use;
    assert_eq!(after.get("db_budget_units_in_use", &[]), f64::from(in_use));
    assert!(in_use >= 2);
    for side in ["async", "sync"] {
        after.check_histogram("db_acquire_duration_seconds", side);
        after.check_histogram("db_query_duration_seconds", side);
        let moved = |name: &str| after.side(name, side) - before.side(name, side);
        assert!(
            moved("db_query_duration_seconds_count") >= 5.0,
            "{side} queries"
        );
        assert!(
            moved("db_acquire_duration_seconds_count") >= 6.0,
            "{side} acquires"
        );
        assert!(
            moved("db_acquire_duration_seconds_sum") > 0.0,
            "{side} acquire sum"
        );
        assert!(
            after.side("db_connections_opened_total", side) >= 1.0,
            "{side}"
        );
        assert_eq!(after.side("db_connections_active", side), 1.0, "{side}");
        assert!(after.side("db_budget_units_held", side) >= 1.0, "{side}");
    }
    held.release().await;
}

// ---- /api/pool ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pool_serves_the_snapshot_with_derived_fields() {
    let admin = start("admin_api_pool", 8).await;
    let mut held = Held::default();
    held.hold_async(&admin.async_pool, 2).await;
    held.hold_sync(&admin.sync_pool, 1).await;

    let r = admin.get("/api/pool").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    assert_eq!(v["capacity"], 8, "{v}");
    assert_eq!(v["in_use"], 3, "{v}");
    assert_eq!(v["utilisation"], 3.0 / 8.0, "{v}");
    assert_eq!(v["async"]["held"], 2, "{v}");
    assert_eq!(v["async"]["active"], 2, "{v}");
    assert_eq!(v["sync"]["held"], 1, "{v}");
    assert_eq!(v["sync"]["active"], 1, "{v}");
    for side in ["async", "sync"] {
        for field in [
            "idle",
            "waiting",
            "opened_total",
            "acquire_timeouts_total",
            "slow_queries_total",
        ] {
            assert!(v[side][field].is_u64(), "{side}.{field} in {v}");
        }
        for field in ["acquire_p50_ms", "acquire_p99_ms"] {
            let ms = v[side][field].as_f64();
            assert!(ms.is_some_and(|ms| ms > 0.0), "{side}.{field} in {v}");
        }
        assert!(v[side].get("query_p99_ms").is_some(), "{v}");
        assert!(v[side]["acquire_latency"]["counts"].is_array(), "{v}");
    }
    assert!(v["latency_buckets_us"].is_array(), "{v}");
    held.release().await;
}

// ---- /dashboard ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_one_self_contained_page() {
    let admin = start("admin_dashboard_page", 2).await;
    let r = admin.get("/dashboard").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let page = &r.body;
    assert!(page.contains("<style>") && page.contains("<script>"));
    assert!(page.contains("api/pool"), "polls the JSON endpoint");
    for external in ["://", "<link", " src=", "@import"] {
        assert!(
            !page.contains(external),
            "external asset ({external}) in the page"
        );
    }
    let root = admin.get("/").await;
    assert_eq!(root.status, 307);
    assert_eq!(root.header("location"), Some("/dashboard"));
}

async fn chromium(url: String, virtual_ms: u32, extra: Vec<String>) -> browser::Run {
    tokio::task::spawn_blocking(move || browser::run(&url, virtual_ms, &extra))
        .await
        .expect("chromium runner")
}

fn id_text(dom: &str, id: &str) -> String {
    text_of(dom, id).unwrap_or_else(|| panic!("no element #{id} in the dumped DOM:\n{dom}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_numbers_in_headless_chromium() {
    // Fail (not skip) at once, with install instructions, when there is no browser.
    let _ = browser::chromium();
    let admin = start("admin_dashboard", 8).await;
    let url = admin.url("/dashboard");
    let dump = || vec!["--dump-dom".to_owned()];

    // 1. Nothing held.
    let dom = chromium(url.clone(), 4000, dump()).await.stdout;
    assert_eq!(id_text(&dom, "capacity"), "8", "first poll rendered");
    assert_eq!(id_text(&dom, "in-use"), "0");
    assert_eq!(id_text(&dom, "held-async"), "0");
    assert!(id_text(&dom, "status").starts_with("live"), "{dom}");

    // 2. Six of eight units held: three async connections, three blocking ones.
    let mut held = Held::default();
    held.hold_async(&admin.async_pool, 3).await;
    held.hold_sync(&admin.sync_pool, 3).await;
    assert_eq!(admin.budget.snapshot().in_use, 6);
    let dom = chromium(url.clone(), 4000, dump()).await.stdout;
    assert_eq!(id_text(&dom, "in-use"), "6");
    assert_eq!(id_text(&dom, "held-async"), "3");
    assert_eq!(id_text(&dom, "held-sync"), "3");
    assert_eq!(id_text(&dom, "active-async"), "3");
    assert_eq!(id_text(&dom, "active-sync"), "3");
    assert_eq!(id_text(&dom, "utilisation"), "75 %");
    let banner = tag_of(&dom, "banner").unwrap();
    assert!(
        banner.contains("hidden"),
        "75 % is below the warning: {banner}"
    );

    // 3. Above 80 %: a seventh unit held, and churners of both sides fighting over the
    //    eighth (units flow between the sides, callers queue). The banner must appear
    //    after ~5 s (page time) and the page is captured for a human to look at.
    held.hold_async(&admin.async_pool, 1).await;
    let churn = Churn::start(&admin.async_pool, &admin.sync_pool, 4, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.budget.snapshot().in_use < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    let run = chromium(
        url.clone(),
        12_000,
        vec![
            format!("--screenshot={}", shot.display()),
            "--dump-dom".into(),
        ],
    )
    .await;
    let dom = run.stdout;
    churn.stop().await;
    held.release().await;

    let in_use: u32 = id_text(&dom, "in-use").parse().unwrap();
    assert!(in_use >= 7, "in use under load: {in_use}");
    let banner = tag_of(&dom, "banner").unwrap();
    assert!(
        !banner.contains("hidden"),
        "banner shown above 80 %: {banner}"
    );
    assert!(
        id_text(&dom, "banner").contains("above 80 %"),
        "{}",
        id_text(&dom, "banner")
    );

    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "suspiciously small screenshot: {} bytes",
        png.len()
    );
    println!(
        "dashboard screenshot: {}",
        shot.canonicalize().unwrap_or(shot).display()
    );
}
