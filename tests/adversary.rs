//! Adversarial review of issue 11's fixes: statements whose session or transaction
//! effects the classifier (`db_budget::sql`) misses, the blocking side's helpers that do
//! not consult it at all, and cancellation at points the existing matrix does not cut.
//!
//! Every test runs a statement through a helper the way a handler would, returns the
//! connection, checks one out again (budget of 1: the same physical connection unless
//! the pool closed it) and asks the server what the next holder inherited.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
         INSERT INTO t (v) VALUES (1), (2), (3)",
    );
    (server, db)
}

/// Async side: runs `setup` through `execute` on a checked-out connection, returns it,
/// checks one out again and returns (first id, second id, `check`'s one text column).
fn async_after(
    prefix: &str,
    setup: &'static str,
    check: &'static str,
) -> (u64, u64, Result<Option<String>, DbError>) {
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
        drop(conn);
        eventually(Duration::from_secs(2), || pool.idle_count() == 1);
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

/// Blocking side: the same, through `DbConnection::execute`.
fn sync_after(
    prefix: &str,
    setup: &[&str],
    check: &str,
) -> (u64, u64, Result<Option<String>, DbError>) {
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
    drop(conn);
    let mut conn = pool.get().unwrap();
    let (id2,): (u64,) = conn.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();
    let seen = conn.fetch_one::<(Option<String>,)>(check, ()).map(|(v,)| v);
    (id1, id2, seen)
}

fn assert_clean(
    what: &str,
    (id1, id2, seen): (u64, u64, Result<Option<String>, DbError>),
    clean: Option<&str>,
) {
    let seen = seen.unwrap_or_else(|e| panic!("{what}: the check failed: {e:?}"));
    assert_eq!(
        seen.as_deref(),
        clean,
        "{what}: the next holder inherited session state (connection {id1} then {id2})"
    );
}

// ---------------------------------------------------------------------------------
// Async side: statements the classifier misses.
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Blocking side: the helpers never consult `changes_session`.
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Cancellation at BEGIN / COMMIT / ROLLBACK / raw(), on the same handle.
// ---------------------------------------------------------------------------------

async fn cut_after<F: Future>(fut: F, cuts: u32) -> Option<F::Output> {
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
                    return None;
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

#[test]
fn async_cut_commit_then_reuse_never_sees_a_committed_or_open_state_wrongly() {
    let (server, db) = fresh("adv_a_cutcommit");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=6u32 {
            let mut conn = pool.acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO t (v) VALUES (?)", args![1000 + cuts as i32])
                .await
                .unwrap();
            let out = cut_after(tx.commit(), cuts).await;
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(String,)>("SELECT CAST(@@in_transaction AS CHAR)", args![]),
            )
            .await
            .expect("the next statement hung");
            match (&out, &next) {
                (None, Err(DbError::Interrupted)) => {}
                (Some(Ok(())), Ok((s,))) if s == "0" => {}
                _ => problems.push(format!("cut {cuts}: commit {out:?}, next {next:?}")),
            }
            drop(conn);
        }
        let _ = server;
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(eventually(Duration::from_secs(5), || {
            let s = budget.snapshot();
            s.async_side.active == 0 && s.in_use == s.async_side.idle
        }));
    });
}

#[test]
fn async_cut_abandoned_rollback_inside_prepare_refuses_the_next_statement() {
    let (_server, db) = fresh("adv_a_cutprep");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=6u32 {
            let mut conn = pool.acquire().await.unwrap();
            {
                let mut tx = conn.begin().await.unwrap();
                tx.execute("INSERT INTO t (v) VALUES (?)", args![2000])
                    .await
                    .unwrap();
                // dropped: abandoned, rolled back in the next prepare
            }
            let out = cut_after(conn.fetch_one::<(i64,)>("SELECT 1", args![]), cuts).await;
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(String,)>("SELECT CAST(@@in_transaction AS CHAR)", args![]),
            )
            .await
            .expect("the next statement hung");
            match (&out, &next) {
                (None, Err(DbError::Interrupted)) => {}
                (Some(Ok((1,))), Ok((s,))) if s == "0" => {}
                _ => problems.push(format!("cut {cuts}: first {out:?}, next {next:?}")),
            }
            drop(conn);
        }
        assert!(problems.is_empty(), "{problems:#?}");
        let (n,): (i64,) = pool
            .acquire()
            .await
            .unwrap()
            .fetch_one("SELECT COUNT(*) FROM t WHERE v = 2000", args![])
            .await
            .unwrap();
        assert_eq!(n, 0, "an abandoned transaction's write was committed");
    });
}

