//! Second adversarial round (I3): session state the classifier misses in forms the
//! first round did not try (quoted built-in function names, `SET STATEMENT … FOR`
//! transaction control), and state a `COM_RESET_CONNECTION` does not restore to what a
//! fresh connection had (the handshake's character set).
//!
//! Same method as `session_async.rs`: run a statement through a helper, return the
//! connection (budget of 1), check out again and ask the server what the next holder
//! inherited.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::DbError;
use db_sync::SyncPool;
use integration_tests::{Server, TestDb, async_pool, budget, eventually, runtime, sync_pool};

fn fresh(prefix: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    let db = TestDb::create(server, prefix);
    db.admin(
        server,
        "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT) ENGINE=InnoDB; \
         INSERT INTO t (v) VALUES (1), (2), (3); CREATE SEQUENCE s; \
         CREATE FUNCTION lock_it() RETURNS INT NOT DETERMINISTIC RETURN GET_LOCK('adv2', 0); \
         CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW SET @last_v = NEW.v",
    );
    (server, db)
}

type Seen = (u64, u64, Result<Option<String>, DbError>);

fn async_after(prefix: &str, setup: &'static str, check: &'static str) -> Seen {
    async_after_leaving(prefix, setup, check, Leave::Drop)
}

/// How the first holder gives the connection back.
#[derive(Clone, Copy, PartialEq)]
enum Leave {
    Drop,
    /// `discard()`: what the docs ask for after state the SQL text cannot show.
    Discard,
}

fn async_after_leaving(
    prefix: &str,
    setup: &'static str,
    check: &'static str,
    leave: Leave,
) -> Seen {
    let (_server, db) = fresh(prefix);
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool: AsyncPool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.unwrap();
        let (id1,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let done = conn.execute(sqlx::AssertSqlSafe(setup), args![]).await;
        assert!(
            done.is_ok(),
            "the set-up statement {setup:?} failed: {done:?}"
        );
        match leave {
            Leave::Drop => {
                drop(conn);
                eventually(Duration::from_secs(2), || pool.idle_count() == 1);
            }
            Leave::Discard => conn.discard(),
        }
        let mut conn = pool.acquire().await.unwrap();
        let (id2,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        let seen = conn
            .fetch_one::<(Option<String>,)>(sqlx::AssertSqlSafe(check), args![])
            .await
            .map(|(v,)| v);
        (id1, id2, seen)
    })
}

fn sync_after(prefix: &str, setup: &[&str], check: &str) -> Seen {
    sync_after_leaving(prefix, setup, check, Leave::Drop)
}

