//! /metrics: well-formed text, every family declared with its type, and counters that
//! move.

use db_async::Args;

use crate::admin_support::load::Held;
use crate::admin_support::metrics::{Metrics, parse_metrics};
use crate::admin_support::{self, start};

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
