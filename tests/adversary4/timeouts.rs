//! Statement timeouts (T1, T2): an override must apply to one statement only, even when
//! that statement fails before it is sent; a timed-out statement inside a transaction
//! leaves the transaction and the connection; a `KILL QUERY` from another session
//! leaves the connection in step.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, DbError};
use db_sync::SyncPool;
use integration_tests::{Server, budget, runtime};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlTypeInfo};

use super::database;

const LIMIT: Duration = Duration::from_secs(1);

fn async_limited(url: &DatabaseUrl, budget: &Budget) -> AsyncPool {
    AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .statement_timeout(LIMIT)
        .build()
}

fn sync_limited(url: &DatabaseUrl, budget: &Budget) -> SyncPool {
    SyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .statement_timeout(LIMIT)
        .build()
}

fn is_timeout_under<T>(r: &Result<T, DbError>, limit: Duration) -> bool {
    matches!(r, Err(DbError::StatementTimeout { limit: l, .. }) if *l == limit)
}

/// A value whose encoding always fails (before any I/O), as a buggy or out-of-range
/// custom type's would.
struct Unencodable;

impl sqlx::Type<MySql> for Unencodable {
    fn type_info() -> MySqlTypeInfo {
        <i64 as sqlx::Type<MySql>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, MySql> for Unencodable {
    fn encode_by_ref(
        &self,
        _buf: &mut <MySql as sqlx::Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        Err("adversary: this value cannot be encoded".into())
    }
}

#[test]
fn an_async_override_given_to_a_statement_whose_arguments_fail_to_encode_does_not_carry_over() {
    let (_server, db) = database("adv4_enc");
    runtime().block_on(async {
        // Arrange: the pool's limit is 1 s; the caller asks for no limit for one
        // statement, whose argument cannot be encoded.
        let budget = budget(2);
        let pool = async_limited(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        let failed = conn
            .with_statement_timeout(Duration::ZERO)
            .fetch_one::<(i64,)>("SELECT ?", args![Unencodable])
            .await;
        assert!(failed.is_err(), "{failed:?}");

        // Act: the next statement, without an override, sleeps past the pool's limit.
        let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(3)", args![]).await;

        // Assert: the override was for the failed statement only.
        assert!(
            is_timeout_under(&slept, LIMIT),
            "the next statement ran under the failed statement's override: {slept:?}"
        );
    });
}

#[test]
fn a_blocking_override_given_to_a_refused_begin_does_not_carry_over() {
    let (_server, db) = database("adv4_begin");
    let rt = runtime();
    let _enter = rt.enter();
    // Arrange: a transaction is open; the caller asks for no limit for one statement, a
    // second BEGIN, which the guard refuses before sending it.
    let budget = budget(2);
    let pool = sync_limited(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    conn.execute("BEGIN", ()).unwrap();
    let refused = conn
        .with_statement_timeout(Duration::ZERO)
        .execute("BEGIN", ());
    assert!(refused.is_err(), "{refused:?}");

    // Act
    let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(3)", ());

    // Assert
    assert!(
        is_timeout_under(&slept, LIMIT),
        "the next statement ran under the refused BEGIN's override: {slept:?}"
    );
}

#[test]
fn an_async_override_given_to_a_refused_begin_does_not_carry_over() {
    let (_server, db) = database("adv4_abegin");
    runtime().block_on(async {
        // Arrange: as above, on the async side.
        let budget = budget(2);
        let pool = async_limited(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        conn.execute("BEGIN", args![]).await.unwrap();
        let refused = conn
            .with_statement_timeout(Duration::ZERO)
            .execute("BEGIN", args![])
            .await;
        assert!(refused.is_err(), "{refused:?}");

        // Act
        let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(3)", args![]).await;

        // Assert
        assert!(is_timeout_under(&slept, LIMIT), "{slept:?}");
    });
}

fn table(server: &Server, db: &super::TestDb) {
    db.admin(server, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
}

#[test]
fn a_timed_out_statement_inside_a_transaction_leaves_the_transaction_and_the_connection() {
    let (server, db) = database("adv4_tx");
    table(server, &db);
    let rt = runtime();
    // Async side: rows 1 and 2 around a timed-out statement, then commit.
    let (async_ids, async_rows) = rt.block_on(async {
        let budget = budget(2);
        let pool = async_limited(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        let (before,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let mut tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", args![])
            .await
            .unwrap();
        let slept = tx.fetch_one::<(i64,)>("SELECT SLEEP(3)", args![]).await;
        assert!(is_timeout_under(&slept, LIMIT), "{slept:?}");
        tx.execute("INSERT INTO t VALUES (2)", args![])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (after,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let (rows,): (i64,) = conn
            .fetch_one("SELECT COUNT(*) FROM t", args![])
            .await
            .unwrap();
        ((before, after), rows)
    });
    // Blocking side: rows 3 and 4 likewise.
    let _enter = rt.enter();
    let budget = budget(2);
    let pool = sync_limited(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    let (before,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    conn.execute("BEGIN", ()).unwrap();
    conn.execute("INSERT INTO t VALUES (3)", ()).unwrap();
    let slept = conn.fetch_one::<(i64,)>("SELECT SLEEP(3)", ());
    assert!(is_timeout_under(&slept, LIMIT), "{slept:?}");
    conn.execute("INSERT INTO t VALUES (4)", ()).unwrap();
    conn.execute("COMMIT", ()).unwrap();
    let (after,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let (rows,): (i64,) = conn.fetch_one("SELECT COUNT(*) FROM t", ()).unwrap();

    assert_eq!(async_ids.0, async_ids.1, "async: the same connection");
    assert_eq!(async_rows, 2, "async: both rows committed");
    assert_eq!(before, after, "blocking: the same connection");
    assert_eq!(rows, 4, "blocking: both rows committed");
}

#[test]
fn a_query_killed_from_another_session_leaves_both_sides_connections_in_step() {
    let (server, db) = database("adv4_kill");
    let rt = runtime();
    // Async: a statement killed mid-way, then the same connection's next answers.
    let (async_next, async_again) = rt.block_on(async {
        let budget = budget(1);
        let pool = async_limited(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        let (id,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let killer = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(300));
            server.sql(&format!("KILL QUERY {id}")).unwrap();
        });
        let killed = conn
            .with_statement_timeout(Duration::from_secs(10))
            .fetch_one::<(i64,)>("SELECT SLEEP(5)", args![])
            .await;
        killer.await.unwrap();
        println!("async killed statement: {killed:?}");
        let next = conn.fetch_one::<(i64,)>("SELECT 42", args![]).await;
        drop(conn);
        let mut again = pool.acquire().await.unwrap();
        let again = again.fetch_one::<(i64,)>("SELECT 43", args![]).await;
        (next.map(|r| r.0).ok(), again.map(|r| r.0).ok())
    });
    // Blocking: likewise.
    let _enter = rt.enter();
    let budget = budget(1);
    let pool = sync_limited(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    let (id,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        server.sql(&format!("KILL QUERY {id}")).unwrap();
    });
    let killed = conn
        .with_statement_timeout(Duration::from_secs(10))
        .fetch_one::<(i64,)>("SELECT SLEEP(5)", ());
    killer.join().unwrap();
    println!("blocking killed statement: {killed:?}");
    let next = conn.fetch_one::<(i64,)>("SELECT 42", ()).map(|r| r.0).ok();
    drop(conn);
    let again = pool
        .get()
        .unwrap()
        .fetch_one::<(i64,)>("SELECT 43", ())
        .map(|r| r.0)
        .ok();

    assert_eq!((async_next, async_again), (Some(42), Some(43)), "async");
    assert_eq!((next, again), (Some(42), Some(43)), "blocking");
}
