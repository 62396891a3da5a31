//! An outside adversary against the async client backstop (the limit plus a margin, after
//! which the client gives up on a statement): a pool that outlived its runtime, overrides
//! that move the backstop, and a pool dropped while a statement waits. (Its other
//! findings, the rollback of an abandoned transaction on a frozen server and the server
//! sessions of statements the client gave up on, are open: see ARCHITECTURE.md,
//! "Server-side lag".)

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, DbError, StoppedBy};
use integration_tests::reuse::*;
use integration_tests::{Server, TestDb, budget, eventually, runtime};

const ONE_SECOND: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_millis(500);

/// A stored procedure of `steps` short statements (`DO SLEEP(0.1)` each): the server's
/// statement limit never stops a `CALL`, only the client's backstop does. It runs with
/// the caller's rights, so that the process list shows its session under the app's
/// account (a definer's routine shows the definer's name while it runs).
fn with_procedure(prefix: &str, steps: u32) -> (&'static Server, TestDb) {
    let (server, db) = fresh(prefix);
    db.admin(
        server,
        &format!(
            "\nDELIMITER //\nCREATE PROCEDURE slow() SQL SECURITY INVOKER BEGIN DECLARE i INT DEFAULT 0; \
             WHILE i < {steps} DO SET i = i + 1; DO SLEEP(0.1); END WHILE; END //\nDELIMITER ;\n"
        ),
    );
    (server, db)
}

/// A pool with a statement limit of `limit` and a backstop margin of [`MARGIN`].
fn limited(url: &DatabaseUrl, budget: &Budget, limit: Duration) -> AsyncPool {
    AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(20))
        .return_timeout(ONE_SECOND)
        .statement_timeout(limit)
        .statement_timeout_margin(MARGIN)
        .build()
}

fn assert_cut_off_by_the_client<T: std::fmt::Debug>(r: &Result<T, DbError>, limit: Duration) {
    assert!(
        matches!(
            r,
            Err(DbError::StatementTimeout { limit: l, stopped_by: StoppedBy::Client, .. })
                if *l == limit
        ),
        "expected the backstop to cut the statement off after {limit:?} + {MARGIN:?}, got {r:?}"
    );
}

#[test]
fn a_pool_that_outlived_the_runtime_it_was_built_on_still_cuts_off_a_statement_the_server_does_not_stop()
 {
    // Arrange: the pool is built on a runtime that then shuts down (its background tasks
    // go with it; `pool/release.rs` closes connections without it), and its callers run
    // on another runtime.
    let (_server, db) = with_procedure("adv6_outlived", 40);
    let budget = budget(1);
    let pool = {
        let first = runtime();
        first.block_on(async { limited(&db.url, &budget, ONE_SECOND) })
    };

    // Act: a 4 s procedure under a 1 s limit.
    let r = within(20, "a CALL past its backstop", move || {
        runtime().block_on(async move {
            let mut conn = pool.acquire().await.expect("a connection");
            conn.execute("CALL slow()", args![]).await
        })
    });

    // Assert
    assert_cut_off_by_the_client(&r, ONE_SECOND);
    assert!(
        eventually(Duration::from_secs(5), || budget.in_use() == 0),
        "the unit came back"
    );
}

#[test]
fn a_longer_override_moves_the_backstop_so_that_a_call_within_it_finishes() {
    // Arrange: a pool limit of 1 s (backstop 1.5 s) and a 3 s procedure.
    let (_server, db) = with_procedure("adv6_longer", 30);
    let budget = budget(1);
    let (longer, next) = runtime().block_on(async {
        let pool = limited(&db.url, &budget, ONE_SECOND);
        let mut conn = pool.acquire().await.expect("a connection");

        // Act: the override's backstop is 6 s + the margin; the next statement has the
        // pool's again.
        let longer = conn
            .with_statement_timeout(Duration::from_secs(6))
            .execute("CALL slow()", args![])
            .await;
        let next = conn.execute("CALL slow()", args![]).await;
        (longer, next)
    });

    // Assert
    assert!(longer.is_ok(), "cut off inside its override: {longer:?}");
    assert_cut_off_by_the_client(&next, ONE_SECOND);
}

#[test]
fn a_shorter_override_moves_the_backstop_so_that_a_call_past_it_is_cut_off() {
    // Arrange: a pool limit of 30 s and a 4 s procedure.
    let (_server, db) = with_procedure("adv6_shorter", 40);
    let budget = budget(1);
    let shorter = runtime().block_on(async {
        let pool = limited(&db.url, &budget, Duration::from_secs(30));
        let mut conn = pool.acquire().await.expect("a connection");

        // Act
        conn.with_statement_timeout(ONE_SECOND)
            .execute("CALL slow()", args![])
            .await
    });

    // Assert
    assert_cut_off_by_the_client(&shorter, ONE_SECOND);
}

#[test]
fn a_checkout_outliving_its_pool_is_still_cut_off_on_a_frozen_server() {
    // Arrange: every handle of the pool is dropped; one checkout remains.
    let (server, db) = fresh("adv6_orphan");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let b = budget(1);
    let units = b.clone();

    // Act
    let (r, back) = within(20, "a statement of an orphaned checkout", move || {
        runtime().block_on(async move {
            let pool = limited(&url, &b, ONE_SECOND);
            let mut conn = pool.acquire().await.expect("a connection");
            drop(pool);
            freeze(server);
            let r = conn.fetch_one::<(i64,)>("SELECT 1", args![]).await;
            drop(conn);
            (r, eventually(Duration::from_secs(5), || b.in_use() == 0))
        })
    });

    // Assert
    assert_cut_off_by_the_client(&r, ONE_SECOND);
    assert!(back, "the unit came back");
    assert_eq!(units.in_use(), 0);
}

#[test]
fn the_pools_background_tasks_end_once_the_pool_and_its_checkouts_are_gone() {
    // Arrange: a runtime of this test's own, with nothing else on it.
    let (_server, db) = fresh("adv6_tasks_end");
    let budget = budget(2);
    let rt = runtime();
    let (before, with_pool, after) = rt.block_on(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let pool = limited(&db.url, &budget, ONE_SECOND);
        let mut conn = pool.acquire().await.expect("a connection");
        conn.execute("DO 1", args![]).await.expect("runs");
        let with_pool = metrics.num_alive_tasks();

        // Act
        drop(pool);
        drop(conn);
        let gone = eventually(Duration::from_secs(5), || {
            metrics.num_alive_tasks() == before
        });
        (before, with_pool, gone)
    });

    // Assert: the reaper ran while the pool lived, and ended after.
    assert!(with_pool > before, "{before} tasks, then {with_pool}");
    assert!(after, "a background task outlived its pool");
    assert_eq!(budget.in_use(), 0);
}