#[test]
fn async_cut_raw_rollback_refuses_the_next_statement() {
    let (_server, db) = fresh("adv_a_cutraw");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=6u32 {
            let mut conn = pool.acquire().await.unwrap();
            {
                let mut tx = conn.begin().await.unwrap();
                tx.execute("INSERT INTO t (v) VALUES (?)", args![3000])
                    .await
                    .unwrap();
            }
            let out = cut_after(async { conn.raw().await.map(|_| ()) }, cuts).await;
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(String,)>("SELECT CAST(@@in_transaction AS CHAR)", args![]),
            )
            .await
            .expect("the next statement hung");
            match (&out, &next) {
                (None, Err(DbError::Interrupted)) => {}
                // A raw checkout's helpers refuse by design; the raw connection itself
                // must show the abandoned transaction rolled back.
                (Some(Ok(())), Err(DbError::Interrupted)) => {
                    let raw = conn.raw().await.unwrap();
                    let (s,): (String,) = sqlx::query_as("SELECT CAST(@@in_transaction AS CHAR)")
                        .fetch_one(raw)
                        .await
                        .unwrap();
                    if s != "0" {
                        problems.push(format!(
                            "cut {cuts}: raw ran inside the abandoned transaction"
                        ));
                    }
                }
                _ => problems.push(format!("cut {cuts}: raw {out:?}, next {next:?}")),
            }
            drop(conn);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

// ---------------------------------------------------------------------------------
// `COMMIT RELEASE`: the server closes the session; the pool keeps the dead connection.
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// I1: the environment's budget first, then one of the process's own.
// ---------------------------------------------------------------------------------

fn app_connections(server: &Server) -> u64 {
    let out = server
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        .expect("count");
    out.trim().parse().expect("a count")
}

#[test]
fn a_budget_built_after_the_environment_s_one_is_a_second_budget() {
    let (server, db) = fresh("adv_env_first");
    // SAFETY: first thing in this test process (nextest: one test per process).
    unsafe {
        std::env::set_var("DATABASE_URL", server.app_url(&db.name));
        std::env::set_var("MAX_CONNECTIONS", "1");
    }
    // A legacy module runs first: the shim builds the process-wide budget of 1.
    let legacy = db_sync::get_database_connection().expect("the shim from the environment");
    // Then the process builds its own budget (as a worker binary does): refused loudly,
    // never a second budget beside the environment's.
    let second = std::panic::catch_unwind(|| budget(1));
    drop(legacy);
    let payload = second.expect_err("building a second budget must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .expect("the panic says why");
    assert!(message.contains("two budgets"), "{message}");
    // The shim keeps its one budget.
    let again = db_sync::get_database_connection().map(drop);
    assert!(again.is_ok(), "the shim lost its budget: {again:?}");
    assert_eq!(
        app_connections(server),
        1,
        "the environment's budget keeps its pooled connection"
    );
}

// ---------------------------------------------------------------------------------
// I4 with a frozen server (SIGSTOP), async side and the blocking pool's close.
// ---------------------------------------------------------------------------------

/// SIGSTOP, then wait until the kernel shows the process stopped (`T`): `kill`
/// returns before every thread has stopped, and a loaded machine can answer one more
/// packet in between.
fn freeze(server: &Server) {
    server.pause().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state == Some('T') {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Thaw(&'static Server);
impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} still waits after {secs} s on a frozen server"))
}

#[test]
fn async_acquire_connecting_to_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_connect");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    freeze(server);
    let r = within(12, "async acquire (connect)", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(1);
            let pool = AsyncPool::builder(url, budget.clone())
                .connect_timeout(Duration::from_secs(1))
                .pool_timeout(Duration::from_secs(3))
                .build();
            let r = pool.acquire().await.map(drop);
            (r, budget.in_use())
        })
    });
    assert!(r.0.is_err(), "{:?}", r.0);
}

