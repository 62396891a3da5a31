//! The running server's view of the database server (`DB_SERVER_VIEW_INTERVAL`): its
//! reader's connection counts in the budget, its figures reach `/metrics` and
//! `/api/pool` while the pools are exhausted, and connections of the app's account that
//! no budget holds show as drift.

use std::time::{Duration, Instant};

use db_budget::{Budget, DatabaseUrl};
use db_sync::SyncPool;
use mariadb_harness::Server;
use serde_json::Value;
use server::Settings;

use crate::common::{self, AppOptions, Client, TestApp};

fn with_view(max_connections: u32) -> AppOptions {
    AppOptions {
        max_connections,
        env: vec![("DB_SERVER_VIEW_INTERVAL", "100ms".to_owned())],
        ..AppOptions::default()
    }
}

async fn pool_json(app: &TestApp) -> Value {
    let r = Client {
        addr: app.admin_addr,
    }
    .get("/api/pool", None)
    .await;
    assert_eq!(r.status, 200);
    r.json()
}

/// `name`'s value on `/metrics` (a sample without labels).
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let r = Client {
        addr: app.admin_addr,
    }
    .get("/metrics", None)
    .await;
    assert_eq!(r.status, 200);
    r.text().lines().find_map(|line| {
        let (n, v) = line.split_once(' ')?;
        (n == name).then(|| v.parse().expect("a number"))
    })
}

