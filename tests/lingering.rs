//! A statement the client gives up on (a caller cancels it, or the client's backstop
//! cuts it off) keeps running on the server, which counts its session until it ends.
//! Its unit therefore lingers until a connection inside the budget has killed the
//! session (`db_budget::linger`): the server's count of this application's sessions
//! never exceeds the budget, and the session does not run on.
//!
//! The statement is a `CALL` that only a KILL ends (`integration_tests::endless`).

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DbError, StoppedBy};
use db_sync::SyncPool;
use integration_tests::endless::{Sampler, endless_procedure, sessions};
use integration_tests::reuse::fresh;
use integration_tests::{Server, TestDb, budget, eventually, runtime};

const LIMIT: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_millis(500);

/// A database with the procedure `slow()` (`endless_procedure`).
fn with_endless_procedure(prefix: &str) -> (&'static Server, TestDb) {
    let (server, db) = fresh(prefix);
    endless_procedure(server, &db);
    (server, db)
}

fn async_pool(db: &TestDb, budget: &Budget) -> AsyncPool {
    AsyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(20))
        .statement_timeout(LIMIT)
        .statement_timeout_margin(MARGIN)
        .build()
}

fn sync_pool(db: &TestDb, budget: &Budget) -> SyncPool {
    SyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(20))
        .statement_timeout(LIMIT)
        .statement_timeout_margin(MARGIN)
        .build()
}

