//! I3 on the async side: statements that change session or transaction state, run
//! through the helpers, never reach the next holder (the pool closes the connection).
//! Each runs a statement, returns the connection, checks out again on a budget of 1 and
//! asks the server what the next holder inherited.

use std::time::Duration;

use db_async::args;
use db_budget::CloseReason;
use integration_tests::reuse::*;
use integration_tests::{Server, async_pool, budget, eventually, runtime};

#[test]
fn async_versioned_executable_comment_set_autocommit_is_not_pooled() {
    let r = async_after(
        "adv_a_ver",
        "/*!40101 SET autocommit = 0 */",
        "SELECT IF(@@autocommit, 'on', 'off')",
    );
    assert_clean("/*!40101 SET autocommit = 0 */", r, Some("on"));
}

#[test]
fn async_mariadb_executable_comment_set_autocommit_is_not_pooled() {
    let r = async_after(
        "adv_a_mcomment",
        "/*M!100100 SET autocommit = 0 */",
        "SELECT IF(@@autocommit, 'on', 'off')",
    );
    assert_clean("/*M!100100 SET autocommit = 0 */", r, Some("on"));
}

#[test]
fn async_set_statement_for_get_lock_is_not_pooled() {
    let r = async_after(
        "adv_a_setstmt",
        "SET STATEMENT max_statement_time = 100 FOR SELECT GET_LOCK('adv_setstmt', 0)",
        "SELECT CAST(IS_USED_LOCK('adv_setstmt') AS CHAR)",
    );
    assert_clean("SET STATEMENT … FOR SELECT GET_LOCK", r, None);
}

#[test]
fn async_set_statement_for_user_variable_is_not_pooled() {
    let r = async_after(
        "adv_a_setstmt_var",
        "SET STATEMENT max_statement_time = 100 FOR SELECT 7 INTO @adv_v",
        "SELECT CAST(@adv_v AS CHAR)",
    );
    assert_clean("SET STATEMENT … FOR SELECT … INTO @var", r, None);
}

#[test]
fn async_double_dash_without_space_is_not_a_comment() {
    // `--` not followed by a space is two minus signs to the server, not a comment:
    // `1--(@x := 5)` is 1 - (-(@x := 5)) and sets @x.
    let r = async_after(
        "adv_a_dashdash",
        "SELECT 1--(@adv_dash := 5)",
        "SELECT CAST(@adv_dash AS CHAR)",
    );
    assert_clean("SELECT 1--(@x := 5)", r, None);
}

#[test]
fn async_versioned_comment_start_transaction_is_not_pooled_open() {
    let r = async_after(
        "adv_a_vertx",
        "/*!40101 START TRANSACTION */",
        "SELECT CAST(@@in_transaction AS CHAR)",
    );
    assert_clean("/*!40101 START TRANSACTION */", r, Some("0"));
}

#[test]
fn async_mariadb_comment_temporary_table_is_not_pooled() {
    let r = async_after(
        "adv_a_tmp",
        "CREATE /*M!100000 TEMPORARY */ TABLE adv_tmp (id INT)",
        "SELECT CAST(COUNT(*) AS CHAR) FROM adv_tmp",
    );
    // Clean: the table does not exist for the next holder.
    match r.2 {
        Err(_) => {}
        Ok(v) => panic!(
            "the next holder sees the temporary table (connection {} then {}): count {v:?}",
            r.0, r.1
        ),
    }
}

#[test]
fn async_last_insert_id_argument_is_not_inherited() {
    let r = async_after(
        "adv_a_lii",
        "SELECT LAST_INSERT_ID(4242)",
        "SELECT CAST(LAST_INSERT_ID() AS CHAR)",
    );
    assert_clean("SELECT LAST_INSERT_ID(4242)", r, Some("0"));
}

#[test]
fn control_async_plain_set_autocommit_is_closed_on_return() {
    // Control (expected to pass): the classifier sees the plain form, so the checks
    // above read the state correctly.
    let r = async_after(
        "adv_a_ctl",
        "SET autocommit = 0",
        "SELECT IF(@@autocommit, 'on', 'off')",
    );
    assert_clean("SET autocommit = 0", r, Some("on"));
    let r = async_after(
        "adv_a_ctl2",
        "SELECT 1",
        "SELECT CAST(@@in_transaction AS CHAR)",
    );
    assert_clean("SELECT 1", r, Some("0"));
}

