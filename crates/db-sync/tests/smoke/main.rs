//! The blocking pool against a real, private MariaDB (`mariadb-harness`; never the
//! machine's server): helpers, rollback on drop, panics, and the budget afterwards.
//!
//! One module per concern: `guard` (helpers through the guard, panics, rollback on
//! drop), `handover` (units for a waiting async caller), `waiters` (waiters served and
//! woken, many threads, dropping the pool, the legacy shim), `killed` (connections the
//! server ends: a failed ping, a kill mid-statement, and slow statements that are not
//! cut). The fixture is here.

#[path = "../support/mod.rs"]
mod support;

mod guard;
mod handover;
mod killed;
mod waiters;

use std::time::Duration;

use db_budget::{Budget, DatabaseUrl};
use db_sync::SyncPool;
use mariadb_harness::Server;
use support::closed;

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

/// Units in use equal the pool's open connections, nothing is checked out, and the
/// idle gauge matches the pool.
/// Every unit of the budget is an idle connection of the pool, once the pool's own
/// background work is done: r2d2 replaces a closed connection on a thread of its own, so
/// right after the callers return a unit may belong to a connect still on its way into
/// the pool (counted in `held` and `opened_total`, not yet in `state().connections`).
/// Waits up to 5 s for that, then asserts.
fn assert_settled(f: &Fixture) {
    let consistent = |snap: &db_budget::Snapshot, state: &db_sync::PoolState| {
        snap.in_use == state.connections
            && snap.sync_side.held == state.connections
            && state.idle == state.connections
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !consistent(&f.budget.snapshot(), &f.pool.state()) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let snap = f.budget.snapshot();
    let state = f.pool.state();
    assert_eq!(snap.in_use, state.connections, "{snap:?}\n{state:?}");
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
