//! /dashboard: one self-contained page, and live numbers in headless Chromium.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::admin_support::browser::{self, tag_of, text_of};
use crate::admin_support::load::{Churn, Held};
use crate::admin_support::{
    start, start_with_bulkheads, start_with_leak_threshold, start_with_view,
};

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
    let panel = tag_of(&dom, "bulkheads").expect("the bulkheads panel in the page");
    assert!(
        panel.contains("hidden"),
        "no bulkheads configured, none shown: {panel}"
    );
    assert!(
        !dom.contains("class=\"card bh\""),
        "no bulkhead cards: {dom}"
    );
    let panel = tag_of(&dom, "server").expect("the server's view panel in the page");
    assert!(panel.contains("hidden"), "no view, no panel: {panel}");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_each_bulkhead_with_its_floor_cap_and_waiters() {
    // Arrange: a budget of 8 in two bulkheads; retention holds 2 checkouts, legacy holds
    // its whole cap of 3 and one more legacy caller waits at that cap.
    let _ = browser::chromium();
    let admin =
        start_with_bulkheads("admin_dashboard_bulkheads", 8, "retention=2..6,legacy=1..3").await;
    let retention = admin.async_pool.for_module("retention");
    let legacy = admin.sync_pool.for_module("legacy");
    let mut held = Held::default();
    held.hold_async(&retention, 2).await;
    held.hold_sync(&legacy, 3).await;
    let waiter = {
        let legacy = legacy.clone();
        std::thread::spawn(move || legacy.get().map(drop))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.budget.snapshot().bulkheads[1].waiting < 1 {
        assert!(Instant::now() < deadline, "{}", admin.budget.snapshot());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: the page after a few polls.
    let dom = chromium(admin.url("/dashboard"), 3000, vec!["--dump-dom".into()])
        .await
        .stdout;
    held.release().await;
    let waited = tokio::task::spawn_blocking(move || waiter.join().expect("legacy waiter"))
        .await
        .unwrap();

    // Assert: the panel is shown, one card per bulkhead in configuration order, with
    // the snapshot's figures.
    let panel = tag_of(&dom, "bulkheads").expect("the bulkheads panel in the page");
    assert!(!panel.contains("hidden"), "panel shown: {panel}");
    let (at_retention, at_legacy) = (
        dom.find("id=\"bh-retention\"").expect("a retention card"),
        dom.find("id=\"bh-legacy\"").expect("a legacy card"),
    );
    assert!(at_retention < at_legacy, "configuration order");
    let figures = |name: &str| {
        ["in-use", "floor", "cap", "waiting"].map(|k| id_text(&dom, &format!("bh-{name}-{k}")))
    };
    assert_eq!(figures("retention"), ["2", "2", "6", "0"]);
    assert_eq!(figures("legacy"), ["3", "1", "3", "1"]);
    assert!(
        tag_of(&dom, "bh-legacy-in-use").unwrap().contains("hot"),
        "a bulkhead at its cap is marked"
    );
    assert!(waited.is_ok(), "the waiter got its turn: {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_database_servers_view_and_the_drift_of_connections_no_budget_holds() {
    // Arrange: the view over a budget of 4, and two connections on the app's account
    // held by a pool of another budget (a process nobody counted).
    let _ = browser::chromium();
    let admin = start_with_view("admin_dashboard_view", 4, Duration::from_millis(100)).await;
    let server = mariadb_harness::Server::shared();
    let url = db_budget::DatabaseUrl::parse(&server.app_url(&admin.db)).expect("url");
    let stray = db_sync::SyncPool::builder(url, db_budget::Budget::new(2, Duration::from_secs(30)))
        .pool_timeout(Duration::from_secs(10))
        .build();
    let mut held = Held::default();
    held.hold_sync(&stray, 2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.get("/api/pool").await.json()["server"]["reading"]["unexplained"] != 2
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let before = admin.get("/api/pool").await.json()["server"].clone();

    // Act
    let dom = chromium(admin.url("/dashboard"), 4000, vec!["--dump-dom".into()])
        .await
        .stdout;
    let after = admin.get("/api/pool").await.json()["server"].clone();
    held.release().await;
    assert_eq!(
        before["reading"]["unexplained"], 2,
        "the view saw the drift: {before:#}"
    );
    assert_eq!(
        after["reading"]["unexplained"], 2,
        "and still did: {after:#}"
    );

    // Assert: this process 1 (the reader), the account 3, drift 2 marked hot.
    let panel = tag_of(&dom, "server").expect("the panel");
    assert!(!panel.contains("hidden"), "the panel is shown: {panel}");
    assert_eq!(id_text(&dom, "sv-process"), "1");
    assert_eq!(id_text(&dom, "sv-account"), "3");
    assert_eq!(id_text(&dom, "sv-explained"), "1");
    assert_eq!(id_text(&dom, "sv-drift"), "2");
    assert!(
        tag_of(&dom, "sv-drift").unwrap().contains("hot"),
        "drift is marked"
    );
    assert_eq!(
        id_text(&dom, "sv-max"),
        server.max_connections().to_string()
    );
    let rows = dom
        .split_once("id=\"sv-rows\"")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map(|(rows, _)| rows)
        .expect("the process list");
    assert!(rows.contains("app") && rows.contains("127.0.0.1"), "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_names_why_callers_wait_the_top_holders_and_the_slow_statements() {
    // Arrange: a budget of 2 with a 100 ms leak threshold and DB_SLOW_QUERY of 100 ms;
    // slow statements on both sides (one whose text is HTML), then both units checked
    // out at one line of this file and kept idle while a caller waits.
    let _ = browser::chromium();
    let admin =
        start_with_leak_threshold("admin_dashboard_causes", 2, Duration::from_millis(100)).await;
    admin
        .budget
        .set_slow_query_threshold(Duration::from_millis(100));
    let mut conn = admin.async_pool.acquire().await.expect("a connection");
    for _ in 0..2 {
        conn.execute("DO SLEEP(0.3)", db_async::args![])
            .await
            .expect("slow statement");
    }
    // Markup in a name: comments and literals are not shown at all.
    let injected = "SELECT SLEEP(0.2) AS `<b id=\"injected\">x</b>`";
    conn.execute(injected, db_async::args![])
        .await
        .expect("statement with HTML");
    drop(conn);
    let sync_pool = admin.sync_pool.clone();
    tokio::task::spawn_blocking(move || sync_pool.execute("DO SLEEP(0.3)", ()))
        .await
        .unwrap()
        .expect("slow blocking statement");
    let mut held = Vec::new();
    let mut line = 0;
    for _ in 0..2 {
        let (conn, at) = (admin.async_pool.acquire().await.unwrap(), line!());
        held.push(conn);
        line = at;
    }
    // A caller that outwaits any Chromium run (the pools' own timeout is 10 s).
    let server = mariadb_harness::Server::shared();
    let url = db_budget::DatabaseUrl::parse(&server.app_url(&admin.db)).expect("url");
    let patient = db_async::AsyncPool::builder(url, admin.budget.clone())
        .pool_timeout(Duration::from_secs(120))
        .build();
    let waiter = tokio::spawn(patient.acquire());
    let deadline = Instant::now() + Duration::from_secs(5);
    // Both held past the threshold (the leak scanner counted them), the caller waiting.
    let ready = |s: db_budget::Snapshot| {
        s.async_side.waiting == 1 && s.async_side.leaks_suspected_total == 2
    };
    while !ready(admin.budget.snapshot()) {
        assert!(Instant::now() < deadline, "{:?}", admin.budget.snapshot());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Act: the page after a few polls, captured for a human to look at.
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-causes.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    let extra = vec![
        format!("--screenshot={}", shot.display()),
        "--dump-dom".into(),
    ];
    let dom = chromium(admin.url("/dashboard"), 3000, extra).await.stdout;
    drop(held);
    let served = waiter.await.expect("the waiter");

    // Assert: the cause, marked; the holders' site (this file's line) with its count.
    assert_eq!(id_text(&dom, "wait-cause"), "leaked holders");
    assert!(
        tag_of(&dom, "wait-cause").unwrap().contains("hot"),
        "not backlog: marked"
    );
    assert!(id_text(&dom, "wait-advice").contains("call sites"), "{dom}");
    let rows = |id: &str| {
        dom.split_once(&format!("id=\"{id}\""))
            .and_then(|(_, rest)| rest.split_once("</tbody>"))
            .map(|(rows, _)| rows.to_owned())
            .unwrap_or_else(|| panic!("no #{id} in the page: {dom}"))
    };
    let holders = rows("holder-rows");
    let site = format!("<td class=\"site\">{}:{line}</td>", file!());
    assert!(holders.contains(&site), "{site} in {holders}");
    assert!(
        holders.contains("<td>2</td>"),
        "two checkouts at that site: {holders}"
    );
    // The slow statements, by text and side, with their counts; HTML stays text.
    let slow = rows("slow-rows");
    assert!(
        slow.contains("<td class=\"sql\">DO SLEEP(?)</td><td>async</td><td>2</td>"),
        "{slow}"
    );
    assert!(
        slow.contains("<td class=\"sql\">DO SLEEP(?)</td><td>sync</td><td>1</td>"),
        "{slow}"
    );
    assert!(
        slow.contains("&lt;b id=\"injected\"&gt;x&lt;/b&gt;"),
        "{slow}"
    );
    assert!(
        !dom.contains("<b id=\"injected\">"),
        "the SQL text became markup"
    );
    assert!(
        served.is_ok(),
        "the waiter was served once the holders let go: {served:?}"
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a real PNG"
    );
    println!("dashboard screenshot: {}", shot.display());
}
