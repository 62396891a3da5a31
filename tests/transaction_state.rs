//! I3: transaction state on both sides: `COMMIT RELEASE` ends the session (never pooled),
//! and `BEGIN` inside an open transaction is refused rather than committing it.

use db_async::args;
use integration_tests::reuse::*;
use integration_tests::{async_pool, budget, eventually, runtime, sync_pool};
use std::time::Duration;

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
