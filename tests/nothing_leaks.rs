//! I3, nothing leaks: early return, `?`, panic, a dropped transaction, hundreds of
//! queries cancelled mid-result, and connections killed by the server. Afterwards every
//! budget unit comes back, no rolled-back row is visible, and both pools still serve.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, CloseReason, DbError, Side};
use db_sync::SyncPool;
use integration_tests::reuse::closed;
use integration_tests::{
    Server, TestDb, async_pool, budget, eventually, init_tracing, runtime, sync_pool,
};

fn items_db(prefix: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    let db = TestDb::create(server, prefix);
    db.admin(
        server,
        "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64) NOT NULL)",
    );
    (server, db)
}

/// Every unit is accounted for by an idle connection: nothing is checked out, closing
/// or stuck.
fn settled(budget: &Budget) -> bool {
    let s = budget.snapshot();
    s.async_side.active == 0
        && s.sync_side.active == 0
        && s.in_use == s.async_side.idle + s.sync_side.idle
}

#[test]
fn a_blocking_guard_comes_back_after_early_return_question_mark_and_panic() {
    // Arrange
    init_tracing();
    let (_server, db) = items_db("leak_sync");
    let budget = budget(4);
    let pool = sync_pool(&db.url, &budget);

    fn early_return(pool: &SyncPool) -> Result<i64, DbError> {
        let mut conn = pool.get()?;
        let v: i64 = conn.fetch_one("SELECT 1", ())?;
        if v == 1 {
            return Ok(v);
        }
        unreachable!()
    }
    fn question_mark(pool: &SyncPool) -> Result<(), DbError> {
        let mut conn = pool.get()?;
        conn.execute("INSERT INTO no_such_table (v) VALUES (?)", ("x",))?;
        unreachable!()
    }

    // Act
    assert_eq!(early_return(&pool).unwrap(), 1);
    let err = question_mark(&pool).unwrap_err();
    let p = pool.clone();
    let panicked = std::thread::spawn(move || {
        let _conn = p.get().unwrap();
        panic!("a legacy handler panics while holding its connection");
    })
    .join();

    // Assert
    assert_eq!(err.code(), Some(1146), "{err:?}");
    assert!(panicked.is_err());
    assert!(
        eventually(Duration::from_secs(2), || settled(&budget)),
        "{:?}",
        budget.snapshot()
    );
    let s = budget.snapshot();
    assert_eq!(
        closed(&s.sync_side, CloseReason::Cancelled),
        1,
        "the panicked connection is discarded"
    );
    let v: i64 = pool.get().unwrap().fetch_one("SELECT 2", ()).unwrap();
    assert_eq!(v, 2, "the pool still serves");
}

#[test]
fn a_blocking_transaction_left_open_is_rolled_back_when_the_guard_drops() {
    // Arrange
    let (_server, db) = items_db("leak_sync_tx");
    let budget = budget(1);
    let pool = sync_pool(&db.url, &budget);

    // Act: raw legacy-style transaction, never committed.
    {
        use r2d2_mysql::mysql::prelude::Queryable;
        let mut conn = pool.get().unwrap();
        conn.query_drop("START TRANSACTION").unwrap();
        conn.exec_drop("INSERT INTO items (v) VALUES (?)", ("never",))
            .unwrap();
    }
    // And through the helper, failing half-way.
    let failed = pool.get().unwrap().transaction(|tx| {
        tx.execute("INSERT INTO items (v) VALUES (?)", ("half",))?;
        tx.execute("INSERT INTO no_such_table (v) VALUES (?)", ("x",))?;
        Ok(())
    });

    // Assert: the same (only) connection, reused, sees no rows.
    assert!(failed.is_err());
    let n: i64 = pool
        .get()
        .unwrap()
        .fetch_one("SELECT COUNT(*) FROM items", ())
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        budget.snapshot().sync_side.opened_total,
        1,
        "the connection was reused, not replaced"
    );
}

