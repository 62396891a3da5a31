//! Adversary 7: cut-off sessions linger (`db_budget::linger`). Where the list of
//! sessions to kill goes stale, where a connection that could reap does not, and where
//! a session the client gave up on runs on.
//!
//! As in `lingering.rs`, the statement cut off is a `CALL` of a procedure of short
//! sleeps, which only a KILL ends within a test.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::Budget;
use db_sync::SyncPool;
use integration_tests::endless::{Sampler, endless_procedure, kill_all, sessions};
use integration_tests::{Server, ServerOptions, TestDb, budget, eventually, runtime};

/// A database on the shared server with the procedure `slow()`.
fn with_endless_procedure(prefix: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    let db = TestDb::create(server, prefix);
    endless_procedure(server, &db);
    (server, db)
}

fn async_pool(db: &TestDb, budget: &Budget) -> AsyncPool {
    AsyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(20))
        .build()
}

/// Starts `CALL slow()` on a connection of `pool` in a task; returns the session id and
/// the task (abort it to cancel the CALL mid-statement).
async fn endless_call(pool: &AsyncPool) -> (u64, tokio::task::JoinHandle<()>) {
    let mut conn = pool.acquire().await.expect("a connection");
    let (id,): (u64,) = conn
        .fetch_one("SELECT CONNECTION_ID()", args![])
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn
            .with_statement_timeout(Duration::ZERO)
            .execute("CALL slow()", args![])
            .await;
    });
    // The CALL is on the server before anyone cancels it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (id, task)
}

#[test]
fn a_session_killed_from_the_list_after_a_server_restart_is_never_a_live_callers() {
    // Arrange: a private server (it restarts); a budget of 2; a CALL is cancelled while
    // no other connection can reap it, so its unit comes back at the deadline and its
    // session id stays on the list to kill.
    let server: &'static Server = Box::leak(Box::new(
        Server::start(ServerOptions::default()).expect("a private server"),
    ));
    let db = TestDb::create(server, "adv7_restart");
    endless_procedure(server, &db);
    let budget = budget(2);
    let rt = runtime();
    let pool = rt.block_on(async { async_pool(&db, &budget) });
    let cut = rt.block_on(async {
        let (id, task) = endless_call(&pool).await;
        task.abort();
        let _ = task.await;
        id
    });
    assert!(
        eventually(Duration::from_secs(5), || budget.lingering() == 0
            && budget.sessions_to_end() == 1),
        "the unit came back at the deadline, the session is still to kill: {}",
        budget.snapshot()
    );

    // Act: the server restarts (its session ids start again from the bottom); after a
    // few other sessions, a caller's connection gets the id of the cut-off session.
    // Then another caller's connection comes back.
    server.stop().expect("stop");
    server.restart_after_stop().expect("restart");
    let mut next = 0;
    for _ in 0..10_000 {
        next = server
            .sql("SELECT CONNECTION_ID()")
            .expect("an id")
            .trim()
            .parse::<u64>()
            .unwrap();
        if next + 1 >= cut {
            break;
        }
    }
    assert_eq!(next + 1, cut, "the ids restart below the cut-off session's");
    let (victim_id, outcome) = rt.block_on(async {
        let mut victim = pool.acquire().await.expect("the victim's connection");
        let (victim_id,): (u64,) = victim
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        {
            let mut other = pool.acquire().await.expect("another connection");
            let _: (i32,) = other.fetch_one("SELECT 1", args![]).await.unwrap();
        } // returned: it ends the sessions on the list
        tokio::time::sleep(Duration::from_millis(500)).await;
        let outcome = victim.fetch_one::<(i32,)>("SELECT 1", args![]).await;
        (victim_id, outcome)
    });

    // Assert
    assert_eq!(victim_id, cut, "the caller's connection reuses the id");
    assert!(
        outcome.is_ok(),
        "the caller's connection (session {victim_id}, in use) was killed as the old \
         cut-off session of that id: {outcome:?}"
    );
}

