//! The pool's own work: closes run on the pool's runtime even when a connection comes
//! back on another, a connection returned while the pool closes is not left idle in it,
//! and the gauges never read below zero.

use std::time::Duration;

use db_async::{AsyncConn, AsyncPool, args};
use db_budget::Budget;
use integration_tests::reuse::*;
use integration_tests::{Server, async_pool, budget, eventually, runtime};

#[test]
fn connections_returned_on_a_foreign_runtime_are_closed_by_the_pool_s_own() {
    let server = Server::shared();
    let db = items(server, "foreign_rt");
    let rt = runtime();
    let (budget, pool): (Budget, AsyncPool) = rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        (budget, pool)
    });

    // Act: on another runtime, a statement is cut off (its connection must be closed)
    // and that runtime is then never driven again.
    let foreign = on_an_undriven_runtime(async {
        let mut conn: AsyncConn = pool.acquire().await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            conn.fetch_one::<(i64,)>("SELECT SLEEP(5)", args![]),
        )
        .await;
        assert!(r.is_err(), "the statement was meant to be cut off");
    });

    // Assert: the pool's own runtime closes it and the unit comes back.
    let back = eventually(Duration::from_secs(3), || budget.in_use() == 0);
    assert!(
        back,
        "the close ran on the undriven runtime: {}",
        budget.snapshot()
    );
    drop(foreign);
}

#[test]
fn the_idle_gauge_never_goes_below_zero_while_connections_come_and_go() {
    let server = Server::shared();
    let db = items(server, "idle_gauge");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(4);
        let pool = async_pool(&db.url, &budget);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (budget, stop) = (budget.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut worst = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    worst = worst.max(budget.snapshot().async_side.idle);
                }
                worst
            })
        };
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..300 {
                    let mut c = pool.acquire().await.unwrap();
                    let _: (i64,) = c.fetch_one("SELECT 1", args![]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = sampler.join().unwrap();
        assert!(worst <= 4, "the idle gauge read {worst} for a budget of 4");
    });
}

#[test]
fn a_connection_returned_while_the_pool_closes_is_not_left_idle_in_it() {
    let server = Server::shared();
    let db = items(server, "close_race");
    let rt = runtime();
    rt.block_on(async {
        for _ in 0..100 {
            let budget = budget(1);
            let pool = async_pool(&db.url, &budget);
            let conn = pool.acquire().await.unwrap();
            let closer = {
                let pool = pool.clone();
                tokio::spawn(async move { pool.close().await })
            };
            drop(conn);
            closer.await.unwrap();
            let settled = eventually(Duration::from_secs(2), || budget.in_use() == 0);
            assert!(settled && pool.idle_count() == 0, "{}", budget.snapshot());
        }
    });
}
