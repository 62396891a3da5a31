//! /api/pool: the snapshot with its derived fields.

use crate::admin_support::load::Held;
use crate::admin_support::start;

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
    // Why callers wait (nobody does), who holds what, slow statements (none yet).
    assert!(v["wait_cause"].is_null(), "nobody waits: {v}");
    let holders = v["holders"].as_array().expect("holders");
    let counted: u64 = holders.iter().map(|h| h["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 3, "{v}");
    for h in holders {
        let site = h["site"].as_str().expect("site");
        assert!(site.contains("admin_support/load.rs:"), "{site} in {v}");
        assert!(h["held_ms"].is_u64(), "{v}");
    }
    assert_eq!(v["slow_statements"], serde_json::json!([]), "{v}");
    held.release().await;
}
