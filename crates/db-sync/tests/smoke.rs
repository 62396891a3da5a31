//! The blocking pool against a real, private MariaDB (`mariadb-harness`; never the
//! machine's server): helpers, rollback on drop, panics, and the budget afterwards.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::{Duration, Instant};

use db_budget::{Budget, CloseReason, DatabaseUrl, DbError, Side, Snapshot};
use db_sync::SyncPool;
use db_sync::mysql::prelude::Queryable;
use mariadb_harness::Server;
use serde_json::json;

const SCHEMA: &str = "CREATE TABLE players (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(50) NOT NULL UNIQUE,
    coins INT NOT NULL DEFAULT 0,
    active TINYINT(1) NOT NULL DEFAULT 1,
    created DATETIME(3) NULL,
    avatar VARBINARY(8) NULL,
    price DECIMAL(6,2) NULL
) ENGINE=InnoDB";

struct Fixture {
    server: &'static Server,
    url: DatabaseUrl,
    budget: Budget,
    pool: SyncPool,
}

fn fixture(prefix: &str, units: u32) -> Fixture {
    let server = Server::shared();
    let db = server.create_database(prefix).expect("create database");
    server
        .sql(&format!("USE `{db}`; {SCHEMA}"))
        .expect("schema");
    let url = DatabaseUrl::parse(&server.app_url(&db)).expect("url");
    let budget = Budget::new(units, Duration::from_secs(30));
    let pool = SyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .build();
    Fixture {
        server,
        url,
        budget,
        pool,
    }
}

fn closed(snapshot: &Snapshot, reason: CloseReason) -> u64 {
    snapshot
        .sync_side
        .closed_total
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

/// Units in use equal the pool's open connections, nothing is checked out, and the
/// idle gauge matches the pool.
fn assert_settled(f: &Fixture) {
    let snap = f.budget.snapshot();
    let state = f.pool.state();
    assert_eq!(snap.in_use, state.connections, "{snap}");
    assert_eq!(snap.sync_side.held, state.connections, "{snap}");
    assert_eq!(snap.sync_side.active, 0, "{snap}");
    assert_eq!(snap.sync_side.idle, state.idle, "{snap}");
    assert_eq!(state.idle, state.connections, "{snap}");
    assert_eq!(snap.sync_side.waiting, 0, "{snap}");
}

fn count(pool: &SyncPool) -> i64 {
    let (n,): (i64,) = pool.fetch_one("SELECT COUNT(*) FROM players", ()).unwrap();
    n
}

#[test]
fn helpers_round_trip_through_the_guard() {
    let f = fixture("sync_helpers", 4);
    let mut conn = f.pool.get().unwrap();

    let done = conn
        .execute(
            "INSERT INTO players (name, coins, created, avatar, price) VALUES (?, ?, ?, ?, ?)",
            (
                "ann",
                10,
                "2024-05-31 12:03:04.120",
                vec![0u8, 255],
                "12.30",
            ),
        )
        .unwrap();
    assert_eq!(done.rows_affected, 1);
    assert_eq!(done.last_insert_id, Some(1));
    let update = conn
        .execute("UPDATE players SET coins = coins WHERE id = ?", (1,))
        .unwrap();
    assert_eq!(update.last_insert_id, None);

    let (name, coins): (String, i64) = conn
        .fetch_one("SELECT name, coins FROM players WHERE id = ?", (1,))
        .unwrap();
    assert_eq!((name.as_str(), coins), ("ann", 10));
    let none: Option<(i64,)> = conn
        .fetch_optional("SELECT id FROM players WHERE name = ?", ("nobody",))
        .unwrap();
    assert!(none.is_none());
    let missing = conn.fetch_one::<(i64,)>("SELECT id FROM players WHERE id = ?", (99,));
    assert!(matches!(missing, Err(DbError::RowNotFound)));
    let bad = conn.fetch_one::<(i64,)>("SELECT name FROM players WHERE id = ?", (1,));
    assert!(matches!(bad, Err(DbError::Decode { .. })), "{bad:?}");

    let dict = conn
        .fetch_dict_one("SELECT * FROM players WHERE id = ?", (1,))
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(dict.clone()),
        json!({
            "id": 1, "name": "ann", "coins": 10, "active": true,
            "created": "2024-05-31T12:03:04.120", "avatar": [0, 255], "price": "12.30",
        })
    );
    let keys: Vec<&str> = dict.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id", "name", "coins", "active", "created", "avatar", "price"
        ]
    );

    // A transaction that returns Ok commits; one that returns Err rolls back.
    let id = conn
        .transaction(|tx| {
            let done = tx.execute("INSERT INTO players (name) VALUES (?)", ("bob",))?;
            tx.execute("UPDATE players SET coins = coins + 5 WHERE id = ?", (1,))?;
            Ok(done.last_insert_id)
        })
        .unwrap();
    assert_eq!(id, Some(2));
    let failed: Result<(), DbError> = conn.transaction(|tx| {
        tx.execute("INSERT INTO players (name) VALUES (?)", ("carl",))?;
        tx.execute("INSERT INTO players (name) VALUES (?)", ("ann",))?; // duplicate
        Ok(())
    });
    assert!(failed.unwrap_err().is_duplicate_key());
    let rows = conn
        .fetch_dict_all("SELECT name, coins FROM players ORDER BY id", ())
        .unwrap();
    assert_eq!(
        serde_json::to_value(&rows).unwrap(),
        json!([{"name": "ann", "coins": 15}, {"name": "bob", "coins": 0}])
    );
    let names: Vec<(String,)> = conn
        .fetch_all("SELECT name FROM players ORDER BY id", ())
        .unwrap();
    assert_eq!(names, [("ann".to_owned(),), ("bob".to_owned(),)]);
    drop(conn);

    // One-statement conveniences on the pool.
    assert_eq!(count(&f.pool), 2);
    assert_settled(&f);
    assert_eq!(
        f.budget.snapshot().sync_side.opened_total,
        1,
        "one connection reused throughout"
    );
}

