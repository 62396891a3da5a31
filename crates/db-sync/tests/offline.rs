//! Pool behaviour that needs no database server: building, refusals, timeouts, and
//! connect retries against a fake server that answers every connect with 1040.

use std::thread;
use std::time::{Duration, Instant};

use db_budget::{Budget, Config, DatabaseUrl, DbError, Side, TimeoutPhase};
use db_sync::SyncPool;
use mariadb_harness::fake;

fn url(port: u16) -> DatabaseUrl {
    DatabaseUrl::parse(&fake::url(port)).unwrap()
}

fn pool(port: u16, budget: &Budget, timeout: Duration) -> SyncPool {
    SyncPool::builder(url(port), budget.clone())
        .pool_timeout(timeout)
        .build()
}

/// Waits until `cond` holds (background threads finish their part), at most 5 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn building_opens_nothing_and_a_missing_url_names_the_variable() {
    let budget = Budget::new(4, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(1));
    thread::sleep(Duration::from_millis(50));
    assert_eq!((p.state().connections, p.state().idle), (0, 0));
    assert_eq!(budget.in_use(), 0);

    let err = SyncPool::from_config(&Config::default(), budget).unwrap_err();
    assert!(
        matches!(err, DbError::Config(ref c) if c.variable() == "DATABASE_URL"),
        "{err}"
    );
}

#[test]
fn a_refused_connect_fails_fast_with_the_cause_and_returns_the_unit() {
    let budget = Budget::new(2, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(10));
    let started = Instant::now();
    let err = p.get().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, DbError::Connect { .. }), "{err}");
    let msg = err.to_string();
    assert!(!msg.contains(fake::PASSWORD), "{msg}");
    eventually("the unit comes back", || budget.in_use() == 0);
    assert_eq!(budget.snapshot().sync_side.waiting, 0);
}

#[test]
fn an_exhausted_budget_times_out_with_the_budget_state() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Async).unwrap();
    let p = pool(fake::closed_port(), &budget, Duration::from_millis(200));
    let started = Instant::now();
    let err = p.get().unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    match &err {
        DbError::PoolTimeout {
            side,
            phase,
            snapshot,
            ..
        } => {
            assert_eq!(*side, Side::Sync);
            assert_eq!(*phase, TimeoutPhase::Wait);
            assert_eq!(snapshot.in_use, 1);
        }
        other => panic!("expected a pool timeout, got {other}"),
    }
    assert!(err.to_string().contains("budget 1/1 in use"), "{err}");
    assert_eq!(budget.snapshot().sync_side.acquire_timeouts_total, 1);
    drop(held);
    // The connect job r2d2 started finds nobody waiting any more and opens nothing.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(budget.in_use(), 0);
    assert_eq!(p.state().connections, 0);
}

#[test]
fn too_many_connections_is_retried_while_holding_one_unit_until_the_deadline() {
    let full = fake::TooManyConnections::start().unwrap();
    let budget = Budget::new(3, Duration::from_secs(30));
    let p = pool(full.port(), &budget, Duration::from_millis(400));
    let started = Instant::now();
    let err = p.get().unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(400));
    match &err {
        DbError::PoolTimeout { phase, .. } => assert_eq!(*phase, TimeoutPhase::Connect),
        other => panic!("expected a pool timeout, got {other}"),
    }
    assert!(full.accepted() >= 3, "retried {} times", full.accepted());
    // The retry loop stops once nobody waits, and gives its unit back.
    eventually("the unit comes back", || budget.in_use() == 0);
    let after = full.accepted();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(full.accepted(), after, "no retries once nobody waits");
}

#[test]
fn a_closed_pool_refuses() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(1));
    p.close();
    assert!(p.is_closed());
    assert!(matches!(p.get(), Err(DbError::Closed)));
}

#[test]
fn current_thread_runtimes_are_refused_but_spawn_blocking_and_workers_are_served() {
    let budget = Budget::new(2, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(5));

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(matches!(p.get(), Err(DbError::BlockingNotAllowed)));
        let p2 = p.clone();
        let r = tokio::task::spawn_blocking(move || p2.get()).await.unwrap();
        // Served: it reached the (absent) server.
        assert!(matches!(r, Err(DbError::Connect { .. })), "{r:?}");
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let p2 = p.clone();
    let r = rt.block_on(async move { tokio::spawn(async move { p2.get() }).await.unwrap() });
    assert!(matches!(r, Err(DbError::Connect { .. })), "{r:?}");
}

#[test]
fn callers_waiting_on_the_budget_get_closed_not_a_timeout_after_close() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Async).unwrap();
    let p = pool(fake::closed_port(), &budget, Duration::from_millis(500));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            thread::spawn(move || p.get().map(drop))
        })
        .collect();
    eventually("the callers wait", || {
        budget.snapshot().sync_side.waiting == 3
    });
    p.close();
    for w in waiters {
        let result = w.join().unwrap();
        assert!(matches!(result, Err(DbError::Closed)), "{result:?}");
    }
    drop(held);
    eventually("nothing held", || budget.in_use() == 0);
    assert_eq!(budget.snapshot().sync_side.acquire_timeouts_total, 0);
}
