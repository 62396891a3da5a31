//! The forms a session-changing statement takes, through the async helpers.

use std::time::Duration;

use db_async::args;
use integration_tests::reuse::*;
use integration_tests::{async_pool, budget, eventually, runtime};

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

// Quoted built-in function names: MariaDB resolves `` `GET_LOCK`(…) `` to the native
// function, the lexer skips every back-quoted run as an identifier.

#[test]
fn async_backquoted_get_lock_is_not_pooled() {
    let r = async_after("adv2_a_bq_lock", "SELECT `GET_LOCK`('adv2', 0)", LOCK_CHECK);
    assert_clean("async SELECT `GET_LOCK`('adv2', 0)", r, Some("0"));
}

#[test]
fn async_backquoted_last_insert_id_is_not_inherited() {
    let r = async_after(
        "adv2_a_bq_lii",
        "SELECT `LAST_INSERT_ID`(4242)",
        "SELECT CAST(LAST_INSERT_ID() AS CHAR)",
    );
    assert_clean("async SELECT `LAST_INSERT_ID`(4242)", r, Some("0"));
}

// Sequences: NEXTVAL sets the session's LASTVAL, the same kind of state as
// LAST_INSERT_ID(expr), which the classifier does treat as session state.

#[test]
fn async_nextval_lastval_is_not_inherited() {
    let (_server, db) = fresh_with("adv2_a_lastval", HIDDEN_STATE);
    let r = async_after_on(
        &db,
        "SELECT NEXTVAL(s)",
        "SELECT CAST(LASTVAL(s) AS CHAR)",
        Leave::Drop,
    );
    assert_clean("async SELECT NEXTVAL(s)", r, None);
}

// Transaction control wrapped in `SET STATEMENT … FOR`.

#[test]
fn async_set_statement_for_start_transaction_is_not_pooled_open() {
    let r = async_after(
        "adv2_a_ss_tx",
        "SET STATEMENT max_statement_time = 100 FOR START TRANSACTION",
        TX_CHECK,
    );
    assert_clean("async SET STATEMENT … FOR START TRANSACTION", r, Some("0"));
}

// `LAST_INSERT_ID(expr)` is detected by looking for an argument right after the name:
// a comment between the name and its parenthesis hides it.

#[test]
fn async_last_insert_id_with_a_comment_before_the_parenthesis_is_not_inherited() {
    let r = async_after(
        "adv2_a_lii_c",
        "SELECT LAST_INSERT_ID/* x */(4242)",
        "SELECT CAST(LAST_INSERT_ID() AS CHAR)",
    );
    assert_clean("async SELECT LAST_INSERT_ID/* x */(4242)", r, Some("0"));
}
