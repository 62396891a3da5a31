//! Statement timeouts (`DB_STATEMENT_TIMEOUT`) on both sides, against the real server:
//! the server stops a statement past its limit, the caller gets a typed error naming
//! the limit and its call site, and the connection stays pooled and in step (same
//! `CONNECTION_ID()`, no unit lost); a per-call override is longer or shorter, for one
//! statement, on the binary protocol (`SET STATEMENT … FOR`, prepared with its
//! placeholders); `0` is off; a server that does not answer at all is given up on
//! after the limit plus the margin, and that connection is closed.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, DbError, StoppedBy};
use db_sync::SyncPool;
use integration_tests::reuse::*;
use integration_tests::{Server, TestDb, budget, eventually, runtime};

const ONE_SECOND: Duration = Duration::from_secs(1);

fn async_pool_limited(url: &DatabaseUrl, budget: &Budget, limit: Duration) -> AsyncPool {
    AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .statement_timeout(limit)
        .build()
}

fn sync_pool_limited(url: &DatabaseUrl, budget: &Budget, limit: Duration) -> SyncPool {
    SyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .statement_timeout(limit)
        .build()
}

fn database(prefix: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    (server, TestDb::create(server, prefix))
}

/// The error is a statement timeout under `limit`, stopped by `by`, whose call site is
/// in this file.
fn assert_timed_out<T: std::fmt::Debug>(r: Result<T, DbError>, limit: Duration, by: StoppedBy) {
    match r {
        Err(DbError::StatementTimeout {
            limit: l,
            site,
            stopped_by,
            ..
        }) => {
            assert_eq!((l, stopped_by), (limit, by));
            assert!(
                site.file().ends_with("statement_timeout.rs"),
                "the call site is the caller's: {site}"
            );
        }
        other => panic!("expected a statement timeout ({by:?}), got {other:?}"),
    }
}

