//! Pool behaviour that needs no database server: building, refusals, timeouts, connect
//! retries against a fake server that answers every connect with 1040, closing, and a
//! cancelled acquire.

use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{Budget, Config, DatabaseUrl, DbError, Side, TimeoutPhase};
use mariadb_harness::fake;

fn url(port: u16) -> DatabaseUrl {
    DatabaseUrl::parse(&fake::url(port)).unwrap()
}

fn pool(port: u16, budget: &Budget, timeout: Duration) -> AsyncPool {
    AsyncPool::builder(url(port), budget.clone())
        .pool_timeout(timeout)
        .build()
}

/// Waits until `cond` holds (background tasks finish their part), at most 5 s.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn building_opens_nothing_and_a_missing_url_names_the_variable() {
    let budget = Budget::new(4, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(p.idle_count(), 0);
    assert_eq!(budget.in_use(), 0);

    let err = AsyncPool::from_config(&Config::default(), budget).unwrap_err();
    assert!(
        matches!(err, DbError::Config(ref c) if c.variable() == "DATABASE_URL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_connect_fails_fast_with_the_cause_and_returns_the_unit() {
    let budget = Budget::new(2, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(10));
    let err = p.acquire().await.unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err}");
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(fake::PASSWORD), "{msg}");
    eventually("the unit comes back", || budget.in_use() == 0).await;
    assert_eq!(budget.snapshot().async_side.waiting, 0);
}

#[tokio::test]
async fn an_exhausted_budget_times_out_with_the_budget_state() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Sync).unwrap();
    let p = pool(fake::closed_port(), &budget, Duration::from_millis(200));
    let err = p.acquire().await.unwrap_err();
    match &err {
        DbError::PoolTimeout {
            side,
            phase,
            snapshot,
            ..
        } => {
            assert_eq!(*side, Side::Async);
            assert_eq!(*phase, TimeoutPhase::Wait);
            assert_eq!(snapshot.in_use, 1);
        }
        other => panic!("expected a pool timeout, got {other}"),
    }
    assert!(err.to_string().contains("budget 1/1 in use"), "{err}");
    assert_eq!(budget.snapshot().async_side.acquire_timeouts_total, 1);
    assert_eq!(budget.snapshot().async_side.waiting, 0);
    drop(held);
    assert_eq!(budget.in_use(), 0);
}

#[tokio::test]
async fn too_many_connections_is_retried_while_holding_one_unit_until_the_deadline() {
    let full = fake::TooManyConnections::start().unwrap();
    let budget = Budget::new(3, Duration::from_secs(30));
    let p = pool(full.port(), &budget, Duration::from_millis(400));
    let watcher = {
        let budget = budget.clone();
        tokio::spawn(async move {
            let mut most = 0;
            for _ in 0..40 {
                most = most.max(budget.in_use());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            most
        })
    };
    let err = p.acquire().await.unwrap_err();
    match &err {
        DbError::PoolTimeout { phase, .. } => assert_eq!(*phase, TimeoutPhase::Connect),
        other => panic!("expected a pool timeout, got {other}"),
    }
    assert!(full.accepted() >= 3, "retried {} times", full.accepted());
    assert_eq!(
        watcher.await.unwrap(),
        1,
        "the retries held one unit, not more"
    );
    eventually("the unit comes back", || budget.in_use() == 0).await;
    let after = full.accepted();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(full.accepted(), after, "no retries once nobody waits");
}

#[tokio::test]
async fn a_closed_pool_refuses() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(1));
    p.close().await;
    assert!(p.is_closed());
    assert!(matches!(p.acquire().await, Err(DbError::Closed)));
}

#[tokio::test]
async fn callers_waiting_on_the_budget_get_closed_not_a_timeout_after_close() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Sync).unwrap();
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(10));
    let waiter = tokio::spawn({
        let p = p.clone();
        async move { p.acquire().await.map(drop) }
    });
    eventually("the caller waits", || {
        budget.snapshot().async_side.waiting == 1
    })
    .await;
    p.close().await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter was woken")
        .unwrap();
    assert!(matches!(r, Err(DbError::Closed)), "{r:?}");
    drop(held);
}

#[tokio::test]
async fn a_cancelled_acquire_leaves_the_queue_and_takes_no_unit() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Sync).unwrap();
    let p = pool(fake::closed_port(), &budget, Duration::from_secs(10));
    let cut = tokio::time::timeout(Duration::from_millis(100), p.acquire()).await;
    assert!(cut.is_err(), "the acquire was meant to be cut off");
    let s = budget.snapshot();
    assert_eq!((s.async_side.waiting, s.in_use), (0, 1), "{s}");
    drop(held);
    assert_eq!(budget.in_use(), 0);
}
