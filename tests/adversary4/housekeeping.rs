//! Idle housekeeping (T3): keepalive passes racing a pool's close and the other side's
//! take-back of idle units, with the idle timeout still closing what sits idle.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{CloseReason, Snapshot};
use db_sync::SyncPool;
use integration_tests::reuse::closed;
use integration_tests::{budget, eventually, init_tracing, runtime};

use super::database;

fn total_closed(s: &db_budget::SideSnapshot) -> u64 {
    s.closed_total.iter().map(|(_, n)| n).sum()
}

fn settled(s: &Snapshot) -> bool {
    s.in_use == 0
        && s.async_side.opened_total == total_closed(&s.async_side)
        && s.sync_side.opened_total == total_closed(&s.sync_side)
}

#[test]
fn keepalive_passes_racing_pool_close_leak_no_unit_on_either_side() {
    // Arrange: keepalive every 50 ms, so both sides' passes are pinging most of the time.
    init_tracing();
    let (_server, db) = database("adv4_kaclose");
    let rt = runtime();
    for round in 0..8u64 {
        let budget = budget(4);
        let (apool, spool) = {
            let _enter = rt.enter();
            let a = AsyncPool::builder(db.url.clone(), budget.clone())
                .keepalive(Duration::from_millis(50))
                .validation_bypass(Duration::ZERO)
                .build();
            let s = SyncPool::builder(db.url.clone(), budget.clone())
                .keepalive(Duration::from_millis(50))
                .validation_bypass(Duration::ZERO)
                .build();
            (a, s)
        };
        let held: Vec<_> = (0..2).map(|_| spool.get().unwrap()).collect();
        drop(held);
        rt.block_on(async {
            let a = apool.acquire().await.unwrap();
            let b = apool.acquire().await.unwrap();
            drop((a, b));
        });

        // Act: close both pools at a moment that moves each round.
        std::thread::sleep(Duration::from_millis(40 + 7 * round));
        spool.close();
        rt.block_on(apool.close());

        // Assert: every connection opened is closed once, every unit back.
        assert!(
            eventually(Duration::from_secs(5), || settled(&budget.snapshot())),
            "round {round}: {:?}",
            budget.snapshot()
        );
    }
}

#[test]
fn idle_units_reach_the_other_side_while_its_keepalive_pass_pings_them() {
    // Arrange: budget 2; both sides' idle connections are pinged on every pass (50 ms);
    // the sides take turns needing both units, at moments that move each round.
    hand_over_rounds("adv4_kashrink", Duration::from_millis(50));
}

#[test]
fn idle_units_reach_the_other_side_in_turns_without_a_keepalive() {
    // The control for the test above: the same turns, keepalive off.
    hand_over_rounds("adv4_noka", Duration::ZERO);
}

fn hand_over_rounds(prefix: &str, keepalive: Duration) {
    init_tracing();
    let (_server, db) = database(prefix);
    let rt = runtime();
    let budget = budget(2);
    let (apool, spool) = {
        let _enter = rt.enter();
        let a = AsyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(2))
            .keepalive(keepalive)
            .build();
        let s = SyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(2))
            .keepalive(keepalive)
            .build();
        (a, s)
    };
    let mut failures = Vec::new();
    for round in 0..20u64 {
        let held: Vec<_> = (0..2).map(|_| spool.get()).collect();
        failures.extend(held.into_iter().filter_map(Result::err));
        std::thread::sleep(Duration::from_millis(45 + 3 * (round % 5)));

        // Act
        let got: Vec<Result<i64, db_budget::DbError>> = rt.block_on(async {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let apool = apool.clone();
                    tokio::spawn(async move {
                        let mut c = apool.acquire().await?;
                        let (n,): (i64,) = c.fetch_one("SELECT 1", args![]).await?;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok(n)
                    })
                })
                .collect();
            let mut got = Vec::new();
            for t in tasks {
                got.push(t.await.unwrap());
            }
            got
        });
        failures.extend(got.into_iter().filter_map(Result::err));
    }

    // Assert
    let s = budget.snapshot();
    println!(
        "yielded {} sync, broken {} sync",
        closed(&s.sync_side, CloseReason::Yielded),
        closed(&s.sync_side, CloseReason::Broken)
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(s.in_use <= 2, "{s:?}");
}

#[test]
fn with_a_keepalive_the_idle_timeout_still_closes_idle_connections_on_both_sides() {
    // Arrange: keepalive 100 ms, idle timeout 600 ms.
    init_tracing();
    let (_server, db) = database("adv4_kaidle");
    let rt = runtime();
    let budget = budget(4);
    let (apool, spool) = {
        let _enter = rt.enter();
        let a = AsyncPool::builder(db.url.clone(), budget.clone())
            .keepalive(Duration::from_millis(100))
            .idle_timeout(Duration::from_millis(600))
            .build();
        let s = SyncPool::builder(db.url.clone(), budget.clone())
            .keepalive(Duration::from_millis(100))
            .idle_timeout(Duration::from_millis(600))
            .build();
        (a, s)
    };
    let held: Vec<_> = (0..2).map(|_| spool.get().unwrap()).collect();
    drop(held);
    rt.block_on(async {
        let a = apool.acquire().await.unwrap();
        let b = apool.acquire().await.unwrap();
        drop((a, b));
    });

    // Act + Assert: pinged or not, idle connections close by the idle timeout.
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = budget.snapshot();
            s.in_use == 0
                && closed(&s.async_side, CloseReason::IdleTimeout) == 2
                && closed(&s.sync_side, CloseReason::IdleTimeout) == 2
        }),
        "{:?}",
        budget.snapshot()
    );
}
