//! Connections the server ends (a killed idle one fails its ping, a kill during a
//! statement), and statements slower than the connect timeout, which are not cut.

use std::thread;
use std::time::{Duration, Instant};

use db_budget::{CloseReason, DbError};
use db_sync::SyncPool;
use db_sync::mysql::prelude::Queryable;
use mariadb_harness::Server;

use crate::{assert_settled, closed, fixture};

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
