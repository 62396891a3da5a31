//! I3: transaction state on both sides: `COMMIT RELEASE` ends the session (never pooled),
//! and `BEGIN` inside an open transaction is refused rather than committing it.

use std::time::Duration;

use db_async::args;
use integration_tests::reuse::*;
use integration_tests::{Server, async_pool, budget, eventually, runtime, sync_pool};

#[test]
fn async_commit_release_does_not_pool_a_dead_connection() {
    let (_server, db) = fresh("adv_a_release");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        conn.execute("BEGIN", args![]).await.unwrap();
        conn.execute("INSERT INTO t (v) VALUES (?)", args![9])
            .await
            .unwrap();
        let r = conn.execute("COMMIT RELEASE", args![]).await;
        assert!(r.is_ok(), "{r:?}");
        drop(conn);
        eventually(Duration::from_secs(2), || pool.idle_count() == 1);
        let mut conn = pool.acquire().await.unwrap();
        let next = conn.fetch_one::<(i64,)>("SELECT 1", args![]).await;
        assert!(
            matches!(next, Ok((1,))),
            "the next holder got the connection the server had closed: {next:?}"
        );
    });
}

#[test]
fn sync_commit_release_does_not_pool_a_dead_connection() {
    let (_server, db) = fresh("adv_s_release");
    let budget = budget(1);
    let pool = sync_pool(&db.url, &budget);
    {
        let mut conn = pool.get().unwrap();
        conn.execute("BEGIN", ()).unwrap();
        conn.execute("INSERT INTO t (v) VALUES (?)", (9,)).unwrap();
        let r = conn.execute("COMMIT RELEASE", ());
        assert!(r.is_ok(), "{r:?}");
    }
    let mut conn = pool.get().unwrap();
    let next = conn.fetch_one::<(i64,)>("SELECT 1", ());
    assert!(
        matches!(next, Ok((1,))),
        "the next holder got the connection the server had closed: {next:?}"
    );
}

#[test]
fn a_dropped_transaction_whose_helper_ran_begin_rolls_back_everything_it_wrote() {
    // `BEGIN` through a helper inside a `Transaction` commits the transaction so far
    // (implicit commit); dropping the `Transaction` then rolls back only the rest.
    let (server, db) = fresh("adv_a_nested");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        {
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO t (v) VALUES (?)", args![4100])
                .await
                .unwrap();
            let nested = tx.execute("BEGIN", args![]).await;
            let _ = nested; // accepted or refused: either way nothing may be committed
            tx.execute("INSERT INTO t (v) VALUES (?)", args![4101])
                .await
                .ok();
            // dropped: rolls back
        }
        drop(conn);
    });
    let n = db.admin(server, "SELECT COUNT(*) FROM t WHERE v IN (4100, 4101)");
    assert_eq!(n.trim(), "0", "a dropped transaction left committed rows");
}

#[test]
fn a_commit_or_rollback_future_dropped_before_its_first_poll_leaves_no_transaction_open() {
    let server = Server::shared();
    let db = items(server, "tx_dropped_end");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(3);
        let pool = async_pool(&db.url, &budget);
        for end in ["commit", "rollback"] {
            // Arrange: an insert inside a transaction.
            let mut conn = pool.acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO items (v) VALUES (1)", args![])
                .await
                .unwrap();

            // Act: the end's future is dropped unpolled (a select! that lost a race).
            match end {
                "commit" => drop(tx.commit()),
                _ => drop(tx.rollback()),
            }
            // The same handle goes on in autocommit mode.
            conn.execute("INSERT INTO items (v) VALUES (2)", args![])
                .await
                .unwrap();

            // Assert: the first insert was rolled back, the second is committed (visible
            // to another connection at once, not waiting in an open transaction).
            let (in_tx,): (i64,) = conn
                .fetch_one("SELECT CAST(@@in_transaction AS SIGNED)", args![])
                .await
                .unwrap();
            assert_eq!(
                in_tx, 0,
                "after a dropped {end}(), a transaction is still open"
            );
            let (ones, twos): (i64, i64) = {
                let mut other = pool.acquire().await.unwrap();
                other
                    .fetch_one(
                        "SELECT CAST(SUM(v = 1) AS SIGNED), CAST(SUM(v = 2) AS SIGNED) FROM items",
                        args![],
                    )
                    .await
                    .unwrap()
            };
            assert_eq!((ones, twos), (0, 1), "after a dropped {end}()");
            conn.execute("DELETE FROM items", args![]).await.unwrap();
        }
    });
}

#[test]
fn a_transaction_opened_through_a_helper_is_rolled_back_when_its_connection_returns() {
    let server = Server::shared();
    let db = items(server, "tx_helper");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        conn.execute("START TRANSACTION", args![]).await.unwrap();
        conn.execute("INSERT INTO items (v) VALUES (1)", args![])
            .await
            .unwrap();
        drop(conn);

        assert_eq!(committed_rows(&pool).await, 0);
        let mut conn = pool.acquire().await.unwrap();
        let (in_tx,): (i64,) = conn
            .fetch_one("SELECT CAST(@@in_transaction AS SIGNED)", args![])
            .await
            .unwrap();
        assert_eq!(in_tx, 0);
    });
}
