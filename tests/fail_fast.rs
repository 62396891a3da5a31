//! I4, fail fast and say why: a caller that cannot get a connection within the pool
//! timeout gets a typed error carrying the budget's state, promptly, on either side;
//! blocking on a current-thread runtime's thread is refused; beyond `DB_MAX_WAITERS`
//! waiters, a caller is refused at once (load shedding). Why callers waited (each of
//! the four causes, produced for real) and who held the connections: `causes`.

#[path = "fail_fast/causes.rs"]
mod causes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{Budget, DbError, Side, TimeoutPhase};
use db_sync::SyncPool;
use integration_tests::{Server, TestDb, budget, init_tracing, runtime};

const POOL_TIMEOUT: Duration = Duration::from_millis(300);
/// How late a timeout may come (the bound).
const SLACK: Duration = Duration::from_millis(100);

/// Both pools on `budget`, each with [`POOL_TIMEOUT`].
fn pools(rt: &tokio::runtime::Runtime, db: &TestDb, budget: &Budget) -> (AsyncPool, SyncPool) {
    let apool = {
        let _e = rt.enter();
        AsyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(POOL_TIMEOUT)
            .build()
    };
    let spool = SyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(POOL_TIMEOUT)
        .build();
    (apool, spool)
}

#[test]
fn with_the_budget_held_an_async_caller_gets_a_timeout_showing_the_budget() {
    // Arrange: budget 2, one unit held by each side.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "i4_async");
    let rt = runtime();
    let budget = budget(2);
    let (apool, spool) = pools(&rt, &db, &budget);
    let held_sync = spool.get().unwrap();
    let held_async = rt.block_on(apool.acquire()).unwrap();

    // Act
    let started = Instant::now();
    let err = rt.block_on(apool.acquire()).unwrap_err();
    let waited = started.elapsed();

    // Assert
    let msg = err.to_string();
    println!("I4 async: {msg} (after {waited:?})");
    assert!(
        waited >= POOL_TIMEOUT && waited <= POOL_TIMEOUT + SLACK,
        "{waited:?}"
    );
    match &err {
        DbError::PoolTimeout {
            side,
            phase,
            snapshot,
            ..
        } => {
            assert_eq!(*side, Side::Async);
            assert_eq!(*phase, TimeoutPhase::Wait);
            assert_eq!((snapshot.capacity, snapshot.in_use), (2, 2));
            assert_eq!(snapshot.async_side.active, 1);
            assert_eq!(snapshot.async_side.waiting, 1);
            assert_eq!(snapshot.sync_side.active, 1);
        }
        other => panic!("expected a pool timeout, got {other:?}"),
    }
    assert!(
        msg.starts_with("timed out after 3")
            && msg.contains("ms waiting for a database connection (async): backlog — ")
            && msg.ends_with("; budget 2/2 in use (async: 1 active, 0 idle, 1 waiting; sync: 1 active, 0 idle, 0 waiting)"),
        "{msg}"
    );
    assert!(err.is_unavailable());
    assert_eq!(budget.snapshot().async_side.acquire_timeouts_total, 1);
    drop((held_sync, held_async));
}

