//! Bulkheads (B1–B5): caps and floors on both pools, closing while callers wait in a
//! bulkhead, shedding per bulkhead, and the cap under cancellation, panics and threads.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use db_async::args;
use db_budget::{DbError, TimeoutPhase};
use integration_tests::{eventually, init_tracing, runtime};

use super::{budget_with, database, pools};

const SOON: Duration = Duration::from_secs(2);

#[test]
fn closing_the_async_pool_ends_a_wait_at_the_module_cap_with_closed() {
    // Arrange: module `m` may hold one checkout; it holds it and a second caller waits
    // at the cap.
    init_tracing();
    let (_server, db) = database("adv4_aclose");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget_with(4, "m=0..1");
        let (apool, _spool) = pools(&db, &budget, Duration::from_secs(5));
        let m = apool.for_module("m");
        let held = m.acquire().await.expect("the first checkout");
        let waiter = tokio::spawn(m.acquire());
        assert!(eventually(SOON, || budget.snapshot().bulkheads[0].waiting == 1));

        // Act
        apool.close().await;
        let waited = waiter.await.unwrap();
        let later = m.acquire().await;

        // Assert: AsyncPool::close says "waiters and later acquires fail with Closed".
        assert!(
            matches!(waited, Err(DbError::Closed)),
            "the caller waiting in the bulkhead: {waited:?}"
        );
        assert!(
            matches!(later, Err(DbError::Closed)),
            "an acquire after close, module at its cap: {later:?}"
        );
        drop(held);
        assert!(eventually(SOON, || budget.in_use() == 0
            && budget.snapshot().bulkheads[0].in_use == 0));
    });
}

#[test]
fn closing_the_blocking_pool_ends_a_wait_at_the_module_cap_with_closed() {
    // Arrange: as above, on the blocking pool.
    init_tracing();
    let (_server, db) = database("adv4_sclose");
    let rt = runtime();
    let budget = budget_with(4, "m=0..1");
    let (_apool, spool) = {
        let _enter = rt.enter();
        pools(&db, &budget, Duration::from_secs(5))
    };
    let m = spool.for_module("m");
    let held = m.get().expect("the first checkout");
    let waiter = {
        let m = m.clone();
        std::thread::spawn(move || m.get().map(|_| ()))
    };
    assert!(eventually(SOON, || budget.snapshot().bulkheads[0].waiting == 1));

    // Act
    spool.close();
    let waited = waiter.join().unwrap();

    // Assert: SyncPool::close says waiters get Closed "at their deadline at the
    // latest"; a caller in the bulkhead gets a pool timeout instead.
    assert!(
        matches!(waited, Err(DbError::Closed)),
        "the caller waiting in the bulkhead: {waited:?}"
    );
    drop(held);
    assert!(eventually(SOON, || budget.in_use() == 0
        && budget.snapshot().bulkheads[0].in_use == 0));
}

#[test]
fn with_max_waiters_an_async_module_at_its_cap_sheds_extra_callers_at_once() {
    // Arrange: DB_MAX_WAITERS=1, module `m` capped at one checkout, which it holds.
    init_tracing();
    let (_server, db) = database("adv4_ashed");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget_with(4, "m=0..1");
        budget.set_max_waiters(Some(1));
        let (apool, _spool) = pools(&db, &budget, Duration::from_secs(3));
        let m = apool.for_module("m");
        let held = m.acquire().await.expect("the first checkout");

        // Act: three more callers of `m` at once.
        let tries: Vec<_> = (0..3).map(|_| tokio::spawn(m.acquire())).collect();
        let mut results = Vec::new();
        for t in tries {
            results.push(t.await.unwrap().map(|_| ()));
        }
        drop(held);

        // Assert: at most one waits; the others are refused with Shed and counted.
        let shed = results
            .iter()
            .filter(|r| matches!(r, Err(DbError::Shed { .. })))
            .count();
        let snap = budget.snapshot();
        assert!(
            shed >= 2,
            "callers beyond DB_MAX_WAITERS in a bulkhead: {results:?}"
        );
        assert!(snap.async_side.acquire_shed_total >= 2, "{snap:?}");
        assert_eq!(
            snap.bulkheads[0].shed_total, snap.async_side.acquire_shed_total,
            "counted against the module too"
        );
        assert!(eventually(SOON, || budget.snapshot().bulkheads[0].in_use == 0));
    });
}

