//! Helpers of the adversarial tests: a fresh database with a table `t`, a statement
//! run and the connection returned, then what the next holder sees; a cancellation after
//! N pending polls; a frozen server that thaws when the guard drops.

use crate::{Server, TestDb, async_pool, budget, eventually, runtime, sync_pool};
use db_async::{AsyncPool, args};
use db_budget::{CloseReason, DbError, SideSnapshot};
use db_sync::SyncPool;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

/// A database on the shared server with a table `t` of three rows.
pub fn fresh(prefix: &str) -> (&'static Server, TestDb) {
    fresh_with(prefix, "")
}

/// [`fresh`], then `more` (statements run as root in the new database).
pub fn fresh_with(prefix: &str, more: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    let db = TestDb::create(server, prefix);
    db.admin(
        server,
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT) ENGINE=InnoDB; \
             INSERT INTO t (v) VALUES (1), (2), (3); {more}"
        ),
    );
    (server, db)
}

/// Server-side code whose effect on the session the SQL text of a call does not show,
/// for [`fresh_with`]: a sequence `s`, a function `lock_it()` that takes the user lock
/// `adv2`, and a trigger on `t` that sets `@last_v`.
pub const HIDDEN_STATE: &str = "CREATE SEQUENCE s; \
     CREATE FUNCTION lock_it() RETURNS INT NOT DETERMINISTIC RETURN GET_LOCK('adv2', 0); \
     CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW SET @last_v = NEW.v";

/// Whether anybody holds the user lock `adv2`.
pub const LOCK_CHECK: &str = "SELECT CAST(IS_USED_LOCK('adv2') IS NOT NULL AS CHAR)";

/// Whether this session holds the lock `adv2` (a closed session's lock may linger for a
/// moment on the server, but it is no longer anybody's to inherit).
pub const OWN_LOCK_CHECK: &str =
    "SELECT CAST(COALESCE(IS_USED_LOCK('adv2') = CONNECTION_ID(), 0) AS CHAR)";

/// Whether the session is in a transaction (`1`) or not (`0`).
pub const TX_CHECK: &str = "SELECT CAST(@@in_transaction AS CHAR)";

/// What the next holder saw: the first holder's connection id, the next holder's, and
/// the check's one text column.
pub type Seen = (u64, u64, Result<Option<String>, DbError>);

/// How the first holder gives the connection back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Dropped: the return path decides whether it is pooled.
    Drop,
    /// `discard()`: what the docs ask for after state the SQL text cannot show.
    Discard,
}

/// Async side: runs `setup` through `execute` on a checked-out connection of a
/// [`fresh`] database, returns it, checks one out again and says what it [`Seen`].
pub fn async_after(prefix: &str, setup: &'static str, check: &'static str) -> Seen {
    async_after_on(&fresh(prefix).1, setup, check, Leave::Drop)
}

/// [`async_after`] on `db`, the first holder leaving as `leave` says.
pub fn async_after_on(db: &TestDb, setup: &'static str, check: &'static str, leave: Leave) -> Seen {
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

/// Blocking side: the same, through `SyncConn::execute`.
pub fn sync_after(prefix: &str, setup: &[&str], check: &str) -> Seen {
    sync_after_on(&fresh(prefix).1, setup, check, Leave::Drop)
}

/// [`sync_after`] on `db`, the first holder leaving as `leave` says.
pub fn sync_after_on(db: &TestDb, setup: &[&str], check: &str, leave: Leave) -> Seen {
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

/// Asserts the next holder saw `clean`, what a fresh connection shows.
pub fn assert_clean(what: &str, (id1, id2, seen): Seen, clean: Option<&str>) {
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

/// SIGSTOP, returning once the kernel shows the process stopped
/// ([`Server::freeze`]).
pub fn freeze(server: &Server) {
    server.freeze().unwrap();
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

/// Async tasks and blocking threads of a steady load ([`load`]).
pub type Workers = (
    Vec<tokio::task::JoinHandle<u64>>,
    Vec<std::thread::JoinHandle<u64>>,
);

/// `tasks` async tasks pausing `async_think` and `threads` blocking threads pausing
/// `sync_think` between requests (`SELECT 1` each), until `stop`.
pub fn load(
    rt: &tokio::runtime::Runtime,
    (apool, spool): (&AsyncPool, &SyncPool),
    (tasks, async_think): (usize, Duration),
    (threads, sync_think): (usize, Duration),
    stop: &Arc<AtomicBool>,
) -> Workers {
    let tasks = (0..tasks)
        .map(|_| {
            let (apool, stop) = (apool.clone(), stop.clone());
            rt.spawn(async move {
                let mut done = 0;
                while !stop.load(Relaxed) {
                    let mut c = apool.acquire().await.expect("async checkout");
                    c.execute("SELECT 1", db_async::args![])
                        .await
                        .expect("async select");
                    drop(c);
                    done += 1;
                    tokio::time::sleep(async_think).await;
                }
                done
            })
        })
        .collect();
    let threads = (0..threads)
        .map(|_| {
            let (spool, stop) = (spool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while !stop.load(Relaxed) {
                    let mut c = spool.get().expect("blocking checkout");
                    c.execute("SELECT 1", ()).expect("blocking select");
                    drop(c);
                    done += 1;
                    std::thread::sleep(sync_think);
                }
                done
            })
        })
        .collect();
    (tasks, threads)
}

/// Stops the load and returns the statements each side ran.
pub fn finish(
    rt: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    (tasks, threads): Workers,
) -> (u64, u64) {
    stop.store(true, Relaxed);
    let a = rt.block_on(async {
        let mut n = 0;
        for t in tasks {
            n += t.await.expect("task");
        }
        n
    });
    let s = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    (a, s)
}
