//! Waiters are served when a full pool closes a connection and woken when the pool
//! closes; many threads on a small budget end settled; a dropped pool closes its idle
//! connections; the legacy shim uses the installed pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::{Duration, Instant};

use db_budget::{CloseReason, DbError};

use crate::{Fixture, assert_settled, closed, count, fixture};

#[test]
fn a_waiter_is_served_when_a_full_pool_closes_a_returned_connection() {
    // r2d2 wakes waiters only when a connection is pooled, not when one is destroyed;
    // with the pool at its size a waiter would sleep until its timeout.
    let f = fixture("sync_wake", 1);
    let conn = f.pool.get().unwrap();
    let pool = f.pool.clone();
    let waiter = thread::spawn(move || {
        let started = Instant::now();
        pool.get().map(|c| (started.elapsed(), c.connection_id()))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.budget.snapshot().sync_side.waiting == 0 {
        assert!(Instant::now() < deadline, "the waiter never waited");
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    let first_id = conn.connection_id();
    conn.discard(); // closed, not pooled
    let (waited, id) = waiter.join().unwrap().expect("the waiter was served");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    assert_ne!(id, first_id);
    assert_settled(&f);
}

#[test]
fn closing_the_pool_wakes_every_waiter_when_a_connection_comes_back() {
    let f = fixture("sync_close", 1);
    let conn = f.pool.get().unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = f.pool.clone();
            thread::spawn(move || {
                let started = Instant::now();
                (pool.get().map(drop), started.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.budget.snapshot().sync_side.waiting < 3 {
        assert!(Instant::now() < deadline, "the callers never waited");
        thread::sleep(Duration::from_millis(5));
    }
    f.pool.close();
    drop(conn); // closed on return, which wakes a waiter, which wakes the next
    for w in waiters {
        let (result, waited) = w.join().unwrap();
        assert!(matches!(result, Err(DbError::Closed)), "{result:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::PoolClosed), 1, "{snap}");
    assert_eq!(snap.in_use, 0, "{snap}");
    assert_eq!(snap.sync_side.active, 0, "{snap}");
}

#[test]
fn many_threads_on_a_small_budget_end_settled() {
    let f = fixture("sync_load", 3);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = f.pool.clone();
            thread::spawn(move || {
                for i in 0..40 {
                    let name = format!("p{t}_{i}");
                    match i % 4 {
                        // Committed.
                        0 => {
                            pool.execute("INSERT INTO players (name) VALUES (?)", (&name,))
                                .unwrap();
                        }
                        // Rolled back on drop.
                        1 => {
                            let mut conn = pool.get().unwrap();
                            conn.execute("BEGIN", ()).unwrap();
                            conn.execute("INSERT INTO players (name) VALUES (?)", (&name,))
                                .unwrap();
                        }
                        // A panic while holding the connection.
                        2 => {
                            let pool = pool.clone();
                            let r = catch_unwind(AssertUnwindSafe(move || {
                                let _conn = pool.get().unwrap();
                                panic!("boom");
                            }));
                            assert!(r.is_err());
                        }
                        // A transaction that fails.
                        _ => {
                            let r: Result<(), DbError> = pool.transaction(|tx| {
                                tx.execute("INSERT INTO players (name) VALUES (?)", (&name,))?;
                                Err(DbError::RowNotFound)
                            });
                            assert!(r.is_err());
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&f.pool), 8 * 10);
    let snap = f.budget.snapshot();
    assert!(snap.in_use <= 3, "{snap}");
    assert_eq!(closed(&snap, CloseReason::Cancelled), 8 * 10, "{snap}");
    assert_eq!(snap.sync_side.acquire_timeouts_total, 0, "{snap}");
    assert_settled(&f);
}

#[test]
fn dropping_the_pool_closes_its_idle_connections() {
    let f = fixture("sync_drop", 2);
    let conns = (f.pool.get().unwrap(), f.pool.get().unwrap());
    drop(conns);
    assert_eq!(f.pool.state().idle, 2);
    let Fixture { budget, pool, .. } = f;
    drop(pool);
    // An r2d2 background connect job may hold the pool for a moment longer; the last
    // holder closes the idle connections.
    let deadline = Instant::now() + Duration::from_secs(2);
    while budget.in_use() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let snap = budget.snapshot();
    assert_eq!(snap.in_use, 0, "{snap}");
    assert_eq!(snap.sync_side.idle, 0, "{snap}");
    assert_eq!(closed(&snap, CloseReason::PoolClosed), 2, "{snap}");
}

#[test]
fn the_legacy_shim_uses_the_installed_pool() {
    let f = fixture("sync_global", 2);
    let _installed = db_sync::install_global(f.pool.clone()).expect("first install");
    assert!(db_sync::install_global(f.pool.clone()).is_err());
    let mut conn = db_sync::get_database_connection().unwrap();
    let (one,): (i64,) = conn.fetch_one("SELECT 1", ()).unwrap();
    assert_eq!(one, 1);
    assert_eq!(f.budget.snapshot().sync_side.active, 1);
    drop(conn);
    assert_settled(&f);
}