#[test]
fn async_pool_close_with_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_close");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    within(20, "async pool close", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(2);
            let pool = AsyncPool::builder(url, budget.clone())
                .return_timeout(Duration::from_secs(1))
                .build();
            let a = pool.acquire().await.unwrap();
            let b = pool.acquire().await.unwrap();
            drop((a, b));
            eventually(Duration::from_secs(2), || pool.idle_count() == 2);
            freeze(server);
            pool.close().await;
        })
    });
}

#[test]
fn async_open_transaction_returned_to_a_frozen_server_gives_its_unit_back() {
    let (server, db) = fresh("adv_f_settle");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let in_use = within(20, "async settle", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(1);
            let pool = AsyncPool::builder(url, budget.clone())
                .return_timeout(Duration::from_secs(1))
                .build();
            let mut c = pool.acquire().await.unwrap();
            c.execute("BEGIN", args![]).await.unwrap();
            freeze(server);
            drop(c);
            let ok = eventually(Duration::from_secs(5), || budget.in_use() == 0);
            (ok, budget.snapshot().to_string())
        })
    });
    assert!(in_use.0, "the unit is still held: {}", in_use.1);
}

#[test]
fn sync_pool_close_with_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_sclose");
    let _thaw = Thaw(server);
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .connect_timeout(Duration::from_secs(1))
        .io_timeout(Duration::from_secs(1))
        .build();
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    drop((a, b));
    freeze(server);
    let p = pool.clone();
    within(10, "sync pool close", move || p.close());
    let b2 = budget.clone();
    within(10, "units back", move || {
        eventually(Duration::from_secs(8), || b2.in_use() == 0)
    });
    assert_eq!(budget.in_use(), 0, "{}", budget.snapshot());
}

#[test]
fn sync_discard_with_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_sdiscard");
    let _thaw = Thaw(server);
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .connect_timeout(Duration::from_secs(1))
        .io_timeout(Duration::from_secs(1))
        .build();
    let mut c = pool.get().unwrap();
    c.execute("SELECT 1", ()).unwrap();
    freeze(server);
    within(10, "sync discard", move || c.discard());
    let b2 = budget.clone();
    assert!(
        within(10, "units back", move || eventually(
            Duration::from_secs(8),
            || b2.in_use() == 0
        )),
        "{}",
        budget.snapshot()
    );
}

#[test]
fn sync_transaction_commit_on_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_scommit");
    let _thaw = Thaw(server);
    let budget = budget(2);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .connect_timeout(Duration::from_secs(1))
        .io_timeout(Duration::from_secs(1))
        .build();
    let p = pool.clone();
    let r = within(15, "sync transaction", move || {
        p.transaction(|tx| {
            tx.execute("INSERT INTO t (v) VALUES (?)", (5,))?;
            freeze(server);
            Ok(())
        })
    });
    assert!(r.is_err(), "{r:?}");
    let b2 = budget.clone();
    assert!(
        within(10, "units back", move || eventually(
            Duration::from_secs(8),
            || b2.in_use() == 0
        )),
        "{}",
        budget.snapshot()
    );
}

// ---------------------------------------------------------------------------------
// More of the same classes.
// ---------------------------------------------------------------------------------

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

#[test]
fn the_blocking_connection_s_debug_through_deref_shows_no_password() {
    let (_server, db) = fresh("adv_s_debug");
    let budget = budget(1);
    let pool = sync_pool(&db.url, &budget);
    let conn = pool.get().unwrap();
    let password = db.url.password().unwrap().to_owned();
    let shown = format!("{:?} / {:?}", conn, &*conn);
    assert!(
        !shown.contains(&password),
        "Debug shows the password: {shown}"
    );
}