#[test]
fn a_panic_inside_a_guard_discards_the_connection_and_frees_its_unit() {
    let f = fixture("sync_panic", 2);
    let conn = f.pool.get().unwrap();
    let first_id = conn.connection_id();
    assert_eq!(f.budget.snapshot().sync_side.active, 1);

    let pool = f.pool.clone();
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let mut conn = conn;
        conn.query_drop("START TRANSACTION").unwrap();
        conn.exec_drop("INSERT INTO players (name) VALUES (?)", ("ghost",))
            .unwrap();
        panic!("handler bug");
    }));
    assert!(outcome.is_err());

    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::Cancelled), 1, "{snap}");
    assert_eq!(snap.in_use, 0, "the unit came back: {snap}");
    assert_eq!(f.pool.state().connections, 0);
    assert_settled(&f);

    // The server rolled the transaction back when the socket closed.
    let conn = pool.get().unwrap();
    assert_ne!(
        conn.connection_id(),
        first_id,
        "the panicked connection was not reused"
    );
    drop(conn);
    assert_eq!(count(&f.pool), 0);
    assert_settled(&f);
}

#[test]
fn an_uncommitted_transaction_is_rolled_back_on_drop() {
    let f = fixture("sync_rollback", 2);

    // Raw statements through DerefMut.
    let mut conn = f.pool.get().unwrap();
    let id = conn.connection_id();
    conn.query_drop("START TRANSACTION").unwrap();
    conn.exec_drop("INSERT INTO players (name) VALUES (?)", ("raw",))
        .unwrap();
    drop(conn);

    // Through the helpers.
    let mut conn = f.pool.get().unwrap();
    assert_eq!(
        conn.connection_id(),
        id,
        "rolled back and pooled, not closed"
    );
    conn.execute("BEGIN", ()).unwrap();
    conn.execute("INSERT INTO players (name) VALUES (?)", ("helper",))
        .unwrap();
    drop(conn);

    // An early return with `?` out of a function holding the guard.
    fn early_return(pool: &SyncPool) -> Result<(), DbError> {
        let mut conn = pool.get()?;
        conn.execute("START TRANSACTION", ())?;
        conn.execute("INSERT INTO players (name) VALUES (?)", ("early",))?;
        conn.execute("INSERT INTO no_such_table VALUES (1)", ())?;
        conn.execute("COMMIT", ())?;
        Ok(())
    }
    assert_eq!(early_return(&f.pool).unwrap_err().code(), Some(1146));

    assert_eq!(count(&f.pool), 0, "nothing was committed");
    let snap = f.budget.snapshot();
    assert_eq!(snap.sync_side.opened_total, 1, "{snap}");
    assert_eq!(snap.sync_side.closed_sum(), 0, "{snap}");
    assert_settled(&f);
}

