//! What one holder can do to its own connection, and what the next holder must never
//! inherit: a statement cut off at any await point, a result set read only in part, a
//! transaction whose end was dropped, session state set through the helpers, and an
//! error by which the server says the connection is gone. Each test calls the API the
//! way a handler does, then reuses the same handle (or the same pooled connection).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use db_async::{AsyncConn, AsyncPool, args};
use db_budget::{Budget, CloseReason, DbError, SideSnapshot};
use integration_tests::{Server, TestDb, async_pool, budget, eventually, runtime};

fn closed(s: &SideSnapshot, reason: CloseReason) -> u64 {
    s.closed_total
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

/// Polls `fut` until it has returned `Pending` `cuts` times, then drops it; between
/// polls it sleeps `pause`, so bytes arrive in between (a cut lands in a packet header,
/// a payload, or between rows, depending on where the stream is). `Some` if it finished
/// before the cut.
async fn cut_after<F: Future>(fut: F, cuts: u32, pause: Duration) -> Option<F::Output> {
    let mut fut = Box::pin(fut);
    let mut pendings = 0;
    loop {
        let polled = std::future::poll_fn(|cx: &mut Context<'_>| {
            Poll::Ready(Pin::as_mut(&mut fut).poll(cx))
        })
        .await;
        match polled {
            Poll::Ready(v) => return Some(v),
            Poll::Pending => {
                pendings += 1;
                if pendings >= cuts {
                    return None; // `fut` drops here, mid-statement
                }
                if pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// A table of `rows` rows of about 1 KiB each: a result that does not fit in the
/// socket buffers, so the server is still writing while the client reads.
fn wide_table(server: &Server, prefix: &str, rows: u32) -> TestDb {
    let db = TestDb::create(server, prefix);
    db.admin(
        server,
        &format!(
            "CREATE TABLE wide (id INT PRIMARY KEY, pad VARCHAR(1024) NOT NULL); \
             INSERT INTO wide SELECT seq, REPEAT('x', 1000) FROM seq_1_to_{rows}"
        ),
    );
    db
}

#[test]
fn a_statement_cut_off_at_any_await_point_makes_its_connection_refuse_the_next_one() {
    // Arrange
    let server = Server::shared();
    let db = wide_table(server, "cut_matrix", 3000);
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        let mut cut = 0;
        let mut finished = 0;
        // Act: cut the same kinds of statement at every poll count, with and without
        // time for bytes to arrive in between.
        for cuts in 1..=40u32 {
            for pause in [
                Duration::ZERO,
                Duration::from_micros(200),
                Duration::from_millis(2),
            ] {
                let mut conn = pool.acquire().await.unwrap();
                let outcome = match cuts % 3 {
                    0 => cut_after(
                        conn.fetch_all::<(i32, String)>(
                            "SELECT id, pad FROM wide ORDER BY id",
                            args![],
                        ),
                        cuts,
                        pause,
                    )
                    .await
                    .map(|r| r.map(|rows| rows.len() as i64)),
                    1 => cut_after(
                        conn.fetch_one::<(i64,)>(
                            "SELECT COUNT(*) FROM wide WHERE pad LIKE ?",
                            args!["x%"],
                        ),
                        cuts,
                        pause,
                    )
                    .await
                    .map(|r| r.map(|(n,)| n)),
                    _ => cut_after(
                        conn.fetch_dict_all("SELECT id, pad FROM wide WHERE id <= ?", args![500]),
                        cuts,
                        pause,
                    )
                    .await
                    .map(|r| r.map(|rows| rows.len() as i64)),
                };
                // The same handle, at once: a cut-off connection refuses; a finished one
                // answers right. Neither may hang.
                let next = tokio::time::timeout(
                    Duration::from_secs(3),
                    conn.fetch_one::<(i64,)>("SELECT 42", args![]),
                )
                .await
                .expect("the next statement on the same connection hung");
                match outcome {
                    None => {
                        cut += 1;
                        assert!(
                            matches!(next, Err(DbError::Interrupted)),
                            "cut after {cuts} polls ({pause:?}): the next statement ran: {next:?}"
                        );
                    }
                    Some(result) => {
                        finished += 1;
                        let n = result.unwrap();
                        assert!(n == 3000 || n == 500, "wrong first answer {n}");
                        assert_eq!(
                            next.unwrap(),
                            (42,),
                            "wrong answer after a finished statement"
                        );
                    }
                }
                drop(conn);
            }
        }

        // Assert: every cut connection was closed, not pooled; every unit came back.
        assert!(
            cut > 30,
            "the matrix cut only {cut} statements ({finished} finished)"
        );
        let settled = eventually(Duration::from_secs(5), || {
            let s = budget.snapshot();
            s.async_side.active == 0 && s.in_use == s.async_side.idle
        });
        let snap = budget.snapshot();
        assert!(settled, "{snap}");
        assert_eq!(
            closed(&snap.async_side, CloseReason::Cancelled),
            cut,
            "{snap}"
        );
    });
}

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

fn items(server: &Server, prefix: &str) -> TestDb {
    let db = TestDb::create(server, prefix);
    db.admin(
        server,
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)",
    );
    db
}

/// Rows of `items` as another connection sees them (committed rows only).
async fn committed_rows(pool: &AsyncPool) -> i64 {
    let mut other = pool.acquire().await.unwrap();
    let (n,): (i64,) = other
        .fetch_one("SELECT COUNT(*) FROM items", args![])
        .await
        .unwrap();
    n
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

/// Runs `f` on a current-thread runtime that is then left alive but never driven again
/// (as a finished `block_on` leaves it).
fn on_an_undriven_runtime(f: impl Future<Output = ()>) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(f);
    rt
}

#[test]
fn connections_returned_on_a_foreign_runtime_are_closed_by_the_pool_s_own() {
    let server = Server::shared();
    let db = items(server, "foreign_rt");
    let rt = runtime();
    let (budget, pool): (Budget, AsyncPool) = rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        (budget, pool)
    });

    // Act: on another runtime, a statement is cut off (its connection must be closed)
    // and that runtime is then never driven again.
    let foreign = on_an_undriven_runtime(async {
        let mut conn: AsyncConn = pool.acquire().await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            conn.fetch_one::<(i64,)>("SELECT SLEEP(5)", args![]),
        )
        .await;
        assert!(r.is_err(), "the statement was meant to be cut off");
    });

    // Assert: the pool's own runtime closes it and the unit comes back.
    let back = eventually(Duration::from_secs(3), || budget.in_use() == 0);
    assert!(
        back,
        "the close ran on the undriven runtime: {}",
        budget.snapshot()
    );
    drop(foreign);
}