#[test]
fn async_fetch_optional_cut_in_its_drain_refuses_the_next_statement() {
    let server = Server::shared();
    let db = TestDb::create(server, "adv_a_drain");
    db.admin(
        server,
        "CREATE TABLE wide (id INT PRIMARY KEY, pad VARCHAR(1024) NOT NULL); \
         INSERT INTO wide SELECT seq, REPEAT('x', 1000) FROM seq_1_to_5000",
    );
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        let mut cut = 0;
        for cuts in 1..=30u32 {
            for pause in [
                Duration::ZERO,
                Duration::from_micros(300),
                Duration::from_millis(2),
            ] {
                let mut conn = pool.acquire().await.unwrap();
                let fut = conn.fetch_optional::<(i32, String)>(
                    "SELECT id, pad FROM wide ORDER BY id",
                    args![],
                );
                let mut fut = Box::pin(fut);
                let mut pendings = 0;
                let out = loop {
                    let polled = std::future::poll_fn(|cx: &mut Context<'_>| {
                        Poll::Ready(Pin::as_mut(&mut fut).poll(cx))
                    })
                    .await;
                    match polled {
                        Poll::Ready(v) => break Some(v),
                        Poll::Pending => {
                            pendings += 1;
                            if pendings >= cuts {
                                break None;
                            }
                            if pause.is_zero() {
                                tokio::task::yield_now().await;
                            } else {
                                tokio::time::sleep(pause).await;
                            }
                        }
                    }
                };
                drop(fut);
                let next = tokio::time::timeout(
                    Duration::from_secs(3),
                    conn.fetch_one::<(i64,)>("SELECT 42", args![]),
                )
                .await;
                match (&out, &next) {
                    (None, Ok(Err(DbError::Interrupted))) => cut += 1,
                    (Some(Ok(Some((1, _)))), Ok(Ok((42,)))) => {}
                    _ => problems.push(format!(
                        "cut {cuts} {pause:?}: first {:?}, next {next:?}",
                        out.as_ref()
                            .map(|r| r.as_ref().map(|o| o.as_ref().map(|(id, _)| *id)))
                    )),
                }
                drop(conn);
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(cut > 10, "only {cut} cuts landed");
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
fn async_idle_connection_validated_against_a_frozen_server_is_bounded() {
    let (server, db) = fresh("adv_f_validate");
    let url = db.url.clone();
    let _thaw = Thaw(server);
    let r = within(15, "async acquire (validation ping)", move || {
        let rt = runtime();
        rt.block_on(async move {
            let budget = budget(1);
            let pool = AsyncPool::builder(url, budget.clone())
                .connect_timeout(Duration::from_secs(1))
                .pool_timeout(Duration::from_secs(3))
                .validation_bypass(Duration::from_millis(1))
                .build();
            drop(pool.acquire().await.unwrap());
            eventually(Duration::from_secs(2), || pool.idle_count() == 1);
            tokio::time::sleep(Duration::from_millis(20)).await;
            freeze(server);
            let started = std::time::Instant::now();
            let r = pool.acquire().await.map(drop);
            let took = started.elapsed();
            let back = eventually(Duration::from_secs(5), || budget.in_use() == 0);
            (r, back, took, budget.snapshot().to_string())
        })
    });
    assert!(r.0.is_err(), "{:?} after {:?}", r.0, r.2);
    assert!(
        r.1,
        "the unit did not come back within 5 s of acquire's answer ({:?} after {:?}): {}",
        r.0, r.2, r.3
    );
    assert!(
        r.2 < Duration::from_secs(4),
        "acquire took {:?} (connect 1 s, pool 3 s): {:?}",
        r.2,
        r.0
    );
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
fn a_statement_cut_off_on_the_raw_connection_makes_the_handle_refuse_the_next_helper() {
    // `raw()` hands out the sqlx connection; a statement on it cut off by a timeout
    // leaves a half-read result in the socket, and the next helper on the same
    // `AsyncConn` runs on it.
    let server = Server::shared();
    let db = TestDb::create(server, "adv_a_rawcut");
    db.admin(
        server,
        "CREATE TABLE wide (id INT PRIMARY KEY, pad VARCHAR(1024) NOT NULL); \
         INSERT INTO wide SELECT seq, REPEAT('x', 1000) FROM seq_1_to_3000",
    );
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=12u32 {
            let mut conn = pool.acquire().await.unwrap();
            let out = {
                let raw = conn.raw().await.unwrap();
                cut_after(
                    sqlx::query_as::<_, (i32, String)>("SELECT id, pad FROM wide ORDER BY id")
                        .fetch_all(&mut *raw),
                    cuts,
                )
                .await
            };
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(i64,)>("SELECT 42", args![]),
            )
            .await;
            match (&out, &next) {
                (None, Ok(Err(DbError::Interrupted))) => {}
                // After raw use the helpers refuse whether or not the raw statement
                // finished: the pool cannot tell.
                (Some(Ok(rows)), Ok(Err(DbError::Interrupted))) if rows.len() == 3000 => {}
                _ => problems.push(format!(
                    "cut {cuts}: raw statement {}, next helper {}",
                    match &out {
                        None => "cut".to_owned(),
                        Some(r) => format!("{:?}", r.as_ref().map(Vec::len)),
                    },
                    match &next {
                        Err(_) => "HUNG > 3 s".to_owned(),
                        Ok(r) => format!("{r:?}"),
                    }
                )),
            }
            drop(conn);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

#[test]
fn after_a_raw_statement_was_cut_off_the_next_helper_never_answers_wrong() {
    let server = Server::shared();
    let db = TestDb::create(server, "adv_a_rawwrong");
    db.admin(
        server,
        "CREATE TABLE wide (id INT PRIMARY KEY, pad VARCHAR(1024) NOT NULL); \
         INSERT INTO wide SELECT seq, REPEAT('x', 1000) FROM seq_1_to_3000",
    );
    const SQL: &str = "SELECT id, pad FROM wide WHERE id > ? ORDER BY id";
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut wrong = Vec::new();
        for cuts in 1..=20u32 {
            for pause in [Duration::ZERO, Duration::from_millis(1)] {
                let mut conn = pool.acquire().await.unwrap();
                // Warm the connection's statement cache through the helper.
                let rows = conn.fetch_all::<(i32, String)>(SQL, args![2999]).await.unwrap();
                assert_eq!(rows.len(), 1);
                let out = {
                    let raw = conn.raw().await.unwrap();
                    let fut = sqlx::query_as::<_, (i32, String)>(SQL).bind(0).fetch_all(&mut *raw);
                    let mut fut = Box::pin(fut);
                    let mut pendings = 0;
                    loop {
                        let polled = std::future::poll_fn(|cx: &mut Context<'_>| {
                            Poll::Ready(Pin::as_mut(&mut fut).poll(cx))
                        })
                        .await;
                        match polled {
                            Poll::Ready(v) => break Some(v.map(|r| r.len())),
                            Poll::Pending => {
                                pendings += 1;
                                if pendings >= cuts {
                                    break None;
                                }
                                if pause.is_zero() {
                                    tokio::task::yield_now().await;
                                } else {
                                    tokio::time::sleep(pause).await;
                                }
                            }
                        }
                    }
                };
                let next = tokio::time::timeout(
                    Duration::from_secs(3),
                    conn.fetch_all::<(i32, String)>(SQL, args![2999]),
                )
                .await;
                match &next {
                    Err(_) => wrong.push(format!("cut {cuts} {pause:?} (raw {out:?}): next helper HUNG > 3 s")),
                    Ok(Ok(rows)) if rows.iter().map(|(id, _)| *id).collect::<Vec<_>>() != vec![3000] => {
                        wrong.push(format!(
                            "cut {cuts} {pause:?} (raw {out:?}): next helper answered {} rows, first id {:?}",
                            rows.len(),
                            rows.first().map(|(id, _)| *id)
                        ));
                    }
                    _ => {}
                }
                drop(conn);
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    });
}

// ---------------------------------------------------------------------------------
// I1: the environment path racing a program's own install (no database needed).
// ---------------------------------------------------------------------------------

/// One round in a fresh process (globals are once per process): a legacy thread's
/// first `db_budget::global()` races the program building and installing its own.
/// Prints `TWO` when both succeeded: two budgets behind the process-wide functions.
fn race_round() {
    // SAFETY: the child process's first action, before any other thread exists.
    unsafe {
        std::env::set_var("DATABASE_URL", "mysql://app:pw@127.0.0.1:1/game");
        std::env::set_var("MAX_CONNECTIONS", "7");
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let legacy = std::thread::spawn(move || {
        b.wait();
        db_budget::global().map(|(_, budget)| budget.capacity())
    });
    barrier.wait();
    // Building the program's own budget after the environment's panics (loudly
    // refused): one budget, so not `TWO`.
    let own = match std::panic::catch_unwind(|| budget(3)) {
        Ok(own) => own,
        Err(_) => {
            let legacy = legacy.join().unwrap();
            println!("ROUND legacy={legacy:?} own budget refused loudly: one");
            return;
        }
    };
    let config = db_budget::Config::from_env().unwrap();
    let installed = db_budget::install_global(config, own.clone());
    let legacy = legacy.join().unwrap();
    let two = installed.is_ok() && matches!(legacy, Ok(7));
    // Afterwards: uninstall; a process that built its own must never fall back.
    let after = installed
        .map(drop)
        .ok()
        .map(|()| db_budget::global().map(|(_, b)| b.capacity()));
    println!(
        "ROUND legacy={legacy:?} installed_then_global={after:?} {}",
        if two || matches!(after, Some(Ok(7))) {
            "TWO"
        } else {
            "one"
        }
    );
}

#[test]
fn the_environment_s_budget_and_an_installed_one_never_coexist() {
    if std::env::var_os("ADV_RACE_ROUND").is_some() {
        race_round();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut two = Vec::new();
    let mut rounds = 0;
    for _ in 0..150 {
        let out = std::process::Command::new(&exe)
            .args([
                "the_environment_s_budget_and_an_installed_one_never_coexist",
                "--exact",
                "--nocapture",
            ])
            .env("ADV_RACE_ROUND", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.starts_with("ROUND")) {
            rounds += 1;
            if line.ends_with("TWO") {
                two.push(line.to_owned());
            }
        }
    }
    assert!(rounds > 100, "only {rounds} rounds ran");
    assert!(
        two.is_empty(),
        "{} of {rounds} rounds had two budgets, e.g. {:?}",
        two.len(),
        two.first()
    );
}

/// As [`race_round`], with the shim's own entry point: the legacy thread's
/// `db_sync::global()` (what `get_database_connection()` calls) races the program
/// installing its budget and blocking pool, as `server`'s `Application::build` does.
fn shim_race_round() {
    // SAFETY: the child process's first action, before any other thread exists.
    unsafe {
        std::env::set_var("DATABASE_URL", "mysql://app:pw@127.0.0.1:1/game");
        std::env::set_var("MAX_CONNECTIONS", "7");
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let legacy = std::thread::spawn(move || {
        b.wait();
        db_sync::global().map(|pool| pool.budget().capacity())
    });
    barrier.wait();
    // Building the program's own budget after the environment's panics (loudly
    // refused): one budget, so not `TWO`.
    let own = match std::panic::catch_unwind(|| budget(3)) {
        Ok(own) => own,
        Err(_) => {
            let legacy = legacy.join().unwrap();
            println!("ROUND legacy={legacy:?} own budget refused loudly: one");
            return;
        }
    };
    let config = db_budget::Config::from_env().unwrap();
    let url = config.database_url.clone().unwrap();
    let g1 = db_budget::install_global(config, own.clone());
    let g2 = db_sync::install_global(SyncPool::builder(url, own.clone()).build());
    let legacy = legacy.join().unwrap();
    // While the program's pool is installed, what does the shim hand out now?
    let shim_now = db_sync::global().map(|p| p.budget().capacity());
    let two = g1.is_ok() && g2.is_ok() && matches!(legacy, Ok(7));
    println!(
        "ROUND legacy={legacy:?} installed={} shim_now={shim_now:?} {}",
        g1.is_ok() && g2.is_ok(),
        if two { "TWO" } else { "one" }
    );
}

#[test]
fn the_shim_racing_the_program_s_install_never_builds_a_second_budget() {
    if std::env::var_os("ADV_SHIM_RACE_ROUND").is_some() {
        shim_race_round();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut two = Vec::new();
    let mut rounds = 0;
    for _ in 0..150 {
        let out = std::process::Command::new(&exe)
            .args([
                "the_shim_racing_the_program_s_install_never_builds_a_second_budget",
                "--exact",
                "--nocapture",
            ])
            .env("ADV_SHIM_RACE_ROUND", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.starts_with("ROUND")) {
            rounds += 1;
            if line.ends_with("TWO") {
                two.push(line.to_owned());
            }
        }
    }
    assert!(rounds > 100, "only {rounds} rounds ran");
    assert!(
        two.is_empty(),
        "{} of {rounds} rounds had two budgets, e.g. {:?}",
        two.len(),
        two.first()
    );
}
