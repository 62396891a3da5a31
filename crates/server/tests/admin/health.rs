//! /healthz answers without the database; /readyz probes both pools and stays ready
//! while working callers use every connection.

use std::time::{Duration, Instant};

use db_async::Args;

use crate::admin_support::load::Held;
use crate::admin_support::start;

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
