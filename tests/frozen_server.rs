//! I4 with a frozen server (SIGSTOP): every wait of both pools ends within its bound and
//! gives its unit back.

use db_async::{AsyncPool, args};
use db_budget::Budget;
use db_sync::SyncPool;
use integration_tests::reuse::*;
use integration_tests::{budget, eventually, runtime};
use std::time::Duration;

#[test]
fn async_acquire_connecting_to_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_connect");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    freeze(server);
    let r = within(12, "async acquire (connect)", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(1);
            let pool = AsyncPool::builder(url, budget.clone())
                .connect_timeout(Duration::from_secs(1))
                .pool_timeout(Duration::from_secs(3))
                .build();
            let r = pool.acquire().await.map(drop);
            (r, budget.in_use())
        })
    });
    assert!(r.0.is_err(), "{:?}", r.0);
}

#[test]
fn async_pool_close_with_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_close");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    within(20, "async pool close", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(2);
            let pool = AsyncPool::builder(url, budget.clone())
                .return_timeout(Duration::from_secs(1))
                .build();
            let a = pool.acquire().await.unwrap();
            let b = pool.acquire().await.unwrap();
            drop((a, b));
            eventually(Duration::from_secs(2), || pool.idle_count() == 2);
            freeze(server);
            pool.close().await;
        })
    });
}

#[test]
fn async_open_transaction_returned_to_a_frozen_server_gives_its_unit_back() {
    let (server, db) = fresh("adv_f_settle");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let in_use = within(20, "async settle", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(1);
            let pool = AsyncPool::builder(url, budget.clone())
                .return_timeout(Duration::from_secs(1))
                .build();
            let mut c = pool.acquire().await.unwrap();
            c.execute("BEGIN", args![]).await.unwrap();
            freeze(server);
            drop(c);
            let ok = eventually(Duration::from_secs(5), || budget.in_use() == 0);
            (ok, budget.snapshot().to_string())
        })
    });
    assert!(in_use.0, "the unit is still held: {}", in_use.1);
}

#[test]
fn sync_pool_close_with_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_sclose");
    let _thaw = Thaw(server);
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .connect_timeout(Duration::from_secs(1))
        .io_timeout(Duration::from_secs(1))
        .build();
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    drop((a, b));
    freeze(server);
    let p = pool.clone();
    within(10, "sync pool close", move || p.close());
    let b2 = budget.clone();
    within(10, "units back", move || {
        eventually(Duration::from_secs(8), || b2.in_use() == 0)
    });
    assert_eq!(budget.in_use(), 0, "{}", budget.snapshot());
}

#[test]
fn sync_discard_with_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_sdiscard");
    let _thaw = Thaw(server);
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .connect_timeout(Duration::from_secs(1))
        .io_timeout(Duration::from_secs(1))
        .build();
    let mut c = pool.get().unwrap();
    c.execute("SELECT 1", ()).unwrap();
    freeze(server);
    within(10, "sync discard", move || c.discard());
    assert_units_come_back(&budget);
}

#[test]
fn sync_transaction_commit_on_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_scommit");
    let _thaw = Thaw(server);
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .connect_timeout(Duration::from_secs(1))
        .io_timeout(Duration::from_secs(1))
        .build();
    let p = pool.clone();
    let r = within(15, "sync transaction", move || {
        p.transaction(|tx| {
            tx.execute("INSERT INTO t (v) VALUES (?)", (5,))?;
            freeze(server);
            Ok(())
        })
    });
    assert!(r.is_err(), "{r:?}");
    assert_units_come_back(&budget);
}

#[test]
fn async_idle_connection_validated_against_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_validate");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let r = within(15, "async acquire (validation ping)", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(1);
            let pool = AsyncPool::builder(url, budget.clone())
                .connect_timeout(Duration::from_secs(1))
                .pool_timeout(Duration::from_secs(3))
                .validation_bypass(Duration::from_millis(1))
                .build();
            drop(pool.acquire().await.unwrap());
            eventually(Duration::from_secs(2), || pool.idle_count() == 1);
            tokio::time::sleep(Duration::from_millis(20)).await;
            freeze(server);
            let started = std::time::Instant::now();
            let r = pool.acquire().await.map(drop);
            let took = started.elapsed();
            let back = eventually(Duration::from_secs(5), || budget.in_use() == 0);
            (r, back, took, budget.snapshot().to_string())
        })
    });
    assert!(r.0.is_err(), "{:?} after {:?}", r.0, r.2);
    assert!(
        r.1,
        "the unit did not come back within 5 s of acquire's answer ({:?} after {:?}): {}",
        r.0, r.2, r.3
    );
    assert!(
        r.2 < Duration::from_secs(4),
        "acquire took {:?} (connect 1 s, pool 3 s): {:?}",
        r.2,
        r.0
    );
}

/// Asserts that every unit of `budget` comes back within 8 s (a frozen server's waits
/// end within their bounds), guarded by [`within`].
fn assert_units_come_back(budget: &Budget) {
    let b2 = budget.clone();
    assert!(
        within(10, "units back", move || eventually(
            Duration::from_secs(8),
            || b2.in_use() == 0
        )),
        "{}",
        budget.snapshot()
    );
}