#[test]
fn with_max_waiters_a_blocking_module_at_its_cap_sheds_extra_callers_at_once() {
    // Arrange: as above, on the blocking pool.
    init_tracing();
    let (_server, db) = database("adv4_sshed");
    let rt = runtime();
    let budget = budget_with(4, "m=0..1");
    budget.set_max_waiters(Some(1));
    let (_apool, spool) = {
        let _enter = rt.enter();
        pools(&db, &budget, Duration::from_secs(3))
    };
    let m = spool.for_module("m");
    let held = m.get().expect("the first checkout");

    // Act
    let tries: Vec<_> = (0..3)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || m.get().map(|_| ()))
        })
        .collect();
    let results: Vec<_> = tries.into_iter().map(|t| t.join().unwrap()).collect();
    drop(held);

    // Assert
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(DbError::Shed { .. })))
        .count();
    assert!(
        shed >= 2,
        "callers beyond DB_MAX_WAITERS in a bulkhead: {results:?}"
    );
    assert!(eventually(SOON, || budget.snapshot().bulkheads[0].in_use == 0));
}

#[test]
fn closing_the_budget_ends_every_bulkhead_wait_on_both_pools_and_gives_every_place_back() {
    // Arrange: budget 4, `m=0..1`, `r=1..1`: the shared part is 3. `m` holds one place
    // (shared) and waits at its cap on both pools; two unassigned checkouts fill the
    // shared part and a third unassigned caller waits for it.
    init_tracing();
    let (_server, db) = database("adv4_bclose");
    let rt = runtime();
    let budget = budget_with(4, "m=0..1,r=1..1");
    let (apool, spool) = {
        let _enter = rt.enter();
        pools(&db, &budget, Duration::from_secs(5))
    };
    let (am, sm) = (apool.for_module("m"), spool.for_module("m"));
    let held_m = rt.block_on(am.acquire()).expect("m's checkout");
    let held_shared: Vec<_> = (0..2)
        .map(|_| spool.get().expect("shared checkout"))
        .collect();
    let async_m = rt.spawn(am.acquire());
    let async_other = rt.spawn(apool.acquire());
    let sync_m = std::thread::spawn(move || sm.get().map(|_| ()));
    assert!(eventually(SOON, || budget.snapshot().bulkheads[0].waiting == 2));

    // Act
    budget.close();

    // Assert
    let results = (
        rt.block_on(async_m).unwrap().map(|_| ()),
        rt.block_on(async_other).unwrap().map(|_| ()),
        sync_m.join().unwrap(),
    );
    assert!(
        matches!(
            results,
            (
                Err(DbError::Closed),
                Err(DbError::Closed),
                Err(DbError::Closed)
            )
        ),
        "{results:?}"
    );
    drop((held_m, held_shared));
    assert!(
        eventually(SOON, || {
            let s = budget.snapshot();
            s.bulkheads.iter().all(|b| b.in_use == 0 && b.waiting == 0) && budget.in_use() == 0
        }),
        "after the budget closed and every checkout came back: {:?}",
        budget.snapshot()
    );
}

/// Counts checkouts held, for a high-water mark; the count falls before the checkout
/// (and so its admission) is given back, so the mark never overstates.
struct Held<C> {
    count: Arc<(AtomicU32, AtomicU32)>,
    conn: Option<C>,
}

