//! Tenth adversarial round: connections a caller gives up on, and reaps that are asked
//! for at an awkward moment. Each test failed on the code it was written against.
//!
//! 1. A reap asked for while something holds the async pool's queue lock (a metrics
//!    reader polling `idle_count()`). `Shrink::reap_lingering` must not wait for the
//!    lock; it skipped the reap and nothing asked again, so a quiet pool left the
//!    cut-off session running, unkilled, beside a connection opened on its unit (the
//!    server counted 3 for a budget of 2 and refused logins). Now a task looks again,
//!    and the pool's reaper tick reaps whatever is still to end. Failed every run
//!    before (`ADV10_NO_SPIN=1`, the control without the lock holder, passed).
//! 2. Connects given up midway (the acquire's future dropped): the half-open connection
//!    was dropped and its unit returned at once while the server still counted the
//!    socket. Now the connect runs in a task of its own and its connection is pooled.
//!    Failed 19 of 20 runs before (`ADV10_NO_CUT=1`, the control, passed).
//! 3. Waiters given up while a connection is handed to them (or while it is pinged):
//!    the connection was dropped with the waiter's place. Now the place pools it again,
//!    and a ping given up shuts it as cut off. Failed 1 run in 5 under load before.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use db_async::{AsyncPool, args};
use integration_tests::tight::TightServer;
use integration_tests::{budget, eventually, runtime};

fn still_running(tight: &TightServer, id: u64) -> bool {
    let out = tight
        .server
        .sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"
        ))
        .expect("processlist");
    out.split_whitespace().any(|w| w == "1")
}

/// One thread polls `idle_count()` (a metrics exporter's gauge, say), which takes the
/// queue lock; a cut-off connection's reap request that meets the lock held is dropped.
#[test]
fn a_cut_off_session_whose_reap_met_the_queue_lock_is_never_killed_while_the_pool_idles() {
    let mut tight = TightServer::start("adv10_skip", 2);
    let rt = runtime();
    let budget = budget(2);
    let pool = {
        let _e = rt.enter();
        AsyncPool::builder(tight.db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(5))
            // No server-side limit (`DB_STATEMENT_TIMEOUT=0`): a kill ends it, or MariaDB's
            // own check of a sleeping session's socket (every 5 s inside `SLEEP`).
            .statement_timeout(Duration::ZERO)
            .build()
    };
    tight.arm();
    let mut skipped = None;
    let mut trials = 0;
    rt.block_on(async {
        for _ in 0..80 {
            trials += 1;
            // Arrange: two connections, one idle (to reap over), one about to be cut off.
            let mut a = pool.acquire().await.expect("first");
            let b = pool.acquire().await.expect("second");
            drop(b);
            assert!(
                eventually(Duration::from_secs(2), || pool.idle_count() == 1),
                "one idle"
            );
            let (id,): (u64,) = a
                .fetch_one("SELECT CONNECTION_ID()", args![])
                .await
                .expect("id");
            // A gauge polled on another thread.
            let stop = Arc::new(AtomicBool::new(false));
            let spinner = {
                let (stop, pool) = (stop.clone(), pool.clone());
                let off = std::env::var_os("ADV10_NO_SPIN").is_some();
                std::thread::spawn(move || {
                    while !off && !stop.load(Relaxed) {
                        std::hint::black_box(pool.idle_count());
                    }
                })
            };
            // Act: a statement cut off by its caller's timeout.
            let _ = tokio::time::timeout(
                Duration::from_millis(30),
                a.fetch_one::<(i64,)>("SELECT SLEEP(25)", args![]),
            )
            .await;
            drop(a);
            let cut = Instant::now();
            tokio::time::sleep(Duration::from_millis(150)).await;
            stop.store(true, Relaxed);
            spinner.join().unwrap();
            if budget.sessions_to_end() == 0 {
                continue; // reaped: killed and seen gone
            }
            // Past the unit's deadline, with an idle connection all along.
            tokio::time::sleep(Duration::from_millis(1500).saturating_sub(cut.elapsed())).await;
            if still_running(&tight, id) {
                let row = tight
                    .server
                    .sql(&format!(
                        "SELECT COMMAND, TIME, STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = {id}"
                    ))
                    .unwrap_or_default();
                let snap = budget.snapshot();
                let idle = pool.idle_count();
                // The unit is free: a caller takes it and the server counts three.
                let before = tight.refused();
                let c1 = pool.acquire().await;
                let t2 = Instant::now();
                let c2 = pool.acquire().await;
                let c2_took = t2.elapsed();
                let refused_now = tight.refused() - before;
                skipped = Some(format!(
                    "session {id} still runs {:?} after its cut-off ({});  idle {idle}; \
                     lingering {} sessions_to_end {} in_use {}; two acquires: {:?} / {:?}, \
                     the second after {c2_took:?} and {refused_now} logins refused (ERROR 1040) \
                     for a budget of 2 on a server with 2 slots left",
                    cut.elapsed(),
                    row.trim(),
                    snap.lingering,
                    budget.sessions_to_end(),
                    snap.in_use,
                    c1.as_ref().map(|_| "ok").map_err(ToString::to_string),
                    c2.as_ref().map(|_| "ok").map_err(ToString::to_string),
                ));
                drop((c1, c2));
                break;
            }
        }
    });
    let refused = tight.refused();
    assert!(
        skipped.is_none(),
        "trial {trials}: a cut-off session was left running, unkilled, after its unit came \
         back, although the pool had an idle connection: {}; refused logins {refused}",
        skipped.unwrap_or_default()
    );
}

