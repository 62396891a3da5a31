//! I3 on the blocking side: session and transaction state set through the helpers is
//! reset (`COM_RESET_CONNECTION`) or the connection closed before the next holder gets
//! it. Each runs a statement, returns the connection, checks out again on a budget of 1
//! and asks the server what the next holder inherited.

use db_sync::SyncPool;
use integration_tests::reuse::*;
use integration_tests::{Server, budget, sync_pool};

#[test]
fn control_sync_clean_session_reads_clean() {
    let r = sync_after(
        "adv_s_ctl",
        &["SELECT 1"],
        "SELECT IF(@@autocommit, 'on', 'off')",
    );
    assert_clean("nothing", r, Some("on"));
    let r = sync_after(
        "adv_s_ctl2",
        &["SELECT 1"],
        "SELECT CAST(@@session.time_zone = @@global.time_zone AS CHAR)",
    );
    assert_clean("nothing", r, Some("1"));
    let r = sync_after(
        "adv_s_ctl3",
        &["SELECT 1"],
        "SELECT CAST(@@session.sql_mode = @@global.sql_mode AS CHAR)",
    );
    assert_clean("nothing", r, Some("1"));
    let r = sync_after(
        "adv_s_ctl4",
        &["SELECT 1"],
        "SELECT CAST(@@in_transaction AS CHAR)",
    );
    assert_clean("nothing", r, Some("0"));
}

#[test]
fn sync_helper_set_autocommit_is_not_pooled() {
    let r = sync_after(
        "adv_s_autocommit",
        &["SET autocommit = 0"],
        "SELECT IF(@@autocommit, 'on', 'off')",
    );
    assert_clean("sync SET autocommit = 0", r, Some("on"));
}

#[test]
fn sync_helper_user_variable_is_not_pooled() {
    let r = sync_after(
        "adv_s_var",
        &["SET @adv_s = 7"],
        "SELECT CAST(@adv_s AS CHAR)",
    );
    assert_clean("sync SET @var", r, None);
}

#[test]
fn sync_helper_get_lock_is_not_pooled() {
    let r = sync_after(
        "adv_s_lock",
        &["SELECT GET_LOCK('adv_s_lock', 0)"],
        "SELECT CAST(IS_USED_LOCK('adv_s_lock') AS CHAR)",
    );
    assert_clean("sync GET_LOCK", r, None);
}

#[test]
fn sync_helper_time_zone_is_not_pooled() {
    let r = sync_after(
        "adv_s_tz",
        &["SET SESSION time_zone = '+05:00'"],
        "SELECT CAST(@@session.time_zone = @@global.time_zone AS CHAR)",
    );
    assert_clean("sync SET time_zone", r, Some("1"));
}

#[test]
fn sync_helper_sql_mode_is_not_pooled() {
    let r = sync_after(
        "adv_s_mode",
        &["SET SESSION sql_mode = 'ANSI_QUOTES'"],
        "SELECT CAST(@@session.sql_mode = @@global.sql_mode AS CHAR)",
    );
    assert_clean("sync SET sql_mode", r, Some("1"));
}

#[test]
fn sync_helper_temporary_table_is_not_pooled() {
    let r = sync_after(
        "adv_s_tmp",
        &["CREATE TEMPORARY TABLE adv_tmp (id INT)"],
        "SELECT CAST(COUNT(*) AS CHAR) FROM adv_tmp",
    );
    match r.2 {
        Err(_) => {}
        Ok(v) => panic!(
            "the next holder sees the temporary table (connection {} then {}): count {v:?}",
            r.0, r.1
        ),
    }
}

#[test]
fn sync_helper_lock_tables_is_not_pooled() {
    let r = sync_after(
        "adv_s_locktables2",
        &["LOCK TABLES t READ"],
        "SELECT CAST(COUNT(*) AS CHAR) FROM mysql.db",
    );
    assert!(
        r.2.is_ok(),
        "the next holder is under LOCK TABLES (connection {} then {}): {:?}",
        r.0,
        r.1,
        r.2
    );
}