#[test]
fn async_versioned_comment_lock_tables_is_not_pooled() {
    // mysqldump's form: `/*!40000 … */`.
    let (server, db) = fresh("adv_a_verlock");
    db.admin(server, "CREATE TABLE t2 (id INT)");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        let r = conn
            .execute("/*!40000 LOCK TABLES t WRITE */", args![])
            .await;
        assert!(r.is_ok(), "{r:?}");
        drop(conn);
        eventually(Duration::from_secs(2), || pool.idle_count() == 1);
        let mut conn = pool.acquire().await.unwrap();
        let next = conn
            .fetch_one::<(i64,)>("SELECT COUNT(*) FROM t2", args![])
            .await;
        assert!(
            next.is_ok(),
            "the next holder is under LOCK TABLES: {next:?}"
        );
    });
}

#[test]
fn async_compound_statement_start_transaction_is_not_pooled_open() {
    let r = async_after(
        "adv_a_compound_tx",
        "BEGIN NOT ATOMIC START TRANSACTION; END",
        "SELECT CAST(@@in_transaction AS CHAR)",
    );
    assert_clean("BEGIN NOT ATOMIC START TRANSACTION; END", r, Some("0"));
}

#[test]
fn async_compound_statement_set_autocommit_is_not_pooled() {
    let r = async_after(
        "adv_a_compound",
        "IF 1 THEN SET autocommit = 0; END IF",
        "SELECT IF(@@autocommit, 'on', 'off')",
    );
    assert_clean("IF 1 THEN SET autocommit = 0; END IF", r, Some("on"));
}

#[test]
fn async_a_missed_start_transaction_loses_the_next_holders_write() {
    let (server, db) = fresh("adv_a_lostwrite");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        conn.execute("/*!40101 START TRANSACTION */", args![])
            .await
            .unwrap();
        drop(conn);
        eventually(Duration::from_secs(2), || pool.idle_count() == 1);
        let mut conn = pool.acquire().await.unwrap();
        // The next holder writes with a plain helper, outside any transaction of its own.
        conn.execute("INSERT INTO t (v) VALUES (?)", args![778])
            .await
            .unwrap();
        drop(conn);
        eventually(Duration::from_secs(2), || pool.idle_count() == 1);
        let seen = db.admin(server, "SELECT COUNT(*) FROM t WHERE v = 778");
        assert_eq!(
            seen.trim(),
            "1",
            "a write through the helper was not committed"
        );
    });
}

/// The classifier itself, without a server: every statement here changes the session
/// (or opens a transaction) on MariaDB, as the tests above show for most of them.
#[test]
fn the_classifier_misses_no_session_change() {
    use db_budget::sql::{TxControl, changes_session, tx_control};
    let mut missed = Vec::new();
    for sql in [
        "/*!40101 SET autocommit = 0 */",
        "/*!40000 LOCK TABLES t WRITE */",
        "/*M!100100 SET autocommit = 0 */",
        "SELECT /*M!100100 GET_LOCK('a', 0), */ 1",
        "CREATE /*M!100000 TEMPORARY */ TABLE x (id INT)",
        "SET STATEMENT max_statement_time = 1 FOR SELECT GET_LOCK('a', 0)",
        "SET STATEMENT max_statement_time = 1 FOR SELECT 1 INTO @x",
        "SELECT 1--(@x := 5)",
        "IF 1 THEN SET autocommit = 0; END IF",
        "BEGIN NOT ATOMIC SET autocommit = 0; END",
        "SELECT LAST_INSERT_ID(42)",
    ] {
        if !changes_session(sql) {
            missed.push(format!("changes_session({sql:?}) = false"));
        }
    }
    for sql in [
        "/*!40101 START TRANSACTION */",
        "/*M!100100 BEGIN */",
        "BEGIN NOT ATOMIC START TRANSACTION; END",
    ] {
        if tx_control(sql) != Some(TxControl::Begin) && !changes_session(sql) {
            missed.push(format!("{sql:?}: neither Begin nor a session change"));
        }
    }
    // Held (these are detected): listed so the report can say what was tried.
    for sql in [
        "(SELECT @x)",
        "select get_lock('a', 0)",
        "DO GET_LOCK('a', 0)",
        "WITH c AS (SELECT @x := 1 AS v) SELECT v FROM c",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "XA START 'x'",
        "-- c\nSET autocommit = 0",
        "# c\nLOCK TABLES t READ",
        "/* c */ set names latin1",
        "HANDLER t OPEN",
    ] {
        assert!(changes_session(sql), "{sql:?} held before; now missed");
    }
    assert!(missed.is_empty(), "{missed:#?}");
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
