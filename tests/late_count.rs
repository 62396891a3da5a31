//! The server's late count of closed connections. MariaDB counts a session against
//! `max_connections` until its thread has torn it down, a moment after the client saw
//! the socket close. A unit handed to a waiter the instant its connection closed would
//! open a connection into that moment, and the server would count one more than the
//! budget: with `max_connections` at the budget, ERROR 1040 (`Unit::quits`, `linger.rs`).
//!
//! The load here makes hand-overs as often as the policy allows: the two sides take turns
//! every 60 ms, so the side whose turn ended goes quiet (20 ms) and its idle connections
//! go to the other side's waiters at once (I2), dozens of times a second. The judge is
//! the server: its `Max_used_connections` and its refused logins, with every slot but the
//! budget's held by idle sessions of another process.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{CloseReason, Side};
use db_sync::SyncPool;
use integration_tests::tight::{TightServer, assert_units_back};
use integration_tests::{budget, runtime};

/// How long each side's turn lasts: longer than the quiet time (20 ms), so the side
/// whose turn ended gives up its idle connections.
const TURN: Duration = Duration::from_millis(60);

/// What a run of turns left behind, read from the server and the budget.
struct Outcome {
    /// `Max_used_connections` less the held slots: the most the server counted of ours
    /// (and of the one status reader, which runs when nothing of ours is open).
    max_used: u64,
    /// Logins refused for want of a slot, and connects refused at accept.
    refused: u64,
    /// Connections closed to hand their unit to the other side.
    yielded: u64,
    statements: u64,
}

/// Whether `side` has its turn at `elapsed` since the start.
fn turn_of(side: Side, elapsed: Duration) -> bool {
    let odd = (elapsed.as_millis() / TURN.as_millis()) % 2 == 1;
    odd == (side == Side::Sync)
}

/// Runs `secs` seconds of turns with a budget of `units` against a server whose slots,
/// but for `units`, are held by idle sessions.
fn turns(prefix: &str, units: u32, callers: usize, secs: u64) -> Outcome {
    let mut tight = TightServer::start(prefix, units);
    let db = &tight.db;
    let rt = runtime();
    let budget = budget(units);
    let (apool, spool) = {
        let _enter = rt.enter();
        let apool = AsyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(10))
            .build();
        let spool = SyncPool::builder(db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(10))
            .build();
        (apool, spool)
    };
    tight.arm();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (apool, stop) = (apool.clone(), stop.clone());
            rt.spawn(async move {
                let mut done = 0u64;
                while !stop.load(Relaxed) {
                    if !turn_of(Side::Async, start.elapsed()) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    let mut c = apool.acquire().await.expect("async checkout");
                    c.execute("SELECT 1", db_async::args![])
                        .await
                        .expect("async select");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (spool, stop) = (spool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = 0u64;
                while !stop.load(Relaxed) {
                    if !turn_of(Side::Sync, start.elapsed()) {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    let mut c = spool.get().expect("blocking checkout");
                    c.execute("SELECT 1", ()).expect("blocking select");
                    done += 1;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Relaxed);
    let mut statements: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    statements += rt.block_on(async {
        let mut n = 0;
        for t in tasks {
            n += t.await.expect("task");
        }
        n
    });
    let snap = budget.snapshot();
    let yielded = [snap.async_side, snap.sync_side]
        .iter()
        .flat_map(|s| s.closed_total.iter())
        .filter(|(reason, _)| *reason == CloseReason::Yielded)
        .map(|(_, n)| n)
        .sum();
    // Everything of ours closed before the server is asked (its reader takes a slot).
    drop((apool, spool));
    assert_units_back(prefix, &budget);
    let outcome = Outcome {
        max_used: tight.max_used_of_ours(),
        refused: tight.refused(),
        yielded,
        statements,
    };
    tight.release();
    println!(
        "{prefix}: budget {units}, {statements} statements, {yielded} hand-overs, \
         Max_used_connections {} of ours, {} refused",
        outcome.max_used, outcome.refused
    );
    outcome
}

#[test]
fn connections_handed_over_every_few_milliseconds_are_never_counted_beyond_the_budget() {
    // Arrange and act: a budget of 4 with exactly 4 slots of the server left, the two
    // sides taking turns every 60 ms for 8 s (8 callers a side).
    let out = turns("late_count_four", 4, 8, 8);

    // Assert: the load handed connections over again and again, yet the server never
    // counted more than the budget and refused nobody.
    assert!(
        out.yielded >= 40 && out.statements > 0,
        "too few hand-overs to prove anything: {} ({} statements)",
        out.yielded,
        out.statements
    );
    assert!(
        out.max_used <= 4 && out.refused == 0,
        "the server counted {} of ours for a budget of 4 and refused {} logins \
         ({} hand-overs)",
        out.max_used,
        out.refused,
        out.yielded
    );
}