fn sync_after_leaving(prefix: &str, setup: &[&str], check: &str, leave: Leave) -> Seen {
    let (_server, db) = fresh(prefix);
    let budget = budget(1);
    let pool: SyncPool = sync_pool(&db.url, &budget);
    let mut conn = pool.get().unwrap();
    let (id1,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    for sql in setup {
        let done = conn.execute(sql, ());
        assert!(
            done.is_ok(),
            "the set-up statement {sql:?} failed: {done:?}"
        );
    }
    match leave {
        Leave::Drop => drop(conn),
        Leave::Discard => conn.discard(),
    }
    let mut conn = pool.get().unwrap();
    let (id2,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let seen = conn.fetch_one::<(Option<String>,)>(check, ()).map(|(v,)| v);
    (id1, id2, seen)
}

fn assert_clean(what: &str, (id1, id2, seen): Seen, clean: Option<&str>) {
    let seen = seen.unwrap_or_else(|e| panic!("{what}: the check failed: {e:?}"));
    assert_eq!(
        seen.as_deref(),
        clean,
        "{what}: the next holder inherited session state (connection {id1} then {id2})"
    );
}

// ---------------------------------------------------------------------------------
// Quoted built-in function names: MariaDB resolves `` `GET_LOCK`(…) `` to the native
// function, the lexer skips every back-quoted run as an identifier.
// ---------------------------------------------------------------------------------

const LOCK_CHECK: &str = "SELECT CAST(IS_USED_LOCK('adv2') IS NOT NULL AS CHAR)";

/// Whether this session holds the lock (a closed session's lock may linger for a moment
/// on the server, but it is no longer anybody's to inherit).
const OWN_LOCK_CHECK: &str =
    "SELECT CAST(COALESCE(IS_USED_LOCK('adv2') = CONNECTION_ID(), 0) AS CHAR)";

#[test]
fn async_backquoted_get_lock_is_not_pooled() {
    let r = async_after("adv2_a_bq_lock", "SELECT `GET_LOCK`('adv2', 0)", LOCK_CHECK);
    assert_clean("async SELECT `GET_LOCK`('adv2', 0)", r, Some("0"));
}

#[test]
fn sync_backquoted_get_lock_is_not_pooled() {
    let r = sync_after("adv2_s_bq_lock", &["DO `get_lock`('adv2', 0)"], LOCK_CHECK);
    assert_clean("sync DO `get_lock`('adv2', 0)", r, Some("0"));
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

// ---------------------------------------------------------------------------------
// Sequences: NEXTVAL sets the session's LASTVAL, the same kind of state as
// LAST_INSERT_ID(expr), which the classifier does treat as session state.
// ---------------------------------------------------------------------------------

#[test]
fn async_nextval_lastval_is_not_inherited() {
    let r = async_after(
        "adv2_a_lastval",
        "SELECT NEXTVAL(s)",
        "SELECT CAST(LASTVAL(s) AS CHAR)",
    );
    assert_clean("async SELECT NEXTVAL(s)", r, None);
}

// ---------------------------------------------------------------------------------
// Transaction control wrapped in `SET STATEMENT … FOR`.
// ---------------------------------------------------------------------------------

const TX_CHECK: &str = "SELECT CAST(@@in_transaction AS CHAR)";

#[test]
fn async_set_statement_for_start_transaction_is_not_pooled_open() {
    let r = async_after(
        "adv2_a_ss_tx",
        "SET STATEMENT max_statement_time = 100 FOR START TRANSACTION",
        TX_CHECK,
    );
    assert_clean("async SET STATEMENT … FOR START TRANSACTION", r, Some("0"));
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

// ---------------------------------------------------------------------------------
// What COM_RESET_CONNECTION restores: the blocking side resets a "resettable" session
// and pools it. The next holder must see what a fresh connection sees.
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// `USE` behind `SET STATEMENT … FOR`: the blocking side decides reset-or-close by the
// first word only (`changes_database`), and a reset keeps the current database.
// (`EXECUTE IMMEDIATE '…'` was tried too: not preparable, 1295, so unreachable.)
// ---------------------------------------------------------------------------------

#[test]
fn sync_set_statement_for_use_keeps_the_database() {
    let r = sync_after(
        "adv2_s_ss_use",
        &["SET STATEMENT max_statement_time = 100 FOR USE information_schema"],
        "SELECT CAST(DATABASE() NOT LIKE 'adv2_s_ss_use%' AS CHAR)",
    );
    assert_clean("sync SET STATEMENT … FOR USE", r, Some("0"));
}

// ---------------------------------------------------------------------------------
// I2 when the returning side's connection is dirty: it is closed, not pooled, and its
// unit must reach the other side's waiter within the hand-over bound all the same.
// ---------------------------------------------------------------------------------

const HANDOVER_BOUND: Duration = Duration::from_millis(300);

fn handover_pools(rt: &tokio::runtime::Runtime, db: &TestDb, units: u32) -> (AsyncPool, SyncPool) {
    let _enter = rt.enter();
    let b = budget(units);
    let apool = AsyncPool::builder(db.url.clone(), b.clone())
        .idle_timeout(Duration::from_secs(60))
        .pool_timeout(Duration::from_secs(10))
        .build();
    let spool = SyncPool::builder(db.url.clone(), b)
        .idle_timeout(Duration::from_secs(60))
        .pool_timeout(Duration::from_secs(10))
        .build();
    (apool, spool)
}

#[test]
fn a_dirty_async_connection_s_unit_reaches_a_waiting_blocking_caller() {
    let (_server, db) = fresh("adv2_flow_a");
    let rt = runtime();
    let (apool, spool) = handover_pools(&rt, &db, 2);
    let waited = rt.block_on(async {
        let mut held = Vec::new();
        for setup in ["SET @x = 1", "SELECT GET_LOCK('adv2_flow', 0)"] {
            let mut c = apool.acquire().await.unwrap();
            c.execute(sqlx::AssertSqlSafe(setup), args![])
                .await
                .unwrap();
            held.push(c);
        }
        let raw = held.pop().unwrap();
        let mut raw_conn = raw;
        raw_conn.raw().await.unwrap();
        held.push(raw_conn);
        let spool2 = spool.clone();
        let waiter = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let got = spool2.get().map(|_| ());
            (started, got)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let released = std::time::Instant::now();
        drop(held);
        let (started, got) = tokio::task::spawn_blocking(move || waiter.join().unwrap())
            .await
            .unwrap();
        got.unwrap_or_else(|e| panic!("the blocking caller got no connection: {e}"));
        let _ = started;
        released.elapsed()
    });
    assert!(
        waited < HANDOVER_BOUND,
        "a blocking caller got a unit {waited:?} after the async side closed its dirty connections"
    );
}

#[test]
fn a_dirty_blocking_connection_s_unit_reaches_a_waiting_async_caller() {
    let (_server, db) = fresh("adv2_flow_s");
    let rt = runtime();
    let (apool, spool) = handover_pools(&rt, &db, 2);
    // Two blocking holders: one dirty by `USE` (closed on return), one by raw access.
    let mut a = spool.get().unwrap();
    a.execute("USE information_schema", ()).unwrap();
    let b = spool.get().unwrap();
    let waited = rt.block_on(async {
        let apool2 = apool.clone();
        let waiter = tokio::spawn(async move {
            let c = apool2.acquire().await;
            (std::time::Instant::now(), c.map(|_| ()))
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let released = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            drop(a);
            drop(b);
        })
        .await
        .unwrap();
        let (at, got) = waiter.await.unwrap();
        got.unwrap_or_else(|e| panic!("the async caller got no connection: {e}"));
        at.saturating_duration_since(released)
    });
    assert!(
        waited < HANDOVER_BOUND,
        "an async caller got a unit {waited:?} after the blocking side closed its dirty connection"
    );
}

// ---------------------------------------------------------------------------------
// `LAST_INSERT_ID(expr)` is detected by looking for an argument right after the name:
// a comment between the name and its parenthesis hides it.
// ---------------------------------------------------------------------------------

#[test]
fn async_last_insert_id_with_a_comment_before_the_parenthesis_is_not_inherited() {
    let r = async_after(
        "adv2_a_lii_c",
        "SELECT LAST_INSERT_ID/* x */(4242)",
        "SELECT CAST(LAST_INSERT_ID() AS CHAR)",
    );
    assert_clean("async SELECT LAST_INSERT_ID/* x */(4242)", r, Some("0"));
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

// ---------------------------------------------------------------------------------
// Raw access: the async side closes a connection after raw access; the blocking side
// (DbConnection derefs to the driver's connection) pools it with whatever the raw
// statements left behind. ARCHITECTURE (I3): "no connection goes back to the pool
// with … session state".
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Session state changed by server-side code the SQL text does not show: a stored
// function (`SELECT lock_it()` takes a user lock) and a trigger (`INSERT` sets a user
// variable). Lexical classification cannot see either.
// ---------------------------------------------------------------------------------

#[test]
fn async_stored_function_taking_a_user_lock_is_gone_once_the_holder_discards() {
    // The SQL text cannot show what a routine does (a documented limit): the holder
    // that calls one discards the connection, as the docs say.
    let r = async_after_leaving(
        "adv2_a_fn_lock",
        "SELECT lock_it()",
        OWN_LOCK_CHECK,
        Leave::Discard,
    );
    assert_clean(
        "async SELECT lock_it() (RETURN GET_LOCK(…)), discarded",
        r,
        Some("0"),
    );
}

#[test]
fn sync_stored_function_taking_a_user_lock_is_gone_once_the_holder_discards() {
    let r = sync_after_leaving(
        "adv2_s_fn_lock",
        &["DO lock_it()"],
        OWN_LOCK_CHECK,
        Leave::Discard,
    );
    assert_clean(
        "sync DO lock_it() (RETURN GET_LOCK(…)), discarded",
        r,
        Some("0"),
    );
}

#[test]
fn async_trigger_setting_a_user_variable_is_gone_once_the_holder_discards() {
    let r = async_after_leaving(
        "adv2_a_trigger",
        "INSERT INTO t (v) VALUES (77)",
        "SELECT CAST(@last_v AS CHAR)",
        Leave::Discard,
    );
    assert_clean(
        "async INSERT with a trigger that sets @last_v, discarded",
        r,
        None,
    );
}
