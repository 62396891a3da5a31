//! Fourth adversarial round: bulkheads (`DB_BULKHEADS`, with `DB_MAX_WAITERS`), statement
//! timeouts and the idle housekeeping, attacked from outside through the public APIs:
//! module handles (`for_module`) on both pools, closing the pool or the budget while
//! callers wait in a bulkhead, cancellation and panics while holding, per-statement
//! overrides after errors, and `KILL` from another session.
//!
//! A test here that fails is a finding, reported with its diagnosis; none is weakened to
//! pass.

mod bulkheads;
mod housekeeping;
mod timeouts;

use std::time::Duration;

use db_async::AsyncPool;
use db_budget::{Budget, parse_bulkheads};
use db_sync::SyncPool;
use integration_tests::{Server, TestDb, budget};

/// A budget of `units` divided into the bulkheads of `spec` (the `DB_BULKHEADS` grammar).
fn budget_with(units: u32, spec: &str) -> Budget {
    let b = budget(units);
    b.set_bulkheads(&parse_bulkheads(spec, units).expect("a valid DB_BULKHEADS"));
    b
}

/// A fresh database on this process's private server.
fn database(prefix: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    (server, TestDb::create(server, prefix))
}

/// Both pools on `budget`, idle connections kept for a minute, the given pool timeout.
/// Call inside the runtime the async pool is to use.
fn pools(db: &TestDb, budget: &Budget, pool_timeout: Duration) -> (AsyncPool, SyncPool) {
    let apool = AsyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(Duration::from_secs(60))
        .pool_timeout(pool_timeout)
        .build();
    let spool = SyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(Duration::from_secs(60))
        .pool_timeout(pool_timeout)
        .build();
    (apool, spool)
}
