//! Third adversarial round: the allocation policy (shares with hysteresis instead of a
//! per-request hand-over) and load shedding (`DB_MAX_WAITERS`), attacked from outside
//! with load shapes the authors' own tests do not try: a side whose callers pause longer
//! than the quiet time, a side with one slow caller sitting on idle connections, a budget
//! of one, and many callers racing for the last places in the waiting line.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{Budget, DbError, Snapshot};
use db_sync::SyncPool;
use integration_tests::reuse::{finish, load};
use integration_tests::{
    MIN_MAX_CONNECTIONS, Server, ServerOptions, TestDb, budget, eventually, init_tracing, oracle,
    runtime,
};

/// Long enough that an idle timeout never closes anything during a test.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn pools(
    rt: &tokio::runtime::Runtime,
    db: &TestDb,
    budget: &Budget,
    pool_timeout: Duration,
) -> (AsyncPool, SyncPool) {
    let _enter = rt.enter();
    let apool = AsyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(IDLE_TIMEOUT)
        .pool_timeout(pool_timeout)
        .build();
    let spool = SyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(IDLE_TIMEOUT)
        .pool_timeout(pool_timeout)
        .build();
    (apool, spool)
}

fn opened(s: &Snapshot) -> u64 {
    s.async_side.opened_total + s.sync_side.opened_total
}

/// Runs `load` for a warm-up second, then three measured seconds; returns the
/// connects during those three seconds and the statements each side ran in all.
fn connects_under(
    prefix: &str,
    units: u32,
    asyncs: (usize, Duration),
    syncs: (usize, Duration),
) -> (u64, u64, u64) {
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, prefix);
    let rt = runtime();
    let budget = budget(units);
    let (apool, spool) = pools(&rt, &db, &budget, Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&rt, (&apool, &spool), asyncs, syncs, &stop);
    std::thread::sleep(Duration::from_secs(1));
    let before = budget.snapshot();
    let mut shares = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        shares.push(budget.share(db_budget::Side::Sync));
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = budget.snapshot();
    let (a, s) = finish(&rt, &stop, workers);
    let connects = opened(&after) - opened(&before);
    println!(
        "{prefix}: {a} async + {s} blocking statements, {connects} connects in 3 s; sync \
         share every 20 ms: {shares:?}"
    );
    (connects, a, s)
}

#[test]
fn a_steady_side_whose_callers_pause_longer_than_the_quiet_time_does_not_reconnect_per_request() {
    // Arrange: the async side saturates a budget of 4 (12 tasks, 1 ms think time); the
    // blocking side is one thread making a request every 60 ms: steady, but each pause is
    // longer than the controller's quiet time (20 ms).
    // Act: three seconds of that load, after a warm-up second.
    let (connects, async_done, sync_done) = connects_under(
        "adv3_flap",
        4,
        (12, Duration::from_millis(1)),
        (1, Duration::from_millis(60)),
    );

    // Assert: the same bound the authors' steady-load test uses (14 connects in 3 s);
    // one reconnect per blocking request would be ~50 blocking requests → ~100 connects.
    assert!(
        async_done > 100 && sync_done > 20,
        "{async_done} / {sync_done}"
    );
    assert!(
        connects <= 14,
        "{connects} connects in 3 s for {sync_done} blocking requests (all in 4 s): a side \
         flapping between quiet and busy hands its unit over on every request"
    );
}

#[test]
fn with_a_budget_of_one_steady_mixed_load_does_not_reconnect_per_request() {
    // Arrange: both sides keep a budget of 1 busy (4 callers each, 1 ms think time).
    // Act: three seconds of that load.
    let (connects, async_done, sync_done) = connects_under(
        "adv3_one",
        1,
        (4, Duration::from_millis(1)),
        (4, Duration::from_millis(1)),
    );

    // Assert: at most one connect per 250 ms share step plus a few, as for larger budgets.
    assert!(
        async_done > 20 && sync_done > 20,
        "{async_done} / {sync_done}"
    );
    assert!(
        connects <= 14,
        "{connects} connects in 3 s for {} requests: budget 1 takes turns per request",
        async_done + sync_done
    );
}