#[test]
fn a_waiting_async_caller_gets_the_unit_of_an_idle_connection_at_once() {
    let f = fixture("sync_shrink", 1);
    drop(f.pool.get().unwrap()); // one idle connection holds the only unit
    assert_eq!(f.budget.in_use(), 1);

    let started = Instant::now();
    let unit = f
        .budget
        .acquire_blocking(Side::Async, started + Duration::from_secs(5))
        .expect("the sync side gave its idle connection back");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Yielded), 1);
    assert_eq!(f.pool.state().connections, 0);
    drop(unit);
    assert_settled(&f);
}

#[test]
fn a_connection_returned_while_the_async_side_waits_is_closed_not_pooled() {
    let f = fixture("sync_yield", 1);
    let conn = f.pool.get().unwrap();
    let budget = f.budget.clone();
    let waiter = thread::spawn(move || {
        budget
            .acquire_blocking(Side::Async, Instant::now() + Duration::from_secs(5))
            .map(drop)
    });
    // Once the async caller waits in the budget's queue, the sync side should yield.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.budget.should_yield(Side::Sync) {
        assert!(Instant::now() < deadline, "the async waiter never queued");
        thread::sleep(Duration::from_millis(5));
    }
    drop(conn);
    waiter
        .join()
        .unwrap()
        .expect("the returned connection's unit went to the waiter");
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Yielded), 1);
    assert_settled(&f);
}

#[test]
fn a_killed_idle_connection_fails_its_ping_and_is_replaced() {
    let f = fixture("sync_validate", 2);
    // Same database and budget, validation on every reuse.
    let pool = SyncPool::builder(f.url.clone(), f.budget.clone())
        .validation_bypass(Duration::ZERO)
        .build();
    let id = pool.get().unwrap().connection_id();
    f.server.sql(&format!("KILL {id}")).unwrap();
    thread::sleep(Duration::from_millis(50));
    let conn = pool.get().unwrap();
    assert_ne!(conn.connection_id(), id);
    drop(conn);
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Broken), 1);

    // Without validation, the statement meets the dead connection: ConnectionLost,
    // and the connection is closed on return.
    let id = f.pool.get().unwrap().connection_id();
    f.server.sql(&format!("KILL {id}")).unwrap();
    thread::sleep(Duration::from_millis(50));
    let mut conn = f.pool.get().unwrap();
    assert_eq!(conn.connection_id(), id);
    let lost = conn.fetch_one::<(i64,)>("SELECT 1", ());
    assert!(
        matches!(lost, Err(DbError::ConnectionLost { .. })),
        "{lost:?}"
    );
    drop(conn);
    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::Broken), 2, "{snap}");
    assert_eq!(
        snap.in_use,
        pool.state().connections + f.pool.state().connections
    );
}