/// One round of the race below: the most sessions the server counted, what lingered
/// and was idle 300 ms after B's cut-off, and B's session id.
fn cut_off_during_a_reap(round: u32) -> (u64, (u32, usize), u64) {
    // Arrange: a budget of 3. Two CALLs run (A, B); the test holds the third
    // connection. A is cancelled: nothing is idle, so its unit lingers.
    let (server, db) = with_endless_procedure(&format!("adv7_during_reap{round}"));
    let budget = budget(3);
    let rt = runtime();
    let pool = rt.block_on(async { async_pool(&db, &budget) });
    let (spare, (_, a_task), (b, b_task)) = rt.block_on(async {
        let spare = pool.acquire().await.unwrap();
        let a = endless_call(&pool).await;
        let b = endless_call(&pool).await;
        (spare, a, b)
    });
    a_task.abort();
    assert!(
        eventually(Duration::from_secs(5), || budget.lingering() == 1),
        "A lingers: {}",
        budget.snapshot()
    );

    // Act: the spare connection comes back (it reaps A); while that reap runs, B is
    // cancelled. Then nothing runs until B's deadline is past, and three callers come.
    drop(spare);
    std::thread::sleep(Duration::from_micros(300));
    b_task.abort();
    std::thread::sleep(Duration::from_millis(300));
    let stranded = (budget.lingering(), pool.idle_count());
    std::thread::sleep(Duration::from_millis(1200));
    let sampler = Sampler::start(server, &db);
    rt.block_on(async {
        let held = futures_util::future::join_all((0..3).map(|_| pool.acquire())).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
    });
    let most = sampler.max();
    kill_all(server, &db);
    (most, stranded, b)
}

#[test]
fn a_session_cut_off_during_a_reap_is_reaped_by_the_connection_that_reap_pools() {
    // Arrange, Act: the race of `cut_off_during_a_reap`, a few rounds (the cut-off
    // lands inside the reap most of the time).
    let mut rounds = Vec::new();
    for round in 0..4 {
        let seen = cut_off_during_a_reap(round);
        rounds.push(seen);
        if seen.0 > 3 {
            break;
        }
    }

    // Assert
    let worst = rounds.iter().map(|r| r.0).max().unwrap();
    assert!(
        worst <= 3,
        "the server counted {worst} sessions of the application for a budget of 3: B \
         was cut off during the reap of A and nothing reaped it, though the reaping \
         connection was pooled idle; rounds (most, (lingering, idle) 300 ms after B's \
         cut-off, B): {rounds:?}"
    );
}

#[test]
fn a_session_cut_off_before_the_pool_closes_is_killed_by_the_connection_returned_after() {
    // Arrange: a budget of 2; a caller holds one connection while a CALL on the other
    // is cancelled (nothing is idle to reap it): as when a shutdown cancels in-flight
    // requests.
    let (server, db) = with_endless_procedure("adv7_close");
    let budget = budget(2);
    let rt = runtime();
    let pool = rt.block_on(async { async_pool(&db, &budget) });
    let (held, cut) = rt.block_on(async {
        let held = pool.acquire().await.unwrap();
        let (id, task) = endless_call(&pool).await;
        task.abort();
        let _ = task.await;
        (held, id)
    });
    assert!(
        eventually(Duration::from_secs(5), || budget.sessions_to_end() == 1),
        "the cancelled session is on the list to kill: {}",
        budget.snapshot()
    );

    // Act: the pool closes (graceful shutdown); the caller's connection comes back.
    rt.block_on(pool.close());
    drop(held);
    let ended = eventually(Duration::from_secs(5), || {
        !sessions(server, &db).contains(&cut)
    });
    let left = (sessions(server, &db), budget.snapshot().to_string());
    kill_all(server, &db);

    // Assert
    assert!(
        ended,
        "the cancelled session {cut} still runs 5 s after the pool closed and a \
         connection of the budget came back (left: {left:?})"
    );
}

#[test]
fn a_blocking_session_cut_off_while_a_connection_is_idle_is_reaped_with_it() {
    // Arrange: a budget of 2; the blocking pool has one idle connection.
    let (server, db) = with_endless_procedure("adv7_sync_idle");
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(20))
        .statement_timeout(Duration::from_secs(1))
        .statement_timeout_margin(Duration::from_millis(500))
        .build();
    {
        let mut c = pool.get().unwrap();
        let _: (i32,) = c.fetch_one("SELECT 1", ()).unwrap();
        let mut d = pool.get().unwrap();
        let _: (i32,) = d.fetch_one("SELECT 1", ()).unwrap();
    }

    // Act: a blocking CALL outlives its I/O timeout; then nothing runs for a moment
    // (low traffic), and two callers come.
    let mut conn = pool.get().unwrap();
    let (cut,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let r = conn.execute("CALL slow()", ());
    drop(conn);
    assert!(r.is_err(), "the CALL was cut off: {r:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let sampler = Sampler::start(server, &db);
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop((a, b));
    let most = sampler.max();
    kill_all(server, &db);

    // Assert
    assert!(
        most <= 2,
        "the server counted {most} sessions of the application for a budget of 2: the \
         cut-off session {cut} was not reaped with the idle connection and its unit came \
         back at the deadline"
    );
}
