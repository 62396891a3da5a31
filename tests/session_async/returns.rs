//! The return path: a half-read result, state set through the helpers, raw access and
//! a connection the server killed never reach the next holder.

use std::time::Duration;

use db_async::args;
use db_budget::CloseReason;
use integration_tests::reuse::*;
use integration_tests::{Server, async_pool, budget, eventually, runtime};

#[test]
fn a_result_read_only_to_its_first_row_does_not_hold_its_table_while_the_connection_idles() {
    // Arrange: a result far larger than the socket buffers.
    let server = Server::shared();
    let db = wide_table(server, "half_read", 20_000);
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();

        // Act: the first row only, then the connection goes back to the pool.
        let first: Option<(i32, String)> = conn
            .fetch_optional("SELECT id, pad FROM wide ORDER BY id", args![])
            .await
            .unwrap();
        assert_eq!(first.map(|(id, _)| id), Some(1));
        let (one, _): (i32, String) = conn
            .fetch_one("SELECT id, pad FROM wide ORDER BY id", args![])
            .await
            .unwrap();
        assert_eq!(one, 1);
        drop(conn);
        assert!(eventually(Duration::from_secs(2), || pool.idle_count() == 1));

        // Assert: another session can alter the table while that connection sits idle.
        let altered = server.sql(&format!(
            "SET SESSION lock_wait_timeout = 3; ALTER TABLE `{}`.wide ADD COLUMN extra INT",
            db.name
        ));
        assert!(
            altered.is_ok(),
            "the idle connection still holds the table: {altered:?}"
        );
        let mut conn = pool.acquire().await.unwrap();
        let (n,): (i64,) = conn
            .fetch_one("SELECT COUNT(extra) FROM wide", args![])
            .await
            .unwrap();
        assert_eq!(n, 0);
    });
}

#[test]
fn session_state_set_through_the_helpers_never_reaches_the_next_holder() {
    // Arrange: one unit, so the next holder gets the same connection if it was pooled.
    let server = Server::shared();
    let db = items(server, "session_state");
    db.admin(server, "CREATE TABLE other (id INT)");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let cases: [(&str, &str, &str); 6] = [
            (
                "SET autocommit = 0",
                "SELECT CAST(@@autocommit AS SIGNED)",
                "1",
            ),
            (
                "SET @secret = 7",
                "SELECT CAST(COALESCE(@secret, -1) AS SIGNED)",
                "-1",
            ),
            (
                "SELECT @n := 5",
                "SELECT CAST(COALESCE(@n, -1) AS SIGNED)",
                "-1",
            ),
            (
                "SELECT GET_LOCK('quest', 0)",
                "SELECT CAST(COALESCE(IS_USED_LOCK('quest') = CONNECTION_ID(), 0) AS SIGNED)",
                "0",
            ),
            ("LOCK TABLES items WRITE", "SELECT COUNT(*) FROM other", "0"),
            (
                "CREATE TEMPORARY TABLE other (id INT)",
                "SELECT COUNT(*) FROM other",
                "0",
            ),
        ];
        for (set, probe, expected) in cases {
            // Act
            let mut conn = pool.acquire().await.unwrap();
            conn.execute(db_async::sqlx::AssertSqlSafe(set.to_owned()), args![])
                .await
                .unwrap();
            if set.starts_with("CREATE TEMPORARY") {
                conn.execute("INSERT INTO other VALUES (1)", args![])
                    .await
                    .unwrap();
            }
            drop(conn);

            // Assert: the next holder sees a clean session.
            let mut conn = pool.acquire().await.unwrap();
            let got: (i64,) = conn
                .fetch_one(db_async::sqlx::AssertSqlSafe(probe.to_owned()), args![])
                .await
                .unwrap_or_else(|e| panic!("after `{set}`, `{probe}` failed: {e}"));
            assert_eq!(got.0.to_string(), expected, "after `{set}`");
        }
        // Six connections closed for what was set, and two for the probes that read a
        // user variable (the classifier cannot tell a read from a write).
        let snap = budget.snapshot();
        assert_eq!(
            closed(&snap.async_side, CloseReason::SessionState),
            8,
            "{snap}"
        );
    });
}

#[test]
fn raw_access_rolls_back_an_abandoned_transaction_first_and_is_not_pooled() {
    let server = Server::shared();
    let db = items(server, "raw_access");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        {
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO items (v) VALUES (1)", args![])
                .await
                .unwrap();
            // dropped: abandoned
        }
        let raw = conn.raw().await.unwrap();
        let (n, in_tx): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), CAST(@@in_transaction AS SIGNED) FROM items")
                .fetch_one(raw)
                .await
                .unwrap();
        assert_eq!((n, in_tx), (0, 0));
        drop(conn);
        let snap_closed = eventually(Duration::from_secs(2), || {
            closed(&budget.snapshot().async_side, CloseReason::SessionState) == 1
        });
        assert!(snap_closed, "{}", budget.snapshot());
        assert_eq!(pool.idle_count(), 0);
    });
}

#[test]
fn a_connection_the_server_killed_mid_statement_is_closed_not_pooled() {
    let server = Server::shared();
    let db = items(server, "killed");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        let (id,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();

        // Act: the server kills the connection while its statement runs.
        let killer = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(300));
            Server::shared().sql(&format!("KILL CONNECTION {id}"))
        });
        let r = conn.fetch_one::<(i64,)>("SELECT SLEEP(10)", args![]).await;
        killer.await.unwrap().expect("KILL CONNECTION");

        // Assert: an error that says the database is unavailable (a 503), and the dead
        // connection is not what the next caller gets.
        let e = r.expect_err("the statement of a killed connection cannot succeed");
        assert!(e.is_unavailable(), "{e:?}");
        drop(conn);
        let mut next = pool.acquire().await.unwrap();
        let (one,): (i64,) = next.fetch_one("SELECT 1", args![]).await.unwrap();
        assert_eq!(one, 1);
        assert_ne!(
            next.fetch_one::<(u64,)>("SELECT CONNECTION_ID()", args![])
                .await
                .unwrap()
                .0,
            id
        );
    });
}