#[test]
fn a_waiter_is_served_when_a_full_pool_closes_a_returned_connection() {
    // r2d2 wakes waiters only when a connection is pooled, not when one is destroyed;
    // with the pool at its size a waiter would sleep until its timeout.
    let f = fixture("sync_wake", 1);
    let conn = f.pool.get().unwrap();
    let pool = f.pool.clone();
    let waiter = thread::spawn(move || {
        let started = Instant::now();
        pool.get().map(|c| (started.elapsed(), c.connection_id()))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.budget.snapshot().sync_side.waiting == 0 {
        assert!(Instant::now() < deadline, "the waiter never waited");
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    let first_id = conn.connection_id();
    conn.discard(); // closed, not pooled
    let (waited, id) = waiter.join().unwrap().expect("the waiter was served");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    assert_ne!(id, first_id);
    assert_settled(&f);
}

#[test]
fn closing_the_pool_wakes_every_waiter_when_a_connection_comes_back() {
    let f = fixture("sync_close", 1);
    let conn = f.pool.get().unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = f.pool.clone();
            thread::spawn(move || {
                let started = Instant::now();
                (pool.get().map(drop), started.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.budget.snapshot().sync_side.waiting < 3 {
        assert!(Instant::now() < deadline, "the callers never waited");
        thread::sleep(Duration::from_millis(5));
    }
    f.pool.close();
    drop(conn); // closed on return, which wakes a waiter, which wakes the next
    for w in waiters {
        let (result, waited) = w.join().unwrap();
        assert!(matches!(result, Err(DbError::Closed)), "{result:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::PoolClosed), 1, "{snap}");
    assert_eq!(snap.in_use, 0, "{snap}");
    assert_eq!(snap.sync_side.active, 0, "{snap}");
}

#[test]
fn many_threads_on_a_small_budget_end_settled() {
    let f = fixture("sync_load", 3);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = f.pool.clone();
            thread::spawn(move || {
                for i in 0..40 {
                    let name = format!("p{t}_{i}");
                    match i % 4 {
                        // Committed.
                        0 => {
                            pool.execute("INSERT INTO players (name) VALUES (?)", (&name,))
                                .unwrap();
                        }
                        // Rolled back on drop.
                        1 => {
                            let mut conn = pool.get().unwrap();
                            conn.execute("BEGIN", ()).unwrap();
                            conn.execute("INSERT INTO players (name) VALUES (?)", (&name,))
                                .unwrap();
                        }
                        // A panic while holding the connection.
                        2 => {
                            let pool = pool.clone();
                            let r = catch_unwind(AssertUnwindSafe(move || {
                                let _conn = pool.get().unwrap();
                                panic!("boom");
                            }));
                            assert!(r.is_err());
                        }
                        // A transaction that fails.
                        _ => {
                            let r: Result<(), DbError> = pool.transaction(|tx| {
                                tx.execute("INSERT INTO players (name) VALUES (?)", (&name,))?;
                                Err(DbError::RowNotFound)
                            });
                            assert!(r.is_err());
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&f.pool), 8 * 10);
    let snap = f.budget.snapshot();
    assert!(snap.in_use <= 3, "{snap}");
    assert_eq!(closed(&snap, CloseReason::Cancelled), 8 * 10, "{snap}");
    assert_eq!(snap.sync_side.acquire_timeouts_total, 0, "{snap}");
    assert_settled(&f);
}

#[test]
fn dropping_the_pool_closes_its_idle_connections() {
    let f = fixture("sync_drop", 2);
    let conns = (f.pool.get().unwrap(), f.pool.get().unwrap());
    drop(conns);
    assert_eq!(f.pool.state().idle, 2);
    let Fixture { budget, pool, .. } = f;
    drop(pool);
    // An r2d2 background connect job may hold the pool for a moment longer; the last
    // holder closes the idle connections.
    let deadline = Instant::now() + Duration::from_secs(2);
    while budget.in_use() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let snap = budget.snapshot();
    assert_eq!(snap.in_use, 0, "{snap}");
    assert_eq!(snap.sync_side.idle, 0, "{snap}");
    assert_eq!(closed(&snap, CloseReason::PoolClosed), 2, "{snap}");
}

#[test]
fn the_legacy_shim_uses_the_installed_pool() {
    let f = fixture("sync_global", 2);
    let _installed = db_sync::install_global(f.pool.clone()).expect("first install");
    assert!(db_sync::install_global(f.pool.clone()).is_err());
    let mut conn = db_sync::get_database_connection().unwrap();
    let (one,): (i64,) = conn.fetch_one("SELECT 1", ()).unwrap();
    assert_eq!(one, 1);
    assert_eq!(f.budget.snapshot().sync_side.active, 1);
    drop(conn);
    assert_settled(&f);
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn the_async_waiter_thread_does_not_close_the_idle_connection_it_asks_for() {
    // `Shrink` must not block the thread that starts waiting (it may be a runtime
    // worker): the close, with its socket writes, happens elsewhere.
    let f = fixture("sync_shrink_thread", 1);
    drop(f.pool.get().unwrap()); // one idle connection holds the only unit
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Only this thread's events reach the subscriber.
    let unit = tracing::subscriber::with_default(subscriber, || {
        tracing::debug!("probe: the waiter thread logs here");
        f.budget
            .acquire_blocking(Side::Async, Instant::now() + Duration::from_secs(5))
    })
    .expect("the sync side gave its idle connection back");
    let text = logs.text();
    assert!(text.contains("probe: the waiter thread"), "{text}");
    assert!(
        !text.contains("closing a db-sync connection"),
        "the waiter's thread closed the connection itself:\n{text}"
    );
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Yielded), 1);
    assert_eq!(f.pool.state().connections, 0);
    drop(unit);
    assert_settled(&f);
}

/// Kills connection `id` from another session once it runs a statement.
fn kill_when_running(server: &'static Server, id: u32) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let command = server
                .sql(&format!(
                    "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = {id}"
                ))
                .unwrap();
            if command.contains("Query") || command.contains("Execute") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "connection {id} never ran its statement"
            );
            thread::sleep(Duration::from_millis(10));
        }
        server.sql(&format!("KILL CONNECTION {id}")).unwrap();
    })
}

#[test]
fn a_connection_killed_during_a_statement_is_closed_not_pooled() {
    let f = fixture("sync_kill", 2);

    // Through a helper: the server's "connection killed" error means the connection is gone.
    let mut conn = f.pool.get().unwrap();
    let id = conn.connection_id();
    let killer = kill_when_running(f.server, id);
    let lost = conn.fetch_one::<(i64,)>("SELECT SLEEP(30)", ());
    killer.join().unwrap();
    assert!(
        matches!(lost, Err(DbError::ConnectionLost { .. })),
        "{lost:?}"
    );
    drop(conn);
    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::Broken), 1, "{snap}");
    assert_eq!(f.pool.state().connections, 0, "{snap}");

    // Raw: the guard does not see the error, and still must not pool the connection.
    let mut conn = f.pool.get().unwrap();
    let id = conn.connection_id();
    let killer = kill_when_running(f.server, id);
    let raw = conn.query_drop("SELECT SLEEP(30)");
    killer.join().unwrap();
    assert!(raw.is_err(), "{raw:?}");
    drop(conn);
    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::Broken), 2, "{snap}");
    assert_eq!(f.pool.state().connections, 0, "{snap}");

    let mut conn = f.pool.get().unwrap();
    assert_ne!(conn.connection_id(), id);
    let (v,): (i64,) = conn.fetch_one("SELECT 5", ()).unwrap();
    assert_eq!(v, 5);
    drop(conn);
    assert_settled(&f);
}

#[test]
fn statements_slower_than_the_connect_timeout_are_not_cut() {
    // The handshake, ping and ROLLBACK bound (the connect timeout) must not leak into
    // statements: each of these runs right after one of those exchanges.
    let f = fixture("sync_slow", 2);
    let pool = SyncPool::builder(f.url.clone(), f.budget.clone())
        .connect_timeout(Duration::from_millis(500))
        .validation_bypass(Duration::ZERO)
        .build();
    let mut conn = pool.get().unwrap(); // after the handshake
    let (slept,): (i64,) = conn.fetch_one("SELECT SLEEP(1.5)", ()).unwrap();
    assert_eq!(slept, 0);
    conn.query_drop("DO 1").unwrap(); // raw access: the drop sends the ROLLBACK
    drop(conn);
    let mut conn = pool.get().unwrap(); // after the ping
    let id = conn.connection_id();
    let raw: Option<i64> = conn.query_first("SELECT SLEEP(1.5)").unwrap();
    assert_eq!(raw, Some(0));
    drop(conn);
    let snap = f.budget.snapshot();
    assert_eq!(
        snap.sync_side.opened_total, 1,
        "one connection throughout: {snap}"
    );
    assert_eq!(snap.sync_side.closed_sum(), 0, "{snap}");
    assert_eq!(pool.get().unwrap().connection_id(), id);
}