impl<C> Held<C> {
    fn new(conn: C, count: &Arc<(AtomicU32, AtomicU32)>) -> Held<C> {
        let now = count.0.fetch_add(1, SeqCst) + 1;
        count.1.fetch_max(now, SeqCst);
        Held {
            count: count.clone(),
            conn: Some(conn),
        }
    }
}

impl<C> Drop for Held<C> {
    fn drop(&mut self) {
        self.count.0.fetch_sub(1, SeqCst);
        drop(self.conn.take());
    }
}

#[test]
fn a_module_never_holds_more_than_its_cap_across_both_pools_under_cancellation_panics_and_threads()
{
    // Arrange: budget 6, `m=1..2`: six async tasks and three threads of module `m`
    // churn for two seconds, cancelling acquires mid-admission and statements mid-way,
    // dropping open transactions, using raw access, panicking while holding, and
    // moving blocking checkouts to another thread before returning them.
    init_tracing();
    let (_server, db) = database("adv4_cap");
    let rt = runtime();
    let budget = budget_with(6, "m=1..2");
    let (apool, spool) = {
        let _enter = rt.enter();
        pools(&db, &budget, Duration::from_secs(10))
    };
    let count = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
    let until = Instant::now() + Duration::from_secs(2);

    // Act
    let tasks: Vec<_> = (0..6u32)
        .map(|t| {
            let (m, count) = (apool.for_module("m"), count.clone());
            rt.spawn(async move {
                let mut i = t;
                while Instant::now() < until {
                    i += 1;
                    match i % 5 {
                        0 => {
                            // Cancelled while waiting for admission or a connection.
                            let _ =
                                tokio::time::timeout(Duration::from_micros(300), m.acquire()).await;
                        }
                        1 => {
                            let Ok(c) = m.acquire().await else { continue };
                            let mut h = Held::new(c, &count);
                            let c = h.conn.as_mut().unwrap();
                            // Cancelled mid-statement: the connection is closed on return.
                            let _ = tokio::time::timeout(
                                Duration::from_millis(2),
                                c.fetch_one::<(i64,)>("SELECT SLEEP(0.01)", args![]),
                            )
                            .await;
                        }
                        2 => {
                            let Ok(c) = m.acquire().await else { continue };
                            let mut h = Held::new(c, &count);
                            let c = h.conn.as_mut().unwrap();
                            if let Ok(mut tx) = c.begin().await {
                                let _ = tx.fetch_one::<(i64,)>("SELECT 1", args![]).await;
                            } // dropped uncommitted: rolled back
                        }
                        3 => {
                            let Ok(c) = m.acquire().await else { continue };
                            let mut h = Held::new(c, &count);
                            let c = h.conn.as_mut().unwrap();
                            if let Ok(raw) = c.raw().await {
                                let _ = sqlx::Executor::execute(raw, "SELECT 1").await;
                            }
                        }
                        _ => {
                            // A panic while holding (the task's panic is caught by tokio).
                            let m = m.clone();
                            let count = count.clone();
                            let _ = tokio::spawn(async move {
                                let c = m.acquire().await.expect("checkout");
                                let _h = Held::new(c, &count);
                                panic!("adversary: a panic while holding a checkout");
                            })
                            .await;
                        }
                    }
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..3u32)
        .map(|t| {
            let (m, count) = (spool.for_module("m"), count.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while Instant::now() < until {
                    i += 1;
                    let Ok(c) = m.get() else { continue };
                    let mut h = Held::new(c, &count);
                    match i % 3 {
                        0 => {
                            // Returned on another thread.
                            std::thread::spawn(move || {
                                let c = h.conn.as_mut().unwrap();
                                let _ = c.fetch_one::<(i64,)>("SELECT 1", ());
                            })
                            .join()
                            .unwrap();
                        }
                        1 => {
                            let r =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                                    let _h = h;
                                    panic!("adversary: a panic while holding a blocking checkout");
                                }));
                            assert!(r.is_err());
                        }
                        _ => {
                            let c = h.conn.as_mut().unwrap();
                            let _ = c.execute("BEGIN", ());
                            let _ = c.execute("SELECT 1", ());
                        }
                    }
                }
            })
        })
        .collect();
    let mut sampled_in_use = 0;
    let mut sampled_units = 0;
    while Instant::now() < until {
        let s = budget.snapshot();
        sampled_in_use = sampled_in_use.max(s.bulkheads[0].in_use);
        sampled_units = sampled_units.max(s.in_use);
        std::thread::sleep(Duration::from_millis(2));
    }
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }

    // Assert
    let high_water = count.1.load(SeqCst);
    println!("high water {high_water}, sampled in_use {sampled_in_use}, units {sampled_units}");
    assert!(high_water >= 1, "the load held checkouts");
    assert!(
        high_water <= 2,
        "module m held {high_water} checkouts at once, cap 2"
    );
    assert!(sampled_in_use <= 2 && sampled_units <= 6);
    assert!(eventually(SOON, || {
        let s = budget.snapshot();
        s.bulkheads[0].in_use == 0 && s.bulkheads[0].waiting == 0
    }));
}

