//! Bounded waits (I4) against a frozen server: a private MariaDB stopped with SIGSTOP
//! keeps its sockets open and answers nothing, the way a hung or swapped-out server
//! does. Every phase of the blocking side must give up within its bound: the connect
//! (TCP + handshake), the validation ping, a statement, and the ROLLBACK on drop, and
//! the budget unit must come back.
//!
//! No timing assertions: each test runs the blocking call on a thread and waits for its
//! outcome with an outer guard several times the bound; nothing coming back fails.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use db_budget::{Budget, CloseReason, DatabaseUrl, DbError, Side};
use db_sync::SyncPool;
use db_sync::mysql::prelude::Queryable;
use mariadb_harness::{Server, ServerOptions};

#[path = "support/mod.rs"]
mod support;
use support::closed;

/// The connect timeout (and so the bound of handshake, ping and ROLLBACK) of these pools.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a statement may wait for a frozen server in these pools.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The outer guard: far beyond every bound above.
const GUARD: Duration = Duration::from_secs(30);

/// A private server (pausing the shared one would freeze other tests) and a pool on it.
struct Frozen {
    server: Server,
    budget: Budget,
    pool: SyncPool,
}

impl Frozen {
    fn new(
        prefix: &str,
        units: u32,
        configure: impl FnOnce(db_sync::SyncPoolBuilder) -> db_sync::SyncPoolBuilder,
    ) -> Frozen {
        let server = Server::start(ServerOptions::default()).expect("start a private server");
        let db = server.create_database(prefix).expect("create database");
        let url = DatabaseUrl::parse(&server.app_url(&db)).expect("url");
        let budget = Budget::new(units, Duration::from_secs(30));
        let builder = SyncPool::builder(url, budget.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_timeout(Duration::from_secs(2))
            .io_timeout(IO_TIMEOUT);
        let pool = configure(builder).build();
        Frozen {
            server,
            budget,
            pool,
        }
    }

    /// SIGSTOP, and wait until the kernel reports the process stopped.
    fn freeze(&self) {
        self.server.freeze().expect("SIGSTOP");
    }

    fn thaw(&self) {
        self.server.resume().expect("SIGCONT");
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // Let threads a failed test left blocked finish; dropping the server kills it.
        let _ = self.server.resume();
    }
}

/// Runs `f` on a thread; its outcome, or a test failure naming `what` if nothing
/// comes back within the guard.
fn within_guard<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(GUARD) {
        Ok(value) => value,
        Err(_) => panic!("{what} did not return within {GUARD:?} against a frozen server"),
    }
}

/// Waits (within the guard) until every unit is back.
fn units_come_back(budget: &Budget) {
    let deadline = Instant::now() + GUARD;
    while budget.in_use() > 0 {
        assert!(
            Instant::now() < deadline,
            "units still held: {}",
            budget.snapshot()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_get_whose_idle_connection_needs_a_ping_fails_instead_of_hanging() {
    // Every reused connection is pinged.
    let f = Frozen::new("frozen_ping", 2, |b| b.validation_bypass(Duration::ZERO));
    drop(f.pool.get().unwrap()); // one idle connection
    assert_eq!(f.pool.state().idle, 1);
    f.freeze();

    let pool = f.pool.clone();
    let result = within_guard("get() (the validation ping)", move || pool.get().map(drop));
    assert!(result.is_err(), "a frozen server cannot serve a connection");
    let snap = f.budget.snapshot();
    assert_eq!(
        closed(&snap, CloseReason::Broken),
        1,
        "the unanswered ping closed it: {snap}"
    );
    units_come_back(&f.budget);
}

#[test]
fn a_statement_on_a_frozen_server_fails_and_its_connection_is_closed() {
    let f = Frozen::new("frozen_stmt", 2, |b| b);
    let mut conn = f.pool.get().unwrap();
    let (one,): (i64,) = conn.fetch_one("SELECT 1", ()).unwrap();
    assert_eq!(one, 1);
    f.freeze();

    let (result, conn) = within_guard("a statement", move || {
        let r = conn.fetch_one::<(i64,)>("SELECT 2", ());
        (r, conn)
    });
    assert!(
        matches!(result, Err(DbError::ConnectionLost { .. })),
        "{result:?}"
    );
    within_guard("dropping the connection", move || drop(conn));
    let snap = f.budget.snapshot();
    assert_eq!(
        closed(&snap, CloseReason::Broken),
        1,
        "closed, not pooled: {snap}"
    );
    assert_eq!(f.pool.state().connections, 0);
    units_come_back(&f.budget);
}

#[test]
fn the_rollback_on_drop_gives_up_on_a_frozen_server_and_closes_the_connection() {
    let f = Frozen::new("frozen_rollback", 2, |b| b);
    let mut conn = f.pool.get().unwrap();
    conn.execute("BEGIN", ()).unwrap(); // the drop must send a ROLLBACK
    f.freeze();

    within_guard(
        "dropping a connection with an open transaction",
        move || drop(conn),
    );
    let snap = f.budget.snapshot();
    assert_eq!(
        closed(&snap, CloseReason::Broken),
        1,
        "closed, not pooled: {snap}"
    );
    assert_eq!(f.pool.state().connections, 0);
    units_come_back(&f.budget);
}

#[test]
fn a_connect_to_a_frozen_server_gives_its_unit_back_to_the_async_side() {
    let f = Frozen::new("frozen_connect", 1, |b| b);
    f.freeze();

    // The kernel accepts the TCP connection; the handshake gets no greeting.
    let pool = f.pool.clone();
    let result = within_guard("get() (a connect)", move || pool.get().map(drop));
    assert!(result.is_err(), "{result:?}");

    // The connect job must not keep the only unit inside the hung handshake.
    let budget = f.budget.clone();
    let unit = within_guard("the async side's wait for the unit", move || {
        budget
            .acquire_blocking(Side::Async, Instant::now() + GUARD / 2)
            .map(drop)
    });
    assert!(
        unit.is_ok(),
        "the unit stayed in the handshake: {}",
        f.budget.snapshot()
    );
    assert_eq!(f.pool.state().connections, 0);
}

#[test]
fn a_raw_statement_that_timed_out_never_leaves_its_connection_out_of_step() {
    let f = Frozen::new("frozen_raw", 2, |b| b);
    let mut conn = f.pool.get().unwrap();
    let first_id = conn.connection_id();
    f.freeze();

    // Raw access: the guard cannot see this error.
    let (result, conn) = within_guard("a raw statement", move || {
        let r = conn.query_first::<i64, _>("SELECT 7");
        (r, conn)
    });
    assert!(result.is_err(), "{result:?}");
    // The server wakes up and answers the abandoned statement after all.
    f.thaw();
    thread::sleep(Duration::from_millis(200));
    drop(conn);

    // The next caller must get a connection whose answers are its own.
    let mut conn = f.pool.get().unwrap();
    let (v,): (i64,) = conn.fetch_one("SELECT 42", ()).unwrap();
    assert_eq!(v, 42);
    assert_ne!(
        conn.connection_id(),
        first_id,
        "the out-of-step connection was closed"
    );
    drop(conn);
    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::Broken), 1, "{snap}");
}