/// The first `/api/pool` whose server reading satisfies `cond`, within 10 s.
async fn reading_where(app: &TestApp, cond: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let v = pool_json(app).await;
        let r = &v["server"]["reading"];
        if !r.is_null() && cond(r) {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_shows_the_database_servers_view_even_with_every_pool_connection_taken() {
    // Arrange: a budget of 4, of which the view's reader takes one.
    let server = Server::shared();
    let app = common::spawn_app_on(server, with_view(4)).await;
    let first = reading_where(&app, |_| true)
        .await
        .expect("a first reading");
    assert_eq!(app.budget.usable(), 3, "the reader's unit is withheld");

    // Act: every unit the pools have is held.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(app.async_pool.acquire().await.expect("a connection"));
    }
    let reads = first["server"]["status"]["reads_total"].as_u64().unwrap();
    // A reading taken after every connection is open (one taken while the last was
    // still connecting counts its unit before the server lists it).
    let held_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let during = reading_where(&app, |r| r["taken_at"].as_f64().unwrap() > held_at).await;

    // Assert: the view kept reading, and agrees with the server.
    let during = during.expect("a reading while the pools are exhausted");
    assert!(during["server"]["status"]["reads_total"].as_u64().unwrap() > reads);
    let r = &during["server"]["reading"];
    assert_eq!(r["account"], "app");
    assert_eq!(r["max_connections"], u64::from(server.max_connections()));
    assert_eq!(r["process"], 4, "{r:#}");
    assert_eq!(r["account_connections"], 4, "{r:#}");
    assert_eq!(r["unexplained"], 0, "{r:#}");
    assert_eq!(metric(&app, "db_server_view_up").await, Some(1.0));
    assert_eq!(
        metric(&app, "db_server_max_connections").await,
        Some(f64::from(server.max_connections()))
    );
    assert_eq!(metric(&app, "db_budget_units_withheld").await, Some(1.0));
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_the_apps_account_that_no_budget_holds_show_as_drift_until_they_close() {
    // Arrange: the app, and a pool of another budget on the same account and database
    // (a process not counted in DB_INSTANCES).
    let server = Server::shared();
    let app = common::spawn_app_on(server, with_view(4)).await;
    let url = DatabaseUrl::parse(&server.app_url(&app.db)).expect("url");
    let stray = SyncPool::builder(url, Budget::new(2, Duration::from_secs(30)))
        .pool_timeout(Duration::from_secs(10))
        .build();

    // Act: it holds two connections, then lets them go.
    let drifting = {
        let pool = stray.clone();
        let held = tokio::task::spawn_blocking(move || {
            (pool.get().expect("one"), pool.get().expect("two"))
        })
        .await
        .unwrap();
        let seen = reading_where(&app, |r| r["unexplained"] == 2).await;
        let metric = metric(&app, "db_server_connections_unexplained").await;
        drop(held);
        (seen, metric)
    };
    let pool = stray.clone();
    tokio::task::spawn_blocking(move || pool.close())
        .await
        .unwrap();
    let settled = reading_where(&app, |r| r["unexplained"] == 0 && r["excess"] == 0).await;

    // Assert
    assert!(drifting.0.is_some(), "drift of 2 reported");
    assert_eq!(drifting.1, Some(2.0));
    assert!(settled.is_some(), "the drift went with the connections");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readers_connection_is_gone_after_a_graceful_shutdown() {
    // Arrange
    let server = Server::shared();
    let app = common::spawn_app_on(server, with_view(3)).await;
    reading_where(&app, |_| true).await.expect("a reading");
    let budget = app.budget.clone();

    // Act
    app.stop().await;

    // Assert: no unit withheld, none in use, and the server lists no app connection.
    assert_eq!(budget.withheld(), 0);
    assert_eq!(budget.in_use(), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let count = || {
        server
            .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
            .expect("count")
            .trim()
            .to_owned()
    };
    while count() != "0" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(), "0");
}

#[test]
fn a_budget_of_one_with_the_view_on_is_refused_at_startup_naming_the_variable() {
    // Arrange
    let env = |name: &str| match name {
        "DATABASE_URL" => Some("mysql://app:pw@127.0.0.1:3306/game".to_owned()),
        "SERVER_SECRET" => Some(common::SECRET.to_owned()),
        "MAX_CONNECTIONS" => Some("1".to_owned()),
        _ => None,
    };

    // Act
    let refused = Settings::from_args_and_lookup(["server"], env);
    let off = Settings::from_args_and_lookup(["server"], |name: &str| match name {
        "DB_SERVER_VIEW_INTERVAL" => Some("0".to_owned()),
        other => env(other),
    });

    // Assert
    let message = refused.expect_err("refused").to_string();
    assert!(message.contains("DB_SERVER_VIEW_INTERVAL"), "{message}");
    assert!(message.contains("MAX_CONNECTIONS=1"), "{message}");
    assert!(off.is_ok(), "the view off, a budget of 1 is fine");
}

// An outside adversary's tests: hostile names from the process list and other
// instances' budgets.

/// `s` as the body of a single-quoted SQL string.
fn sql_quoted(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('\n', "\\n")
}

/// `promtool check metrics` on `text`: its output when it finds the text malformed.
fn promtool_parse_error(text: &str) -> Option<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is needed to check /metrics ({e}): `apt-get update && apt-get \
                 install -y prometheus`"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lint findings (exit 3) are about names and help texts; a text that does not parse
    // is an error.
    said.contains("error").then_some(said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_user_names_in_the_process_list_keep_metrics_parseable_and_the_dashboard_inert() {
    // Fail (not skip) at once, with install instructions, when there is no browser.
    let _ = crate::browser::chromium();
    // Arrange: another account whose name closes a label, starts a sample line and
    // holds markup; the app's account sees it (PROCESS, as the harness's app has).
    let server = Server::shared();
    let app = common::spawn_app_on(server, with_view(4)).await;
    let hostile = format!("a\"}} 9\n<img src=x id=adv6pwn{}>\\", std::process::id());
    server
        .sql(&format!(
            "CREATE USER '{0}'@'%' IDENTIFIED BY 'hostile-secret'; \
             GRANT USAGE ON *.* TO '{0}'@'%'",
            sql_quoted(&hostile)
        ))
        .expect("create the hostile account");
    let encoded: String = hostile
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = DatabaseUrl::parse(&format!(
        "mysql://{encoded}:hostile-secret@127.0.0.1:{}/{}",
        server.port(),
        app.db
    ))
    .expect("a URL for the hostile account");
    server
        .sql(&format!(
            "GRANT SELECT ON `{}`.* TO '{}'@'%'",
            app.db,
            sql_quoted(&hostile)
        ))
        .expect("grant");
    let pool = SyncPool::builder(url, Budget::new(1, Duration::from_secs(30)))
        .pool_timeout(Duration::from_secs(10))
        .build();
    let conn = {
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || pool.get())
            .await
            .unwrap()
            .expect("the hostile account connects")
    };
    let seen = reading_where(&app, |r| {
        r["by_account"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|a| a["user"] == hostile.as_str()))
    })
    .await;

    // Act
    let admin = Client {
        addr: app.admin_addr,
    };
    let metrics = admin.get("/metrics", None).await.text();
    let json = admin.get("/api/pool", None).await.text();
    let url = format!("http://{}/dashboard", app.admin_addr);
    let dom = tokio::task::spawn_blocking(move || {
        crate::browser::run(&url, 4000, &["--dump-dom".to_owned()])
    })
    .await
    .expect("chromium runner")
    .stdout;
    drop(conn);
    tokio::task::spawn_blocking(move || pool.close())
        .await
        .unwrap();

    // Assert: the text format holds (every line a comment or a db_ sample), the name is
    // shown as text, and no password appears anywhere.
    assert!(seen.is_some(), "the view listed the hostile account");
    if let Some(said) = promtool_parse_error(&metrics) {
        panic!("/metrics does not parse: {said}\n{metrics}");
    }
    let stray: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("db_"))
        .collect();
    assert!(stray.is_empty(), "lines injected into /metrics: {stray:?}");
    assert!(
        !dom.contains("id=\"adv6pwn"),
        "the account's name became markup on the dashboard"
    );
    assert!(
        dom.contains("&lt;img src=x id=adv6pwn"),
        "the account's name is shown as text"
    );
    for body in [&metrics, &json, &dom] {
        assert!(!body.contains("app-secret") && !body.contains("hostile-secret"));
    }
    app.stop().await;
}

/// Whether any reading within `within` satisfies `cond`.
async fn any_reading_within(
    app: &TestApp,
    within: Duration,
    cond: impl Fn(&Value) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let v = pool_json(app).await;
        let r = &v["server"]["reading"];
        if !r.is_null() && cond(r) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_full_budget_is_explained_and_one_connection_more_is_drift() {
    // Arrange: DB_INSTANCES=2 with MAX_CONNECTIONS=3: the other instance may hold 3.
    let server = Server::shared();
    let mut opts = with_view(3);
    opts.env.push(("DB_INSTANCES", "2".into()));
    let app = common::spawn_app_on(server, opts).await;
    reading_where(&app, |_| true)
        .await
        .expect("a first reading");
    let url = DatabaseUrl::parse(&server.app_url(&app.db)).expect("url");
    let other = SyncPool::builder(url, Budget::new(4, Duration::from_secs(30)))
        .pool_timeout(Duration::from_secs(10))
        .build();

    // Act: the "other instance" holds its 3 for three lags, then a fourth.
    let pool = other.clone();
    let three = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| pool.get().expect("a connection"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let excess = any_reading_within(&app, Duration::from_secs(3), |r| {
        r["excess"] != 0 || r["unexplained"] != 0
    })
    .await;
    let pool = other.clone();
    let fourth = tokio::task::spawn_blocking(move || pool.get().expect("a fourth"))
        .await
        .unwrap();
    let drift = reading_where(&app, |r| r["unexplained"] == 1).await;
    drop((three, fourth));
    tokio::task::spawn_blocking(move || other.close())
        .await
        .unwrap();

    // Assert
    assert!(!excess, "the other instance's budget was not explained");
    let drift = drift.expect("one connection above both budgets is drift");
    assert_eq!(drift["server"]["reading"]["explained"], 5, "{drift:#}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_fleet_the_process_counts_its_control_connection_beside_the_pools_and_the_reader() {
    // Arrange: a fleet member (floor 3: the reader, the control connection, one for the
    // pools) alone on its database, with the view on.
    let server = Server::shared();
    let db = server.create_database("view_fleet").unwrap();
    let opts = AppOptions {
        max_connections: 3,
        env: vec![
            ("DB_SERVER_VIEW_INTERVAL", "100ms".to_owned()),
            ("DB_INSTANCES", "2".to_owned()),
            ("DB_FLEET_BUDGET", "8".to_owned()),
        ],
        ..AppOptions::default()
    };
    let app = common::start(common::build(server, &db, &opts).await.expect("starts"), db);
    let held = app.async_pool.acquire().await.expect("a connection");
    let held_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    // Act
    let v = reading_where(&app, |r| {
        r["taken_at"].as_f64().unwrap() > held_at && r["account_connections"] == 3
    })
    .await;

    // Assert: every session of the account is this process's.
    let v = v.expect("a reading with the pool's connection open");
    let r = &v["server"]["reading"];
    assert_eq!(r["process"], r["account_connections"], "{r:#}");
    assert_eq!(r["unexplained"], 0, "{r:#}");
    drop(held);
}