/// Callers that give up while their connect is under way (a request's own timeout, a
/// client gone): the half-open connection is dropped and its unit returns at once
/// (`crates/db-async/src/pool/connect.rs`: no `Unit::quits`, no linger), while the
/// server still counts the accepted socket until its thread notices the close. The
/// next caller connects on that unit into the server's count.
#[test]
fn connects_given_up_midway_hand_their_unit_on_while_the_server_still_counts_them() {
    let mut tight = TightServer::start("adv10_cxl", 2);
    let rt = runtime();
    let budget = budget(2);
    let pool = {
        let _e = rt.enter();
        AsyncPool::builder(tight.db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(5))
            // Every return closes (and lingers, `MaxLifetime`): each caller connects.
            .max_lifetime(Duration::from_millis(1))
            .build()
    };
    tight.arm();
    let errors_before = tight
        .server
        .global_status("Connection_errors_max_connections")
        .expect("status");
    let (mut given_up, mut served) = (0u32, 0u32);
    rt.block_on(async {
        for round in 0..150u64 {
            let tasks: Vec<_> = (0..6u64)
                .map(|i| {
                    let pool = pool.clone();
                    // 0.3–6 ms: most land inside the connect, some after it.
                    let cut = Duration::from_micros(300 + (round * 6 + i) * 7919 % 5700)
                        + if std::env::var_os("ADV10_NO_CUT").is_some() {
                            Duration::from_secs(3) // the control: nobody gives up
                        } else {
                            Duration::ZERO
                        };
                    tokio::spawn(async move {
                        tokio::time::timeout(cut, async {
                            let mut c = pool.acquire().await?;
                            c.execute("SELECT 1", args![]).await.map(|_| ())
                        })
                        .await
                    })
                })
                .collect();
            for t in tasks {
                match t.await.unwrap() {
                    Err(_) => given_up += 1,
                    Ok(_) => served += 1,
                }
            }
        }
    });
    let snap = budget.snapshot();
    drop(pool);
    assert!(
        eventually(Duration::from_secs(10), || budget.in_use() == 0),
        "a unit was lost: {snap}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let ours = tight.max_used_of_ours();
    let at_accept = tight
        .server
        .global_status("Connection_errors_max_connections")
        .expect("status")
        - errors_before;
    assert!(
        ours <= 2 && at_accept == 0,
        "{given_up} callers gave up, {served} served, {} connects: the server counted {ours} \
         of ours for a budget of 2, refused {at_accept} at accept (refused or aborted logins \
         {})",
        snap.async_side.opened_total,
        tight.refused()
    );
}

/// Callers that give up while waiting for a connection another caller returns: a
/// connection sent to a waiter that is cancelled before it reads it (`acquire.rs`, the
/// `handed` channel), or one being pinged for it (`fit`), is dropped with the waiter's
/// future: a `Slot` has no farewell of its own, so the socket closes without `COM_QUIT`
/// and the unit returns at once, while the server still counts the session. Long
/// lifetimes: nothing closes but what the cancellations drop.
#[test]
fn waiters_given_up_while_a_connection_is_handed_to_them_drop_it_into_the_server_s_count() {
    let mut tight = TightServer::start("adv10_hand", 2);
    let rt = runtime();
    let budget = budget(2);
    let pool = {
        let _e = rt.enter();
        AsyncPool::builder(tight.db.url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(5))
            .build()
    };
    // The counters reset with nothing of ours open (`FLUSH STATUS` sets the peak to the
    // sessions open then, its own among them); both connections open before the load:
    // none is needed afterwards.
    tight.arm();
    rt.block_on(async {
        let both = futures_util::future::try_join_all((0..2).map(|_| pool.acquire()))
            .await
            .expect("two connections");
        drop(both);
    });
    assert!(eventually(Duration::from_secs(5), || pool.idle_count() == 2));
    let (mut given_up, mut served) = (0u32, 0u32);
    rt.block_on(async {
        for round in 0..300u64 {
            let tasks: Vec<_> = (0..8u64)
                .map(|i| {
                    let pool = pool.clone();
                    let cut = Duration::from_micros(200 + (round * 8 + i) * 7919 % 3000);
                    tokio::spawn(async move {
                        // Only the wait is given up; a statement is never cut off.
                        let mut c = tokio::time::timeout(cut, pool.acquire()).await?.unwrap();
                        c.execute("SELECT 1", args![]).await.unwrap();
                        Ok::<(), tokio::time::error::Elapsed>(())
                    })
                })
                .collect();
            for t in tasks {
                match t.await.unwrap() {
                    Err(_) => given_up += 1,
                    Ok(_) => served += 1,
                }
            }
        }
    });
    let snap = budget.snapshot();
    drop(pool);
    assert!(
        eventually(Duration::from_secs(10), || budget.in_use() == 0),
        "a unit was lost: {snap}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let ours = tight.max_used_of_ours();
    assert!(
        ours <= 2,
        "{given_up} callers gave up, {served} served, {} connects, closes {:?}: the server \
         counted {ours} of ours for a budget of 2 (refused or aborted logins {})",
        snap.async_side.opened_total,
        snap.async_side.closed_total,
        tight.refused()
    );
}