#[test]
fn sync_helper_commit_and_chain_leaves_no_open_transaction() {
    // `COMMIT AND CHAIN` starts a new transaction at once; the blocking side's own
    // `tx_control` reads it as the end of the transaction.
    let r = sync_after(
        "adv_s_chain",
        &["BEGIN", "COMMIT AND CHAIN"],
        "SELECT CAST(@@in_transaction AS CHAR)",
    );
    assert_clean("sync BEGIN; COMMIT AND CHAIN", r, Some("0"));
}

#[test]
fn sync_helper_commented_begin_leaves_no_open_transaction() {
    let r = sync_after(
        "adv_s_cbegin",
        &["/* tx */ START TRANSACTION"],
        "SELECT CAST(@@in_transaction AS CHAR)",
    );
    assert_clean("sync /* tx */ START TRANSACTION", r, Some("0"));
}

#[test]
fn sync_helper_autocommit_off_loses_the_next_holders_writes() {
    // The consequence of a pooled `autocommit = 0`: the next holder's INSERT is never
    // committed, so another session never sees it.
    let (server, db) = fresh("adv_s_lostwrite");
    let budget = budget(1);
    let pool = sync_pool(&db.url, &budget);
    {
        let mut conn = pool.get().unwrap();
        conn.execute("SET autocommit = 0", ()).unwrap();
    }
    {
        let mut conn = pool.get().unwrap();
        conn.execute("INSERT INTO t (v) VALUES (?)", (777,))
            .unwrap();
    }
    let seen = db.admin(server, "SELECT COUNT(*) FROM t WHERE v = 777");
    assert_eq!(
        seen.trim(),
        "1",
        "a write through the helper was not committed"
    );
}

