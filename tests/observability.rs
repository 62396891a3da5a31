//! I5, observable: a connection held past `DB_LEAK_THRESHOLD` is reported once with the
//! line that took it and counted, and one more line says when it comes back; a slow
//! statement is logged with its SQL text but never its parameter values.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::Budget;
use db_sync::SyncPool;
use integration_tests::{Server, TestDb, captured_logs, runtime};

#[test]
fn a_connection_held_past_the_leak_threshold_is_reported_with_its_call_site() {
    // Arrange: a 100 ms leak threshold.
    let logs = captured_logs();
    let server = Server::shared();
    let db = TestDb::create(server, "leaks");
    let budget = Budget::new(4, Duration::from_millis(100));
    let rt = runtime();
    let apool = {
        let _e = rt.enter();
        AsyncPool::builder(db.url.clone(), budget.clone()).build()
    };
    let spool = SyncPool::builder(db.url.clone(), budget.clone()).build();

    // Act: hold one connection of each side for 400 ms, then return them.
    let async_conn = rt.block_on(apool.acquire()).unwrap();
    let async_line = line!() - 1;
    let sync_conn = spool.get().unwrap();
    let sync_line = line!() - 1;
    std::thread::sleep(Duration::from_millis(400));
    let during = budget.snapshot();
    drop(async_conn);
    drop(sync_conn);
    std::thread::sleep(Duration::from_millis(50));

    // Assert
    let text = logs.text();
    for line in [async_line, sync_line] {
        let site = format!("tests/observability.rs:{line}");
        let reports: Vec<&str> = text.lines().filter(|l| l.contains(&site)).collect();
        assert_eq!(
            reports.len(),
            2,
            "one report and one return line for {site}:\n{text}"
        );
        assert!(
            reports[0].contains("possible leak") && reports[0].contains("held="),
            "{}",
            reports[0]
        );
        assert!(reports[1].contains("was returned"), "{}", reports[1]);
    }
    assert_eq!(during.async_side.leaks_suspected_total, 1);
    assert_eq!(during.sync_side.leaks_suspected_total, 1);
    assert_eq!(
        budget.snapshot().async_side.leaks_suspected_total,
        1,
        "counted once"
    );
}

#[test]
fn a_slow_statement_is_logged_with_its_sql_but_not_its_values() {
    // Arrange: a 50 ms slow-query threshold.
    let logs = captured_logs();
    let server = Server::shared();
    let db = TestDb::create(server, "slow");
    let budget = Budget::new(2, Duration::from_secs(30));
    budget.set_slow_query_threshold(Duration::from_millis(50));
    let rt = runtime();
    let apool = {
        let _e = rt.enter();
        AsyncPool::builder(db.url.clone(), budget.clone()).build()
    };
    let spool = SyncPool::builder(db.url.clone(), budget.clone()).build();

    // Act: one slow statement per side, with a recognisable parameter value; one fast one.
    rt.block_on(async {
        let mut c = apool.acquire().await.unwrap();
        let _: (i64,) = c
            .fetch_one(
                "SELECT SLEEP(0.1) + 0 * LENGTH(?)",
                args!["async-secret-value"],
            )
            .await
            .unwrap();
        let _: (i64,) = c
            .fetch_one("SELECT 1 + 0 * LENGTH(?)", args!["fast-value"])
            .await
            .unwrap();
    });
    let _: i64 = spool
        .get()
        .unwrap()
        .fetch_one("SELECT SLEEP(0.1) + 0 * LENGTH(?)", ("sync-secret-value",))
        .unwrap();

    // Assert
    let text = logs.text();
    let slow: Vec<&str> = text.lines().filter(|l| l.contains("slow query")).collect();
    assert_eq!(slow.len(), 2, "{text}");
    for l in &slow {
        assert!(l.contains("SELECT SLEEP(?) + ? * LENGTH(?)"), "{l}");
        assert!(l.contains("tests/observability.rs:"), "call site: {l}");
    }
    assert!(
        !text.contains("secret-value"),
        "a parameter value was logged:\n{text}"
    );
    let s = budget.snapshot();
    assert_eq!(
        (
            s.async_side.slow_queries_total,
            s.sync_side.slow_queries_total
        ),
        (1, 1)
    );
    assert_eq!(s.async_side.query_latency.count(), 2);
}