#[test]
fn a_runaway_blocking_module_at_its_cap_does_not_push_an_async_module_s_floor_into_timeouts() {
    // Arrange: budget 4, `r=2..4,legacy=0..2` (shared part 2). The blocking side first
    // opens all four connections (r's floor and legacy's two), then legacy runs away:
    // two threads keep its cap busy with slow statements, so the blocking side stays
    // busy while two of its connections sit idle that legacy can never use.
    init_tracing();
    let (_server, db) = database("adv4_floor");
    let rt = runtime();
    let budget = budget_with(4, "r=2..4,legacy=0..2");
    let (apool, spool) = {
        let _enter = rt.enter();
        pools(&db, &budget, Duration::from_millis(500))
    };
    let (sr, legacy) = (spool.for_module("r"), spool.for_module("legacy"));
    let all: Vec<_> = (0..2)
        .map(|_| sr.get().unwrap())
        .chain((0..2).map(|_| legacy.get().unwrap()))
        .collect();
    drop(all);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runaway: Vec<_> = (0..2)
        .map(|_| {
            let (legacy, stop) = (legacy.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    if let Ok(mut c) = legacy.get() {
                        let _ = c.fetch_one::<(i64,)>("SELECT SLEEP(0.05)", ());
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Act: r's async callers, two at a time (its floor), for two seconds.
    let ar = apool.for_module("r");
    let results: Vec<Result<(), DbError>> = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(2);
        let mut results = Vec::new();
        while Instant::now() < until {
            let pair: Vec<_> = (0..2)
                .map(|_| {
                    let ar = ar.clone();
                    tokio::spawn(async move {
                        let mut c = ar.acquire().await?;
                        c.fetch_one::<(i64,)>("SELECT SLEEP(0.01)", args![]).await?;
                        Ok::<(), DbError>(())
                    })
                })
                .collect();
            for p in pair {
                results.push(p.await.unwrap());
            }
        }
        results
    });
    stop.store(true, SeqCst);
    for t in runaway {
        t.join().unwrap();
    }

    // Assert: r's floor (2) is always its own, yet a unit must also be free for it.
    let timeouts: Vec<_> = results
        .iter()
        .filter(|r| matches!(r, Err(DbError::PoolTimeout { .. })))
        .collect();
    let phases: Vec<_> = timeouts
        .iter()
        .map(|r| match r {
            Err(DbError::PoolTimeout { phase, .. }) => *phase,
            _ => TimeoutPhase::Wait,
        })
        .collect();
    println!(
        "{} requests of r, timeouts in phases {phases:?}",
        results.len()
    );
    assert!(results.len() >= 10, "{}", results.len());
    assert!(
        timeouts.is_empty(),
        "{} of {} floor requests of r timed out (phases {phases:?}); first: {:?}",
        timeouts.len(),
        results.len(),
        timeouts.first()
    );
}
