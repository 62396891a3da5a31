//! The hot path costs one round trip: a checkout of a recently used connection sends no
//! ping, its return sends no ROLLBACK, and a repeated statement is prepared once per
//! connection. Counted on the server (`Com_*` status counters), so a regression that adds
//! a round trip per call (which would cost half the throughput) fails here.

use db_async::args;
use integration_tests::{Server, ServerOptions, TestDb, async_pool, budget, runtime};

const CALLS: u64 = 200;

/// The server-wide command counters we care about.
fn counters(server: &Server) -> [u64; 5] {
    [
        "Com_stmt_execute",
        "Com_stmt_prepare",
        "Com_admin_commands", // COM_PING
        "Com_rollback",
        "Com_stmt_close",
    ]
    .map(|name| server.global_status(name).unwrap())
}

fn delta(after: [u64; 5], before: [u64; 5]) -> [u64; 5] {
    std::array::from_fn(|i| after[i] - before[i])
}

#[test]
fn a_blocking_checkout_and_statement_cost_one_round_trip() {
    // Arrange: a private server, so nothing else moves its counters.
    let server = Server::start(ServerOptions::default()).unwrap();
    let db = TestDb::create(&server, "rt_sync");
    // The ping of a connection idle past the validation bypass (500 ms) is the pool's
    // design, not a round trip of the hot path: a loaded machine that stalls this loop
    // for half a second must not count as one.
    let pool = db_sync::SyncPool::builder(db.url.clone(), budget(2))
        .pool_timeout(std::time::Duration::from_secs(10))
        .validation_bypass(std::time::Duration::from_secs(3600))
        .build();
    let _: i64 = pool.get().unwrap().fetch_one("SELECT ? + 1", (0,)).unwrap(); // connect + prepare
    let before = counters(&server);

    // Act
    for i in 0..CALLS {
        let v: i64 = pool.get().unwrap().fetch_one("SELECT ? + 1", (i,)).unwrap();
        assert_eq!(v, i as i64 + 1);
    }

    // Assert (the status reads themselves are plain queries, not counted here)
    let [execute, prepare, ping, rollback, close] = delta(counters(&server), before);
    println!(
        "blocking: {CALLS} calls: execute {execute}, prepare {prepare}, ping {ping}, rollback {rollback}, close {close}"
    );
    assert_eq!(execute, CALLS);
    assert_eq!((prepare, ping, rollback, close), (0, 0, 0, 0));
}

#[test]
fn an_async_checkout_and_statement_cost_one_round_trip() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let db = TestDb::create(&server, "rt_async");
    let rt = runtime();
    rt.block_on(async {
        // As above: a stall past the validation bypass is not the hot path.
        let pool = db_async::AsyncPool::builder(db.url.clone(), budget(2))
            .pool_timeout(std::time::Duration::from_secs(10))
            .validation_bypass(std::time::Duration::from_secs(3600))
            .build();
        let _: (i64,) = pool.acquire().await.unwrap().fetch_one("SELECT ? + 1", args![0]).await.unwrap();
        let before = counters(&server);
        for i in 0..CALLS as i64 {
            let (v,): (i64,) = pool.acquire().await.unwrap().fetch_one("SELECT ? + 1", args![i]).await.unwrap();
            assert_eq!(v, i + 1);
        }
        let [execute, prepare, ping, rollback, close] = delta(counters(&server), before);
        println!("async: {CALLS} calls: execute {execute}, prepare {prepare}, ping {ping}, rollback {rollback}, close {close}");
        assert_eq!(execute, CALLS);
        assert_eq!((prepare, ping, rollback, close), (0, 0, 0, 0));
    });
}

#[test]
fn a_committed_async_transaction_costs_no_rollback_on_return() {
    // Arrange
    let server = Server::start(ServerOptions::default()).unwrap();
    let db = TestDb::create(&server, "rt_tx");
    db.admin(
        &server,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
    );
    let rt = runtime();
    rt.block_on(async {
        let pool = async_pool(&db.url, &budget(2));
        let _ = pool
            .acquire()
            .await
            .unwrap()
            .execute("INSERT INTO t (v) VALUES (?)", args![0])
            .await
            .unwrap();
        let before = server.global_status("Com_rollback").unwrap();
        let commits_before = server.global_status("Com_commit").unwrap();

        // Act: transactions that commit, on connections that go back to the pool.
        for i in 0..20 {
            let mut conn = pool.acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO t (v) VALUES (?)", args![i])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        // The next checkout comes after every return has been handled.
        let (n,): (i64,) = pool
            .acquire()
            .await
            .unwrap()
            .fetch_one("SELECT COUNT(*) FROM t", args![])
            .await
            .unwrap();

        // Assert
        assert_eq!(n, 21);
        let rollbacks = server.global_status("Com_rollback").unwrap() - before;
        let commits = server.global_status("Com_commit").unwrap() - commits_before;
        println!("20 committed transactions: {commits} COMMIT, {rollbacks} ROLLBACK");
        assert_eq!((commits, rollbacks), (20, 0));
    });
}