#[test]
fn a_dropped_async_transaction_rolls_back_before_the_connection_is_reused() {
    // Arrange
    init_tracing();
    let (server, db) = items_db("leak_async_tx");
    let rt = runtime();
    let budget = budget(1);
    rt.block_on(async {
        let pool = async_pool(&db.url, &budget);

        // Act 1: dropped transaction, same checkout continues.
        let mut conn = pool.acquire().await.unwrap();
        {
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO items (v) VALUES (?)", args!["dropped"])
                .await
                .unwrap();
        }
        let (n,): (i64,) = conn
            .fetch_one("SELECT COUNT(*) FROM items", args![])
            .await
            .unwrap();
        assert_eq!(n, 0, "rolled back before the next statement");

        // Act 2: dropped transaction and connection together (`?` in a handler).
        async fn handler(pool: &AsyncPool) -> Result<(), DbError> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            tx.execute("INSERT INTO items (v) VALUES (?)", args!["early"])
                .await?;
            tx.execute("INSERT INTO no_such_table (v) VALUES (?)", args!["x"])
                .await?;
            tx.commit().await
        }
        drop(conn);
        assert_eq!(handler(&pool).await.unwrap_err().code(), Some(1146));

        // Assert: no row, no open transaction on the server, the unit back and reused.
        let mut conn = pool.acquire().await.unwrap();
        let (n,): (i64,) = conn
            .fetch_one("SELECT COUNT(*) FROM items", args![])
            .await
            .unwrap();
        assert_eq!(n, 0);
        drop(conn);
        let open = server
            .sql("SELECT COUNT(*) FROM information_schema.innodb_trx")
            .unwrap();
        assert_eq!(open.trim(), "0", "a transaction stayed open");
        assert_eq!(budget.snapshot().async_side.opened_total, 1);
    });
}

#[test]
fn a_task_that_panics_holding_a_connection_does_not_leak_it() {
    init_tracing();
    let (_server, db) = items_db("leak_async_panic");
    let rt = runtime();
    let budget = budget(2);
    rt.block_on(async {
        let pool = async_pool(&db.url, &budget);
        let p = pool.clone();
        let joined = tokio::spawn(async move {
            let _conn = p.acquire().await.unwrap();
            panic!("handler bug");
        })
        .await;
        assert!(joined.is_err());
        assert!(eventually(Duration::from_secs(2), || settled(&budget)));
        assert_eq!(
            closed(&budget.snapshot().async_side, CloseReason::Cancelled),
            1
        );
        let (v,): (i64,) = pool
            .acquire()
            .await
            .unwrap()
            .fetch_one("SELECT 3", args![])
            .await
            .unwrap();
        assert_eq!(v, 3);
    });
}