#[test]
fn the_idle_gauge_never_goes_below_zero_while_connections_come_and_go() {
    let server = Server::shared();
    let db = items(server, "idle_gauge");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(4);
        let pool = async_pool(&db.url, &budget);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (budget, stop) = (budget.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut worst = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    worst = worst.max(budget.snapshot().async_side.idle);
                }
                worst
            })
        };
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..300 {
                    let mut c = pool.acquire().await.unwrap();
                    let _: (i64,) = c.fetch_one("SELECT 1", args![]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = sampler.join().unwrap();
        assert!(worst <= 4, "the idle gauge read {worst} for a budget of 4");
    });
}

#[test]
fn a_connection_returned_while_the_pool_closes_is_not_left_idle_in_it() {
    let server = Server::shared();
    let db = items(server, "close_race");
    let rt = runtime();
    rt.block_on(async {
        for _ in 0..100 {
            let budget = budget(1);
            let pool = async_pool(&db.url, &budget);
            let conn = pool.acquire().await.unwrap();
            let closer = {
                let pool = pool.clone();
                tokio::spawn(async move { pool.close().await })
            };
            drop(conn);
            closer.await.unwrap();
            let settled = eventually(Duration::from_secs(2), || budget.in_use() == 0);
            assert!(settled && pool.idle_count() == 0, "{}", budget.snapshot());
        }
    });
}

#[test]
fn session_state_set_through_the_blocking_helpers_is_reset_before_the_next_holder() {
    // Arrange: one unit, so the next holder gets the same connection if it was pooled.
    let server = Server::shared();
    let db = items(server, "sync_session");
    db.admin(server, "CREATE TABLE other (id INT)");
    let budget = budget(1);
    let pool = integration_tests::sync_pool(&db.url, &budget);
    let cases: [(&str, &str, i64); 6] = [
        (
            "SET autocommit = 0",
            "SELECT CAST(@@autocommit AS SIGNED)",
            1,
        ),
        (
            "SET @secret = 7",
            "SELECT CAST(COALESCE(@secret, -1) AS SIGNED)",
            -1,
        ),
        (
            "SELECT GET_LOCK('quest', 0)",
            "SELECT CAST(COALESCE(IS_USED_LOCK('quest'), -1) AS SIGNED)",
            -1,
        ),
        ("LOCK TABLES items WRITE", "SELECT COUNT(*) FROM other", 0),
        (
            "CREATE TEMPORARY TABLE other (id INT)",
            "SELECT COUNT(*) FROM other",
            0,
        ),
        (
            "SET SESSION sql_mode = 'ANSI_QUOTES'",
            "SELECT CAST(@@sql_mode LIKE '%ANSI_QUOTES%' AS SIGNED)",
            0,
        ),
    ];
    let first_id = pool.get().unwrap().connection_id();
    for (set, probe, expected) in cases {
        // Act
        let mut conn = pool.get().unwrap();
        conn.execute(set, ()).unwrap();
        if set.starts_with("CREATE TEMPORARY") {
            conn.execute("INSERT INTO other VALUES (1)", ()).unwrap();
        }
        drop(conn);

        // Assert: a clean session, on the same connection (reset, not reconnected).
        let mut conn = pool.get().unwrap();
        let got: i64 = conn
            .fetch_one(probe, ())
            .unwrap_or_else(|e| panic!("after `{set}`, `{probe}` failed: {e}"));
        assert_eq!(got, expected, "after `{set}`");
        assert_eq!(
            conn.connection_id(),
            first_id,
            "after `{set}`: reconnected instead of reset"
        );
    }

    // `USE` is not undone by a reset: that connection is closed.
    let mut conn = pool.get().unwrap();
    conn.execute(&format!("USE `{}`", "mysql"), ()).unwrap();
    drop(conn);
    let mut conn = pool.get().unwrap();
    let current: String = conn.fetch_one("SELECT DATABASE()", ()).unwrap();
    assert_eq!(current, db.name);
    assert_ne!(conn.connection_id(), first_id);
}