/// Runs `SELECT 1` on `pool` from `callers` tasks at once, `rounds` times each.
async fn busy(pool: &AsyncPool, callers: usize, rounds: usize) {
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let mut conn = pool.acquire().await.expect("a connection");
                let one: (i32,) = conn.fetch_one("SELECT 1", args![]).await.unwrap();
                assert_eq!(one.0, 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn a_statement_a_caller_cancels_keeps_its_unit_until_its_session_is_killed() {
    // Arrange: a budget of 2; one caller's CALL is cancelled after 300 ms.
    let (server, db) = with_endless_procedure("linger_cancel");
    let budget = budget(2);
    let rt = runtime();
    let pool = rt.block_on(async { async_pool(&db, &budget) });
    let cut = rt.block_on(async {
        let mut conn = pool.acquire().await.unwrap();
        let (id,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let call = conn
            .with_statement_timeout(Duration::ZERO)
            .execute("CALL slow()", args![]);
        let r = tokio::time::timeout(Duration::from_millis(300), call).await;
        assert!(r.is_err(), "the CALL was cancelled, not finished: {r:?}");
        id
    });
    assert!(
        eventually(Duration::from_secs(5), || budget.lingering() == 1),
        "the cancelled connection's unit lingers: {}",
        budget.snapshot()
    );
    assert!(
        sessions(server, &db).contains(&cut),
        "the server still runs the cancelled CALL"
    );

    // Act: four callers at once on what is left of the budget.
    let sampler = Sampler::start(server, &db);
    rt.block_on(busy(&pool, 4, 50));
    let most = sampler.max();

    // Assert
    assert!(
        most <= 2,
        "the server counted {most} sessions of the application for a budget of 2"
    );
    assert!(
        eventually(Duration::from_secs(10), || !sessions(server, &db)
            .contains(&cut)
            && budget.lingering() == 0),
        "the cancelled session was killed and its unit came back: {:?}, {}",
        sessions(server, &db),
        budget.snapshot()
    );
    assert_eq!(budget.sessions_to_end(), 0);
}

/// Whether a unit is free now, after a moment in which a unit given back too early
/// would have come back (the deadline thread runs at once).
fn a_unit_is_free_after_a_moment(budget: &Budget) -> bool {
    std::thread::sleep(Duration::from_millis(300));
    budget.try_acquire(db_budget::Side::Async).is_some()
}

#[test]
fn a_statement_the_backstop_cuts_off_keeps_its_unit_until_its_session_is_killed() {
    // Arrange: a budget of 2; another caller holds the second connection, so nothing
    // can end the cut-off session at once.
    let (server, db) = with_endless_procedure("linger_backstop");
    let budget = budget(2);
    let rt = runtime();
    let pool = rt.block_on(async { async_pool(&db, &budget) });
    let other = rt.block_on(pool.acquire()).unwrap();

    // Act: a CALL the server's limit does not stop is cut off by the backstop; then the
    // other connection comes back, and four callers go on.
    let sampler = Sampler::start(server, &db);
    let (cut, r) = rt.block_on(async {
        let mut conn = pool.acquire().await.unwrap();
        let (id,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        (id, conn.execute("CALL slow()", args![]).await)
    });
    let held = a_unit_is_free_after_a_moment(&budget);
    drop(other);
    rt.block_on(busy(&pool, 4, 50));
    let most = sampler.max();

    // Assert
    assert!(
        matches!(
            r,
            Err(DbError::StatementTimeout {
                stopped_by: StoppedBy::Client,
                ..
            })
        ),
        "the backstop cut the CALL off: {r:?}"
    );
    assert!(
        !held,
        "the cut-off connection's unit came back while its session ran"
    );
    assert!(
        most <= 2,
        "the server counted {most} sessions of the application for a budget of 2"
    );
    assert!(
        eventually(Duration::from_secs(10), || !sessions(server, &db)
            .contains(&cut)
            && budget.lingering() == 0),
        "the cut-off session was killed over the idle connection: {:?}, {}",
        sessions(server, &db),
        budget.snapshot()
    );
    assert!(budget.snapshot().lingered_total >= 1);
}

#[test]
fn a_blocking_statement_past_its_io_timeout_keeps_its_unit_until_its_session_is_killed() {
    // Arrange: a budget of 2; another caller holds the second connection.
    let (server, db) = with_endless_procedure("linger_sync");
    let budget = budget(2);
    let pool = sync_pool(&db, &budget);
    let other = pool.get().unwrap();

    // Act: the blocking CALL outlives its I/O timeout (limit + margin); then the other
    // connection comes back, and blocking callers go on.
    let sampler = Sampler::start(server, &db);
    let mut conn = pool.get().unwrap();
    let (cut,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let r = conn.execute("CALL slow()", ());
    drop(conn);
    let held = a_unit_is_free_after_a_moment(&budget);
    drop(other);
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..30 {
                    let mut c = pool.get().expect("a connection");
                    let one: (i32,) = c.fetch_one("SELECT 1", ()).unwrap();
                    assert_eq!(one.0, 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let most = sampler.max();

    // Assert
    assert!(
        matches!(
            r,
            Err(DbError::StatementTimeout {
                stopped_by: StoppedBy::Client,
                ..
            })
        ),
        "the I/O timeout cut the CALL off: {r:?}"
    );
    assert!(
        !held,
        "the lost connection's unit came back while its session ran"
    );
    assert!(
        most <= 2,
        "the server counted {most} sessions of the application for a budget of 2"
    );
    assert!(
        eventually(Duration::from_secs(10), || !sessions(server, &db)
            .contains(&cut)
            && budget.sessions_to_end() == 0),
        "a returned blocking connection killed the session: {:?}, {}",
        sessions(server, &db),
        budget.snapshot()
    );
}

#[test]
fn a_session_whose_unit_came_back_at_its_deadline_is_still_killed_by_the_next_connection() {
    // Arrange: a budget of 1: no other connection can end the cut-off session, so its
    // unit comes back at the deadline (the limit's end plus the teardown margin).
    let (server, db) = with_endless_procedure("linger_orphan");
    let budget = budget(1);
    let rt = runtime();
    let pool = rt.block_on(async { async_pool(&db, &budget) });
    let cut = rt.block_on(async {
        let mut conn = pool.acquire().await.unwrap();
        let (id,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let r = conn.execute("CALL slow()", args![]).await;
        assert!(matches!(r, Err(DbError::StatementTimeout { .. })), "{r:?}");
        id
    });

    // Act: the next caller waits for the unit, gets it at the deadline, and returns its
    // connection.
    rt.block_on(busy(&pool, 1, 1));

    // Assert
    assert!(
        eventually(Duration::from_secs(10), || !sessions(server, &db)
            .contains(&cut)
            && budget.sessions_to_end() == 0),
        "the orphaned session was killed: {:?}, {} to end, {}",
        sessions(server, &db),
        budget.sessions_to_end(),
        budget.snapshot()
    );
    assert_eq!(budget.lingering(), 0);
}

#[test]
fn a_blocking_session_cut_off_is_killed_by_an_async_connection_of_the_same_budget() {
    // Arrange: one budget of 3, both pools; the async pool has an idle connection.
    let (server, db) = with_endless_procedure("linger_cross");
    let budget = budget(3);
    let rt = runtime();
    let apool = rt.block_on(async { async_pool(&db, &budget) });
    rt.block_on(busy(&apool, 1, 1));
    let spool = sync_pool(&db, &budget);

    // Act: a blocking CALL is cut off; then only the async side runs statements.
    let mut conn = spool.get().unwrap();
    let (cut,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let r = conn.execute("CALL slow()", ());
    drop(conn);
    assert!(matches!(r, Err(DbError::StatementTimeout { .. })), "{r:?}");
    rt.block_on(busy(&apool, 1, 3));

    // Assert
    assert!(
        eventually(Duration::from_secs(10), || !sessions(server, &db)
            .contains(&cut)
            && budget.sessions_to_end() == 0),
        "the async side killed the blocking side's session: {:?}, {}",
        sessions(server, &db),
        budget.snapshot()
    );
}