#[test]
fn five_hundred_queries_cancelled_mid_result_leave_no_unit_stuck() {
    // Arrange: a result set of about 4 MB, so cancellation lands mid-stream.
    init_tracing();
    let (_server, db) = items_db("leak_cancel");
    db.admin(
        Server::shared(),
        "CREATE TABLE big (id INT PRIMARY KEY, payload VARCHAR(255) NOT NULL); \
         INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_20000",
    );
    let rt = runtime();
    let budget = budget(8);
    let (cancelled, completed) = rt.block_on(async {
        let pool = async_pool(&db.url, &budget);
        let mut cancelled = 0;
        let mut completed = 0;
        // Act: 10 waves of 50 concurrent queries, each cut off after 0.1–5 ms; on a
        // loaded machine, where every cut can land before any query reaches the server,
        // further waves with cuts twice as long each time (at most 10 more) until one
        // landed mid-result.
        for wave in 0..20u64 {
            let mid_result = closed(&budget.snapshot().async_side, CloseReason::Cancelled);
            if wave >= 10 && mid_result > 0 {
                break;
            }
            let scale = 1u64 << wave.saturating_sub(9).min(10);
            let tasks: Vec<_> = (0..50u64)
                .map(|i| {
                    let pool = pool.clone();
                    let cut = Duration::from_micros((100 + (wave * 50 + i) * 7919 % 4900) * scale);
                    tokio::spawn(async move {
                        let query = async {
                            let mut conn = pool.acquire().await?;
                            conn.fetch_all::<(i32, String)>("SELECT id, payload FROM big", args![])
                                .await
                        };
                        tokio::time::timeout(cut, query).await
                    })
                })
                .collect();
            for t in tasks {
                match t.await.unwrap() {
                    Err(_elapsed) => cancelled += 1,
                    Ok(rows) => {
                        assert_eq!(rows.unwrap().len(), 20_000);
                        completed += 1;
                    }
                }
            }
        }
        // Assert: the pool still serves, then every unit is back once it closes.
        let (n,): (i64,) = pool
            .acquire()
            .await
            .unwrap()
            .fetch_one("SELECT COUNT(*) FROM big", args![])
            .await
            .unwrap();
        assert_eq!(n, 20_000);
        let settled_in_time = tokio::task::block_in_place(|| {
            eventually(Duration::from_secs(10), || settled(&budget))
        });
        assert!(
            settled_in_time,
            "a cancelled connection holds its unit: {:?}",
            budget.snapshot()
        );
        pool.close().await;
        (cancelled, completed)
    });
    let s = budget.snapshot();
    println!(
        "I3 cancellation: {cancelled} cancelled, {completed} completed, closed as cancelled {}, opened {}",
        closed(&s.async_side, CloseReason::Cancelled),
        s.async_side.opened_total
    );
    assert!(
        cancelled >= 250,
        "most queries were cut off mid-result ({cancelled})"
    );
    assert!(closed(&s.async_side, CloseReason::Cancelled) >= 1);
    assert!(
        eventually(Duration::from_secs(5), || budget.in_use() == 0),
        "{:?}",
        budget.snapshot()
    );
}

#[test]
fn connections_killed_by_the_server_are_replaced_and_both_pools_serve() {
    // Arrange: four idle connections on each side.
    init_tracing();
    let (server, db) = items_db("leak_kill");
    let rt = runtime();
    let budget = budget(8);
    let _enter = rt.enter();
    let apool = async_pool(&db.url, &budget);
    let spool = sync_pool(&db.url, &budget);
    rt.block_on(async {
        let conns: Vec<_> = futures_util::future::join_all((0..4).map(|_| apool.acquire())).await;
        assert!(conns.iter().all(Result::is_ok));
    });
    let held: Vec<_> = (0..4).map(|_| spool.get().unwrap()).collect();
    drop(held);
    assert!(eventually(Duration::from_secs(2), || budget
        .snapshot()
        .async_side
        .idle
        == 4));

    // Act: an operator kills every application connection.
    let ids = server
        .sql(&format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{}' AND user = 'app'",
            db.name
        ))
        .unwrap();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 8, "{ids:?}");
    for id in &ids {
        server.sql(&format!("KILL CONNECTION {id}")).unwrap();
    }
    // Idle longer than the validation bypass window, so reuse pings first.
    std::thread::sleep(Duration::from_millis(600));

    // Assert: every later call succeeds on a fresh connection.
    rt.block_on(async {
        for i in 0..20i64 {
            let (v,): (i64,) = apool
                .acquire()
                .await
                .unwrap()
                .fetch_one("SELECT ?", args![i])
                .await
                .unwrap();
            assert_eq!(v, i);
        }
    });
    for i in 0..20i64 {
        let v: i64 = spool.get().unwrap().fetch_one("SELECT ?", (i,)).unwrap();
        assert_eq!(v, i);
    }
    let s = budget.snapshot();
    assert!(s.in_use <= 8);
    assert!(closed(&s.async_side, CloseReason::Broken) >= 1, "{s:?}");
    assert!(closed(&s.sync_side, CloseReason::Broken) >= 1, "{s:?}");
    assert!(
        eventually(Duration::from_secs(2), || settled(&budget)),
        "{:?}",
        budget.snapshot()
    );
    assert_eq!(s.side(Side::Async).active + s.side(Side::Sync).active, 0);
}