#[test]
fn idle_connections_of_a_side_with_two_unhurried_callers_reach_a_waiting_side_within_milliseconds()
{
    // Arrange: the blocking side opens all 8 connections, then two blocking threads keep
    // using two of them (a request each, then 1 ms of thinking), so 6 sit idle in its
    // pool and nobody on that side waits.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "adv3_idle");
    let rt = runtime();
    let units = 8;
    let budget = budget(units);
    let (apool, spool) = pools(&rt, &db, &budget, Duration::from_secs(10));
    let barrier = Arc::new(Barrier::new(units as usize));
    let fill: Vec<_> = (0..units)
        .map(|_| {
            let (spool, barrier) = (spool.clone(), barrier.clone());
            std::thread::spawn(move || {
                let conn = spool.get().expect("blocking checkout");
                barrier.wait();
                drop(conn);
            })
        })
        .collect();
    for t in fill {
        t.join().unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(
        &rt,
        (&apool, &spool),
        (0, Duration::ZERO),
        (2, Duration::from_millis(1)),
        &stop,
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = budget.snapshot();
    assert_eq!(before.sync_side.held, units, "{before:?}");
    assert!(before.sync_side.idle >= units - 2, "{before:?}");

    // Act: four async callers each need a connection at the same moment.
    let wanted = 4;
    let took = rt.block_on(async {
        let started = Instant::now();
        let barrier = Arc::new(tokio::sync::Barrier::new(wanted));
        let tasks: Vec<_> = (0..wanted)
            .map(|_| {
                let (apool, barrier) = (apool.clone(), barrier.clone());
                tokio::spawn(async move {
                    let conn = apool.acquire().await.expect("async checkout");
                    let leader = barrier.wait().await.is_leader();
                    drop(conn);
                    leader.then(|| started.elapsed())
                })
            })
            .collect();
        let mut took = None;
        for t in tasks {
            took = took.or(t.await.unwrap());
        }
        took.expect("one task leads")
    });
    let after = budget.snapshot();
    finish(&rt, &stop, workers);
    println!(
        "idle hand-over: {took:?}; shares now {} / {}",
        after.async_side.share, after.sync_side.share
    );

    // Assert: the bound for a waiting side while the other is (all but) idle is
    // 50 ms; the authors' own hand-over test allows 100 ms.
    assert!(
        took <= Duration::from_millis(100),
        "four async callers waited {took:?} for connections while the blocking side held \
         {} idle ones and had nobody waiting; shares now {} / {}",
        before.sync_side.idle,
        after.async_side.share,
        after.sync_side.share
    );
}

/// Holds every unit of `budget` until dropped.
fn hold_everything(budget: &Budget) -> Vec<db_budget::Unit> {
    (0..budget.capacity())
        .map(|_| {
            budget
                .try_acquire(db_budget::Side::Async)
                .expect("a free unit")
        })
        .collect()
}

#[test]
fn blocking_callers_racing_past_the_waiter_limit_are_shed_at_once_and_counted_once() {
    // Arrange: a budget of 2, all units held elsewhere, at most 5 blocking waiters; the
    // pool timeout is 1 s.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "adv3_shed_sync");
    let rt = runtime();
    let budget = budget(2);
    budget.set_max_waiters(Some(5));
    let (_apool, spool) = pools(&rt, &db, &budget, Duration::from_secs(1));
    let held = hold_everything(&budget);

    // Act: 40 threads call get() at the same moment.
    let callers = 40;
    let barrier = Arc::new(Barrier::new(callers));
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (spool, barrier) = (spool.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let started = Instant::now();
                let r = spool.get().map(drop);
                (r, started.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let snap = budget.snapshot();
    drop(held);

    // Assert: exactly 5 waited (and timed out), the other 35 were shed quickly, each
    // counted once; nothing is left waiting and nothing was taken.
    let shed: Vec<_> = results
        .iter()
        .filter(|(r, _)| matches!(r, Err(DbError::Shed { .. })))
        .collect();
    let timed_out = results
        .iter()
        .filter(|(r, _)| matches!(r, Err(DbError::PoolTimeout { .. })))
        .count();
    assert_eq!((shed.len(), timed_out), (35, 5), "{results:?}");
    assert!(
        shed.iter().all(|(_, t)| *t < Duration::from_millis(500)),
        "shed ones return at once"
    );
    assert_eq!(snap.sync_side.acquire_shed_total, 35, "{snap:?}");
    assert_eq!(snap.sync_side.waiting, 0, "{snap:?}");
    assert_eq!(snap.sync_side.held, 0, "{snap:?}");
    assert_eq!(snap.in_use, 2);
}

#[test]
fn async_callers_racing_past_the_waiter_limit_are_shed_and_a_cancelled_waiter_frees_its_place() {
    // Arrange: a budget of 2, all units held elsewhere, at most 5 async waiters.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "adv3_shed_async");
    let rt = runtime();
    let budget = budget(2);
    budget.set_max_waiters(Some(5));
    let (apool, _spool) = pools(&rt, &db, &budget, Duration::from_secs(10));
    let held = hold_everything(&budget);

    rt.block_on(async {
        // Act: 40 tasks acquire at once; the admitted ones are cancelled afterwards.
        let barrier = Arc::new(tokio::sync::Barrier::new(40));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (apool, barrier) = (apool.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    apool.acquire().await.map(drop)
                })
            })
            .collect();
        assert!(
            eventually(Duration::from_secs(5), || tasks
                .iter()
                .filter(|t| t.is_finished())
                .count()
                == 35),
            "35 shed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let snap = budget.snapshot();
        assert_eq!(
            (snap.async_side.waiting, snap.async_side.acquire_shed_total),
            (5, 35),
            "{snap:?}"
        );
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            if let Ok(r) = t.await {
                assert!(matches!(r, Err(DbError::Shed { .. })), "{r:?}");
            }
        }

        // Assert: the cancelled waiters left; five new callers are admitted again.
        let snap = budget.snapshot();
        assert_eq!(snap.async_side.waiting, 0, "{snap:?}");
        assert_eq!(snap.async_side.held, 2, "only the held units: {snap:?}");
        let again: Vec<_> = (0..5)
            .map(|_| {
                let apool = apool.clone();
                tokio::spawn(async move { apool.acquire().await.map(drop) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(budget.snapshot().async_side.acquire_shed_total, 35);
        drop(held);
        for t in again {
            t.await.unwrap().expect("admitted and served");
        }
    });
}

#[test]
fn blocking_callers_get_a_unit_before_their_pool_timeout_while_one_slow_statement_holds_their_share()
 {
    // Arrange: 64 async tasks saturate a budget of 8 with quick statements; on the
    // blocking side one thread runs a 2 s statement in a loop and three threads make
    // quick requests with a 1 s pool timeout.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "adv3_starve");
    let rt = runtime();
    let budget = budget(8);
    let (apool, _) = pools(&rt, &db, &budget, Duration::from_secs(10));
    let (_, spool) = pools(&rt, &db, &budget, Duration::from_secs(1));
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(
        &rt,
        (&apool, &spool),
        (64, Duration::ZERO),
        (0, Duration::ZERO),
        &stop,
    );
    std::thread::sleep(Duration::from_millis(500));
    let slow = {
        let (spool, stop) = (spool.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let mut c = spool.get().expect("slow caller's checkout");
                c.execute("DO SLEEP(2)", ()).expect("slow statement");
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // Act: the quick blocking callers run for four seconds.
    let quick: Vec<_> = (0..3)
        .map(|_| {
            let spool = spool.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(4);
                let (mut ok, mut timed_out) = (0, 0);
                while Instant::now() < until {
                    match spool.get() {
                        Ok(mut c) => {
                            c.execute("SELECT 1", ()).expect("quick select");
                            ok += 1;
                        }
                        Err(DbError::PoolTimeout { .. }) => timed_out += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                (ok, timed_out)
            })
        })
        .collect();
    let results: Vec<(u32, u32)> = quick.into_iter().map(|t| t.join().unwrap()).collect();
    let snap = budget.snapshot();
    finish(&rt, &stop, workers);
    slow.join().unwrap();

    // Assert: no quick blocking caller timed out while the async side cycled 7 units.
    let timed_out: u32 = results.iter().map(|r| r.1).sum();
    assert_eq!(
        timed_out, 0,
        "quick blocking callers (ok, timed out): {results:?}; shares {} / {}, held {} / {}",
        snap.async_side.share, snap.sync_side.share, snap.async_side.held, snap.sync_side.held
    );
}

#[test]
fn odd_and_small_budgets_under_steady_mixed_load_do_not_reconnect_per_request() {
    // Arrange and act: for budgets of 2, 3 and 5, twelve async tasks and three blocking
    // threads, all pausing 1 ms between requests, for three seconds after a warm-up.
    let mut seen = Vec::new();
    for units in [2, 3, 5] {
        let (connects, a, s) = connects_under(
            &format!("adv3_odd{units}"),
            units,
            (12, Duration::from_millis(1)),
            (3, Duration::from_millis(1)),
        );
        seen.push((units, connects, a, s));
    }

    // Assert: the bound of the authors' steady-load test, for each budget.
    assert!(
        seen.iter()
            .all(|&(_, connects, a, s)| connects <= 14 && a > 100 && s > 100),
        "(budget, connects, async, blocking): {seen:?}"
    );
}

#[test]
fn a_side_whose_waits_depend_on_its_share_does_not_make_the_shares_oscillate() {
    // Arrange: a budget of 16; 16 async tasks never pause; 8 blocking threads each run a
    // 10 ms statement then pause 10 ms, so how long they wait (their demand) depends on
    // the share they are given.
    init_tracing();
    let server = Server::shared();
    let db = TestDb::create(server, "adv3_feedback");
    let rt = runtime();
    let budget = budget(16);
    let (apool, spool) = pools(&rt, &db, &budget, Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let (tasks, _) = load(
        &rt,
        (&apool, &spool),
        (16, Duration::ZERO),
        (0, Duration::ZERO),
        &stop,
    );
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (spool, stop) = (spool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while !stop.load(Relaxed) {
                    let mut c = spool.get().expect("blocking checkout");
                    c.execute("DO SLEEP(0.01)", ()).expect("blocking statement");
                    drop(c);
                    done += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // Act: sample the shares every 20 ms for four seconds.
    let before = budget.snapshot();
    let mut shares = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        shares.push(budget.share(db_budget::Side::Sync));
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = budget.snapshot();
    let (a, s) = finish(&rt, &stop, (tasks, threads));

    // Assert: a one-unit move at most once per step (250 ms; 16 in 4 s, one more where
    // the sampling window, a little over 4 s, cuts a step), and now and then a surplus
    // of two or more given up at once between steps (`allocation/controller.rs`: an
    // unhurried side gives its surplus at once): at most 20 moves. A unit that changes
    // side costs a close and an open, and idle units also cross at once while the
    // blocking threads pause (I2), so the connects are bounded by two per move (40),
    // not tied to each move: instead of a connect per request (2,300 blocking requests
    // here), and within the goal of two per 1,000 requests.
    let moves = shares.windows(2).filter(|w| w[0] != w[1]).count();
    let connects = opened(&after) - opened(&before);
    println!("feedback: {a} async + {s} blocking, {connects} connects, sync shares {shares:?}");
    assert!(
        moves <= 20 && connects <= 40 && connects * 1000 <= 2 * (a + s),
        "{moves} share moves and {connects} connects in 4 s ({a} async + {s} blocking \
         requests); sync share samples {shares:?}"
    );
}

/// Runs `load` for five seconds against a private server that leaves the application
/// the budget + 1 connections (the set-up: no reserve) under the oracle shim;
/// returns the oracle's maximum, the connects the server refused (ERROR 1040 at accept,
/// and logins refused, which count as `Aborted_connects`), its `Max_used_connections`
/// beside the held slots, and the connects and requests made.
///
/// MariaDB takes no `max_connections` below 10 (it raises a smaller one without a
/// word), so the server has 10 and idle sessions hold all but budget + 1 of them.
fn refused_under(
    prefix: &str,
    units: u32,
    asyncs: (usize, Duration),
    syncs: (usize, Duration),
) -> (i64, u64, u64, u64, u64) {
    init_tracing();
    let server = Server::start(ServerOptions {
        max_connections: MIN_MAX_CONNECTIONS,
        ..Default::default()
    })
    .expect("private server");
    let ballast = (MIN_MAX_CONNECTIONS - (units + 1)) as usize;
    let _held = server.hold_slots(ballast).expect("hold the other slots");
    oracle::watch(server.port(), Some(server.socket_path()));
    let db = TestDb::create(&server, prefix);
    let rt = runtime();
    let budget = budget(units);
    let (apool, spool) = pools(&rt, &db, &budget, Duration::from_secs(10));
    server
        .sql("FLUSH STATUS")
        .expect("reset the status counters");
    oracle::reset_max();
    let refused_before = server
        .global_status("Connection_errors_max_connections")
        .expect("status")
        + server.global_status("Aborted_connects").expect("status");
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&rt, (&apool, &spool), asyncs, syncs, &stop);
    std::thread::sleep(Duration::from_secs(5));
    let snap = budget.snapshot();
    let (a, s) = finish(&rt, &stop, workers);
    let refused = server
        .global_status("Connection_errors_max_connections")
        .expect("status")
        + server.global_status("Aborted_connects").expect("status")
        - refused_before;
    let max_used = server
        .global_status("Max_used_connections")
        .expect("status")
        - ballast as u64;
    let oracle_max = oracle::max();
    println!(
        "{prefix} at budget + 1: {a} async + {s} blocking, opened {}, refused {refused}, \
         Max_used_connections {max_used}, oracle max {oracle_max}",
        opened(&snap)
    );
    (oracle_max, refused, max_used, opened(&snap), a + s)
}

/// Re-runs the named test under the oracle shim; `true` when this is the re-run.
fn under_oracle(test: &str) -> bool {
    if oracle::is_active() {
        return true;
    }
    let out = oracle::rerun_under_shim(test).expect("re-run under the oracle shim");
    assert!(
        out.status.success(),
        "the test failed under the oracle shim"
    );
    false
}

#[test]
fn a_flapping_side_keeps_the_server_within_budget_plus_one_and_is_never_refused() {
    if !under_oracle("a_flapping_side_keeps_the_server_within_budget_plus_one_and_is_never_refused")
    {
        return;
    }
    // Arrange and act: the async side saturates a budget of 4, one blocking thread makes
    // a request every 60 ms (about two connects per blocking request, see above).
    let (oracle_max, refused, max_used, connects, _) = refused_under(
        "adv3_refused_flap",
        4,
        (12, Duration::from_millis(1)),
        (1, Duration::from_millis(60)),
    );

    // Assert: I1 exactly (the oracle), and the goals at budget + 1: no 1040, and
    // `Max_used_connections` at most budget + 1.
    assert!(oracle_max <= 4, "oracle max {oracle_max}");
    assert!(
        refused == 0 && max_used <= 4 + 1,
        "ERROR 1040 {refused} times; Max_used_connections {max_used} (the goal: budget + 1, \
         the sampler's own), {connects} connects"
    );
}

#[test]
fn a_budget_of_one_under_mixed_load_keeps_the_server_within_budget_plus_one() {
    if !under_oracle("a_budget_of_one_under_mixed_load_keeps_the_server_within_budget_plus_one") {
        return;
    }
    // Arrange and act: both sides keep a budget of 1 busy (4 callers each, 1 ms think).
    let (oracle_max, refused, max_used, connects, requests) = refused_under(
        "adv3_refused_one",
        1,
        (4, Duration::from_millis(1)),
        (4, Duration::from_millis(1)),
    );

    // Assert: I1 exactly, and as above: no 1040, `Max_used_connections` ≤ budget + 1.
    assert!(oracle_max <= 1, "oracle max {oracle_max}");
    assert!(
        refused == 0 && max_used <= 1 + 1,
        "ERROR 1040 {refused} times; Max_used_connections {max_used} (the goal: budget + 1, \
         the sampler's own), {connects} connects for {requests} requests"
    );
}