#[test]
fn sync_helper_xa_start_is_not_pooled() {
    let (_server, db) = fresh("adv_s_xa");
    let budget = budget(1);
    let pool = sync_pool(&db.url, &budget);
    {
        let mut conn = pool.get().unwrap();
        conn.execute("XA START 'adv'", ()).unwrap();
    }
    let mut conn = pool.get().unwrap();
    let next = conn.transaction(|tx| tx.execute("INSERT INTO t (v) VALUES (?)", (1,)).map(drop));
    assert!(
        next.is_ok(),
        "the next holder inherited an XA transaction: {next:?}"
    );
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

// Forms the classifier must see through: quoted built-in names, `SET STATEMENT … FOR`
// around transaction control and `USE`, a comment before `LAST_INSERT_ID`'s parenthesis.

#[test]
fn sync_backquoted_get_lock_is_not_pooled() {
    let r = sync_after("adv2_s_bq_lock", &["DO `get_lock`('adv2', 0)"], LOCK_CHECK);
    assert_clean("sync DO `get_lock`('adv2', 0)", r, Some("0"));
}

#[test]
fn sync_set_statement_for_start_transaction_is_not_pooled_open() {
    let r = sync_after(
        "adv2_s_ss_tx",
        &["SET STATEMENT max_statement_time = 100 FOR START TRANSACTION"],
        TX_CHECK,
    );
    assert_clean("sync SET STATEMENT … FOR START TRANSACTION", r, Some("0"));
}

/// The blocking side decides reset-or-close by the first word only (`changes_database`),
/// and a reset keeps the current database. (`EXECUTE IMMEDIATE '…'` was tried too: not
/// preparable, 1295, so unreachable.)
#[test]
fn sync_set_statement_for_use_keeps_the_database() {
    let r = sync_after(
        "adv2_s_ss_use",
        &["SET STATEMENT max_statement_time = 100 FOR USE information_schema"],
        "SELECT CAST(DATABASE() NOT LIKE 'adv2_s_ss_use%' AS CHAR)",
    );
    assert_clean("sync SET STATEMENT … FOR USE", r, Some("0"));
}

#[test]
fn sync_last_insert_id_with_a_comment_before_the_parenthesis_is_not_inherited() {
    let r = sync_after(
        "adv2_s_lii_c",
        &["DO LAST_INSERT_ID -- x\n(4242)"],
        "SELECT CAST(LAST_INSERT_ID() AS CHAR)",
    );
    assert_clean("sync DO LAST_INSERT_ID -- x\\n(4242)", r, Some("0"));
}

// What COM_RESET_CONNECTION restores: the blocking side resets a "resettable" session
// and pools it. The next holder must see what a fresh connection sees.

const CHARSET: &str = "SELECT CONCAT_WS(',', @@character_set_client, \
     @@character_set_connection, @@character_set_results, @@collation_connection)";

fn sync_fresh_charset(prefix: &str) -> String {
    let (_server, db) = fresh(prefix);
    let budget = budget(1);
    let pool: SyncPool = sync_pool(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    let (v,): (String,) = conn.fetch_one(CHARSET, ()).unwrap();
    v
}

#[test]
fn sync_reset_restores_the_handshake_character_set() {
    let fresh_cs = sync_fresh_charset("adv2_s_cs0");
    // Any resettable change (a user variable) makes the return path reset the session.
    let r = sync_after("adv2_s_cs1", &["SET @x = 1"], CHARSET);
    assert_clean("sync SET @x = 1 then reset", r, Some(&fresh_cs));
}

#[test]
fn sync_set_names_is_undone_for_the_next_holder() {
    let fresh_cs = sync_fresh_charset("adv2_s_cs2");
    let r = sync_after("adv2_s_cs3", &["SET NAMES latin1"], CHARSET);
    assert_clean("sync SET NAMES latin1", r, Some(&fresh_cs));
}

#[test]
fn sync_reset_keeps_four_byte_text_round_tripping() {
    // The practical effect of the character set: after a reset the next holder stores
    // and reads an emoji exactly as a fresh connection does.
    let (_server, db) = fresh("adv2_s_emoji");
    db.admin(
        Server::shared(),
        "CREATE TABLE e (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET utf8mb4)",
    );
    let budget = budget(1);
    let pool: SyncPool = sync_pool(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    conn.execute("SET @x = 1", ()).unwrap();
    drop(conn);
    let mut conn = pool.get().unwrap();
    let put = conn.execute("INSERT INTO e (id, v) VALUES (1, ?)", ("a😀b",));
    let got = put.and_then(|_| conn.fetch_one::<(String,)>("SELECT v FROM e WHERE id = 1", ()));
    assert_eq!(
        got.map(|(v,)| v).map_err(|e| format!("{e:?}")),
        Ok("a😀b".to_string()),
        "after a session reset a 4-byte character no longer round-trips"
    );
}

// Raw access: `SyncConn` derefs to the driver's connection; whatever raw statements
// leave behind must not reach the next holder (ARCHITECTURE.md, I3).

#[test]
fn sync_raw_set_autocommit_is_not_pooled() {
    use r2d2_mysql::mysql::prelude::Queryable;
    let (_server, db) = fresh("adv2_s_raw");
    let budget = budget(1);
    let pool: SyncPool = sync_pool(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    let (id1,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    conn.query_drop("SET autocommit = 0").unwrap();
    drop(conn);
    let mut conn = pool.get().unwrap();
    let (id2,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let seen = conn
        .fetch_one::<(Option<String>,)>("SELECT IF(@@autocommit, 'on', 'off')", ())
        .map(|(v,)| v);
    assert_clean("sync raw SET autocommit = 0", (id1, id2, seen), Some("on"));
}

/// State the SQL text cannot show (a stored function taking a user lock): the holder
/// that calls one discards the connection, as the docs say.
#[test]
fn sync_stored_function_taking_a_user_lock_is_gone_once_the_holder_discards() {
    let (_server, db) = fresh_with("adv2_s_fn_lock", HIDDEN_STATE);
    let r = sync_after_on(&db, &["DO lock_it()"], OWN_LOCK_CHECK, Leave::Discard);
    assert_clean(
        "sync DO lock_it() (RETURN GET_LOCK(…)), discarded",
        r,
        Some("0"),
    );
}
