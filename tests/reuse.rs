//! Helpers of the adversarial tests: a fresh database with a table `t`, a statement
//! run and the connection returned, then what the next holder sees; a cancellation after
//! N pending polls; a frozen server that thaws when the guard drops.

use crate::{Server, TestDb, async_pool, budget, eventually, runtime, sync_pool};
use db_async::{AsyncPool, args};
use db_budget::{CloseReason, DbError, SideSnapshot};
use db_sync::SyncPool;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub fn fresh(prefix: &str) -> (&'static Server, TestDb) {
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
pub fn async_after(
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
pub fn sync_after(
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

pub fn assert_clean(
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

/// [`cut_after_pausing`] with no pause: the next poll comes as soon as the task yields.
pub async fn cut_after<F: Future>(fut: F, cuts: u32) -> Option<F::Output> {
    cut_after_pausing(fut, cuts, Duration::ZERO).await
}

pub fn app_connections(server: &Server) -> u64 {
    let out = server
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        .expect("count");
    out.trim().parse().expect("a count")
}

/// SIGSTOP, then wait until the kernel shows the process stopped (`T`): `kill`
/// returns before every thread has stopped, and a loaded machine can answer one more
/// packet in between.
pub fn freeze(server: &Server) {
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

#[derive(Debug)]
pub struct Thaw(pub &'static Server);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} still waits after {secs} s on a frozen server"))
}

pub fn closed(s: &SideSnapshot, reason: CloseReason) -> u64 {
    s.closed_total
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

/// Polls `fut` until it has returned `Pending` `cuts` times, then drops it; between
/// polls it sleeps `pause`, so bytes arrive in between (a cut lands in a packet header,
/// a payload, or between rows, depending on where the stream is). `Some` if it finished
/// before the cut.
pub async fn cut_after_pausing<F: Future>(fut: F, cuts: u32, pause: Duration) -> Option<F::Output> {
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
pub fn wide_table(server: &Server, prefix: &str, rows: u32) -> TestDb {
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

pub fn items(server: &Server, prefix: &str) -> TestDb {
    let db = TestDb::create(server, prefix);
    db.admin(
        server,
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)",
    );
    db
}

/// Rows of `items` as another connection sees them (committed rows only).
pub async fn committed_rows(pool: &AsyncPool) -> i64 {
    let mut other = pool.acquire().await.unwrap();
    let (n,): (i64,) = other
        .fetch_one("SELECT COUNT(*) FROM items", args![])
        .await
        .unwrap();
    n
}

/// Runs `f` on a current-thread runtime that is then left alive but never driven again
/// (as a finished `block_on` leaves it).
pub fn on_an_undriven_runtime(f: impl Future<Output = ()>) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(f);
    rt
}