#[test]
fn with_the_budget_held_a_blocking_caller_gets_a_timeout_showing_the_budget() {
    // Arrange
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "i4_sync");
    let rt = runtime();
    let budget = budget(2);
    let (apool, spool) = pools(&rt, &db, &budget);
    let held_async = rt.block_on(apool.acquire()).unwrap();
    let held_sync = spool.get().unwrap();

    // Act
    let started = Instant::now();
    let err = spool.get().unwrap_err();
    let waited = started.elapsed();

    // Assert
    let msg = err.to_string();
    println!("I4 sync: {msg} (after {waited:?})");
    assert!(
        waited >= POOL_TIMEOUT && waited <= POOL_TIMEOUT + SLACK,
        "{waited:?}"
    );
    assert!(
        matches!(
            err,
            DbError::PoolTimeout {
                side: Side::Sync,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(msg.contains("budget 2/2 in use (async: 1 active, 0 idle, 0 waiting; sync: 1 active, 0 idle, 1 waiting)"), "{msg}");
    drop((held_sync, held_async));
}

#[test]
fn a_blocking_checkout_on_a_current_thread_runtime_is_refused_and_spawn_blocking_works() {
    let server = Server::shared();
    let db = TestDb::create(server, "i4_rt");
    let spool = SyncPool::builder(db.url.clone(), budget(2)).build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let refused = spool.get().map(|_| ()).unwrap_err();
        assert!(
            matches!(refused, DbError::BlockingNotAllowed),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("spawn_blocking"));
        let p = spool.clone();
        let v: i64 = tokio::task::spawn_blocking(move || p.get()?.fetch_one("SELECT 41 + 1", ()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, 42);
    });
}

#[test]
fn a_returned_connection_goes_to_the_waiting_caller_not_back_to_the_one_that_returned_it() {
    // Arrange: one unit; A holds it, B waits for it.
    let server = Server::shared();
    let db = TestDb::create(server, "i4_fair");
    let rt = runtime();
    let budget = budget(1);
    rt.block_on(async {
        let pool = AsyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(2))
            .build();
        let a = pool.acquire().await.unwrap();
        let p = pool.clone();
        // Set the moment B holds the connection. (Not `JoinHandle::is_finished`: B's
        // task completes a little after it has returned the connection, and in that
        // window A's loop, which takes an idle connection without yielding, ran up to
        // its limit although B had been served first.)
        let b_served = Arc::new(AtomicBool::new(false));
        let served = b_served.clone();
        let b = tokio::spawn(async move {
            let conn = p.acquire().await?;
            served.store(true, SeqCst);
            drop(conn);
            Ok::<(), DbError>(())
        });
        while budget.snapshot().async_side.waiting == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        // Act: A returns the connection and at once asks for one again, in a loop.
        drop(a);
        let mut a_again = 0;
        while !b_served.load(SeqCst) && a_again < 1000 {
            if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(50), pool.acquire()).await
            {
                drop(c);
            }
            a_again += 1;
        }

        // Assert: B got it promptly (A did not keep taking it back).
        assert!(
            tokio::time::timeout(Duration::from_secs(1), b)
                .await
                .is_ok_and(|r| r.unwrap().is_ok()),
            "the waiting caller was starved"
        );
        assert!(
            a_again <= 2,
            "A overtook the waiting caller {a_again} times"
        );
    });
}

#[test]
fn beyond_the_waiter_limit_callers_of_either_side_are_shed_instead_of_queued() {
    // Arrange: budget 2, both units held; the limit is one waiter per side, and the pool
    // timeout long enough that a caller who queued instead of being shed would fail
    // this test with a timeout, not pass it.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "shed");
    let rt = runtime();
    let budget = budget(2);
    budget.set_max_waiters(Some(1));
    let apool = {
        let _e = rt.enter();
        AsyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(20))
            .build()
    };
    let spool = SyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(20))
        .build();
    let held_sync = spool.get().unwrap();
    let held_async = rt.block_on(apool.acquire()).unwrap();
    let queued_async = {
        let apool = apool.clone();
        rt.spawn(async move { apool.acquire().await.map(drop) })
    };
    let queued_sync = {
        let spool = spool.clone();
        std::thread::spawn(move || spool.get().map(drop))
    };
    let both_wait = integration_tests::eventually(Duration::from_secs(5), || {
        let s = budget.snapshot();
        s.async_side.waiting == 1 && s.sync_side.waiting == 1
    });
    assert!(both_wait, "{}", budget.snapshot());

    // Act: a second caller on each side.
    let async_err = rt.block_on(apool.acquire()).unwrap_err();
    let sync_err = spool.get().unwrap_err();

    // Assert: refused, typed and counted; the queued callers are served once the units
    // come back.
    for (err, side) in [(&async_err, Side::Async), (&sync_err, Side::Sync)] {
        assert!(
            matches!(err, DbError::Shed { side: s, limit: 1 } if *s == side),
            "{err:?}"
        );
        assert!(err.to_string().contains("DB_MAX_WAITERS"), "{err}");
    }
    let snap = budget.snapshot();
    assert_eq!(snap.async_side.acquire_shed_total, 1);
    assert_eq!(snap.sync_side.acquire_shed_total, 1);
    assert_eq!(
        snap.async_side.acquire_timeouts_total + snap.sync_side.acquire_timeouts_total,
        0
    );
    drop(held_async);
    drop(held_sync);
    rt.block_on(queued_async)
        .unwrap()
        .expect("the queued async caller");
    queued_sync
        .join()
        .unwrap()
        .expect("the queued blocking caller");
}