#[test]
fn async_sleep_past_the_limit_is_stopped_by_the_server_and_the_connection_serves_on() {
    let (_server, db) = database("st_async_sleep");
    runtime().block_on(async {
        // Arrange
        let budget = budget(2);
        let pool = async_pool_limited(&db.url, &budget, ONE_SECOND);
        let mut conn = pool.acquire().await.unwrap();
        let (id,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let in_use = budget.in_use();

        // Act
        let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(5)", args![]).await;

        // Assert
        assert_timed_out(slept, ONE_SECOND, StoppedBy::Server);
        let (same,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .expect("the same connection serves the next statement");
        assert_eq!(same, id);
        drop(conn);
        assert!(eventually(Duration::from_secs(2), || pool.idle_count() == 1));
        let mut again = pool.acquire().await.unwrap();
        let (pooled,): (u64,) = again
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        assert_eq!(pooled, id, "the connection was pooled, not closed");
        assert_eq!(budget.in_use(), in_use, "no unit lost or added");
    });
}

#[test]
fn blocking_sleep_past_the_limit_is_stopped_by_the_server_and_the_connection_serves_on() {
    // Arrange
    let (_server, db) = database("st_sync_sleep");
    let budget = budget(2);
    let pool = sync_pool_limited(&db.url, &budget, ONE_SECOND);
    let mut conn = pool.get().unwrap();
    let (id,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let in_use = budget.in_use();

    // Act
    let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(5)", ());

    // Assert
    assert_timed_out(slept, ONE_SECOND, StoppedBy::Server);
    let (same,): (u64,) = conn
        .fetch_one("SELECT CONNECTION_ID()", ())
        .expect("the same connection serves the next statement");
    assert_eq!(same, id);
    drop(conn);
    let mut again = pool.get().unwrap();
    let (pooled,): (u64,) = again.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    assert_eq!(pooled, id, "the connection was pooled, not closed");
    assert_eq!(budget.in_use(), in_use, "no unit lost or added");
}

#[test]
fn async_longer_override_lets_one_statement_finish_and_the_next_has_the_pool_limit() {
    let (_server, db) = database("st_async_longer");
    runtime().block_on(async {
        // Arrange
        let budget = budget(1);
        let pool = async_pool_limited(&db.url, &budget, ONE_SECOND);
        let mut conn = pool.acquire().await.unwrap();

        // Act
        let longer = conn
            .with_statement_timeout(Duration::from_secs(4))
            .fetch_one::<(i64,)>("SELECT SLEEP(?)", args![2])
            .await;
        let next = conn.fetch_one::<(i64,)>("SELECT SLEEP(?)", args![2]).await;

        // Assert
        assert_eq!(longer.expect("the override let it finish"), (0,));
        assert_timed_out(next, ONE_SECOND, StoppedBy::Server);
    });
}

#[test]
fn async_shorter_override_stops_a_prepared_statement_with_placeholders() {
    let (_server, db) = database("st_async_shorter");
    runtime().block_on(async {
        // Arrange
        let budget = budget(1);
        let pool = async_pool_limited(&db.url, &budget, Duration::from_secs(30));
        let mut conn = pool.acquire().await.unwrap();

        // Act
        let seen: (f64,) = conn
            .with_statement_timeout(Duration::from_millis(1500))
            .fetch_one("SELECT @@max_statement_time + ?", args![0])
            .await
            .unwrap();
        let shorter = conn
            .with_statement_timeout(ONE_SECOND)
            .fetch_one::<(i64,)>("SELECT SLEEP(?)", args![5])
            .await;
        let (session,): (f64,) = conn
            .fetch_one("SELECT @@max_statement_time", args![])
            .await
            .unwrap();

        // Assert
        assert_eq!(seen, (1.5,), "the statement ran under the override");
        assert_timed_out(shorter, ONE_SECOND, StoppedBy::Server);
        assert_eq!(session, 30.0, "the session keeps the pool's limit");
    });
}

#[test]
fn blocking_overrides_longer_and_shorter_each_apply_to_one_statement() {
    // Arrange
    let (_server, db) = database("st_sync_override");
    let budget = budget(1);
    let pool = sync_pool_limited(&db.url, &budget, ONE_SECOND);
    let mut conn = pool.get().unwrap();

    // Act
    let longer = conn
        .with_statement_timeout(Duration::from_secs(4))
        .fetch_one::<(i64,)>("SELECT SLEEP(?)", (2,));
    let next = conn.fetch_one::<(i64,)>("SELECT SLEEP(?)", (2,));
    let shorter = conn
        .with_statement_timeout(Duration::from_millis(500))
        .fetch_one::<(i64,)>("SELECT SLEEP(?)", (2,));
    let (session,): (f64,) = conn.fetch_one("SELECT @@max_statement_time", ()).unwrap();

    // Assert
    assert_eq!(longer.expect("the override let it finish"), (0,));
    assert_timed_out(next, ONE_SECOND, StoppedBy::Server);
    assert_timed_out(shorter, Duration::from_millis(500), StoppedBy::Server);
    assert_eq!(session, 1.0, "the session keeps the pool's limit");
}

#[test]
fn a_zero_limit_leaves_the_session_without_one_on_both_sides() {
    let (_server, db) = database("st_off");
    let budget = budget(2);
    let (async_limit, async_slept) = runtime().block_on(async {
        // Arrange
        let pool = async_pool_limited(&db.url, &budget, Duration::ZERO);
        let mut conn = pool.acquire().await.unwrap();
        // Act
        let (limit,): (f64,) = conn
            .fetch_one("SELECT @@max_statement_time", args![])
            .await
            .unwrap();
        let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(1.5)", args![]).await;
        (limit, slept)
    });
    let pool = sync_pool_limited(&db.url, &budget, Duration::ZERO);
    let mut conn = pool.get().unwrap();
    let (sync_limit,): (f64,) = conn.fetch_one("SELECT @@max_statement_time", ()).unwrap();
    let sync_slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(1.5)", ());

    // Assert
    assert_eq!((async_limit, sync_limit), (0.0, 0.0));
    assert_eq!(async_slept.unwrap(), (0,));
    assert_eq!(sync_slept.unwrap(), (0,));
}

#[test]
fn a_zero_override_runs_one_statement_without_a_limit() {
    let (_server, db) = database("st_zero_override");
    let budget = budget(1);
    let async_slept = runtime().block_on(async {
        let pool = async_pool_limited(&db.url, &budget, ONE_SECOND);
        let mut conn = pool.acquire().await.unwrap();
        conn.with_statement_timeout(Duration::ZERO)
            .fetch_one::<(i64,)>("SELECT SLEEP(1.5)", args![])
            .await
    });
    let pool = sync_pool_limited(&db.url, &budget, ONE_SECOND);
    let mut conn = pool.get().unwrap();
    let sync_slept = conn
        .with_statement_timeout(Duration::ZERO)
        .fetch_one::<(i64,)>("SELECT SLEEP(1.5)", ());
    assert_eq!(async_slept.unwrap(), (0,));
    assert_eq!(sync_slept.unwrap(), (0,));
}

#[test]
fn a_blocking_session_reset_keeps_the_statement_limit() {
    // Arrange: a user variable makes the return reset the session, which clears
    // every session variable.
    let (_server, db) = database("st_sync_reset");
    let budget = budget(1);
    let pool = sync_pool_limited(&db.url, &budget, Duration::from_secs(3));
    let mut conn = pool.get().unwrap();
    let (id,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    conn.execute("SET @st_reset = 1", ()).unwrap();

    // Act
    drop(conn);
    let mut conn = pool.get().unwrap();
    let (again, var, limit): (u64, Option<i64>, f64) = conn
        .fetch_one(
            "SELECT CONNECTION_ID(), @st_reset, @@max_statement_time",
            (),
        )
        .unwrap();

    // Assert
    assert_eq!((again, var), (id, None), "reset, not reconnected");
    assert_eq!(limit, 3.0, "the reset session has the pool's limit again");
}

#[test]
fn async_statement_on_a_frozen_server_is_given_up_after_the_limit_and_its_connection_closed() {
    // Arrange
    let (server, db) = database("st_async_frozen");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let budget = budget(1);
    let b = budget.clone();
    let (first, next) = within(15, "async statement on a frozen server", move || {
        runtime().block_on(async move {
            let pool = AsyncPool::builder(url, b.clone())
                .statement_timeout(ONE_SECOND)
                .statement_timeout_margin(Duration::from_millis(500))
                .return_timeout(ONE_SECOND)
                .build();
            let mut conn = pool.acquire().await.unwrap();
            freeze(server);

            // Act
            let first = conn.fetch_one::<(i64,)>("SELECT 1", args![]).await;
            let next = conn.fetch_one::<(i64,)>("SELECT 1", args![]).await;
            drop(conn);
            assert!(
                eventually(Duration::from_secs(5), || b.in_use() == 0),
                "the unit came back"
            );
            (first, next)
        })
    });

    // Assert
    assert_timed_out(first, ONE_SECOND, StoppedBy::Client);
    assert!(matches!(next, Err(DbError::Interrupted)), "{next:?}");
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn blocking_statement_on_a_frozen_server_is_given_up_after_the_limit_and_its_connection_closed() {
    // Arrange
    let (server, db) = database("st_sync_frozen");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let budget = budget(1);
    let b = budget.clone();
    let (first, open) = within(15, "blocking statement on a frozen server", move || {
        let pool = SyncPool::builder(url, b.clone())
            .statement_timeout(ONE_SECOND)
            .statement_timeout_margin(Duration::from_millis(500))
            .connect_timeout(ONE_SECOND)
            .build();
        let mut conn = pool.get().unwrap();
        freeze(server);

        // Act
        let first = conn.fetch_one::<(i64,)>("SELECT 1", ());
        drop(conn);
        (first, pool.state().connections)
    });

    // Assert
    assert_timed_out(first, ONE_SECOND, StoppedBy::Client);
    assert_eq!(open, 0, "the connection was closed, not pooled");
    // The unit lingers for the session the frozen server still holds, at most
    // `TEARDOWN` (nothing else can reach the server to end it).
    assert!(
        eventually(Duration::from_secs(5), || budget.in_use() == 0),
        "its unit came back: {}",
        budget.snapshot()
    );
}

#[test]
fn a_stored_procedure_is_not_stopped_by_the_server_only_by_the_backstop() {
    // Arrange: a procedure of many short statements, each under the limit.
    let (server, db) = database("st_proc");
    db.admin(
        server,
        "\nDELIMITER //\nCREATE PROCEDURE slow() BEGIN DECLARE i INT DEFAULT 0; \
         WHILE i < 40 DO SET i = i + 1; DO SLEEP(0.1); END WHILE; END //\nDELIMITER ;\n",
    );
    let budget = budget(1);
    let r = runtime().block_on(async {
        let pool = AsyncPool::builder(db.url.clone(), budget.clone())
            .statement_timeout(ONE_SECOND)
            .statement_timeout_margin(Duration::from_millis(500))
            .build();
        let mut conn = pool.acquire().await.unwrap();

        // Act
        conn.execute("CALL slow()", args![]).await
    });

    // Assert: the documented limit (MIGRATION.md): the client gave up on it.
    assert_timed_out(r, ONE_SECOND, StoppedBy::Client);
}

#[test]
fn the_variable_sets_the_session_limit_of_both_pools_built_from_the_environment() {
    // Arrange
    let (server, db) = database("st_config");
    let url = server.app_url(&db.name);
    let lookup = |name: &str| match name {
        "DATABASE_URL" => Some(url.clone()),
        "DB_STATEMENT_TIMEOUT" => Some("1500ms".to_owned()),
        _ => None,
    };
    let config = db_budget::Config::from_lookup(lookup).unwrap();
    let budget = budget(2);

    // Act
    let async_limit = runtime().block_on(async {
        let pool = AsyncPool::from_config(&config, budget.clone()).unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let (limit,): (f64,) = conn
            .fetch_one("SELECT @@max_statement_time", args![])
            .await
            .unwrap();
        limit
    });
    let pool = SyncPool::from_config(&config, budget.clone()).unwrap();
    let (sync_limit,): (f64,) = pool.fetch_one("SELECT @@max_statement_time", ()).unwrap();

    // Assert
    assert_eq!((async_limit, sync_limit), (1.5, 1.5));
}
