//! Pool behaviour that needs no database server: building, refusals, timeouts, connect
//! retries against a fake server that answers every connect with 1040, closing, and a
//! cancelled acquire.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{Budget, Config, DatabaseUrl, DbError, Side, TimeoutPhase};

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url(port: u16) -> DatabaseUrl {
    DatabaseUrl::parse(&format!("mysql://app:hunter2@127.0.0.1:{port}/game")).unwrap()
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
    let p = pool(closed_port(), &budget, Duration::from_secs(1));
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
    let p = pool(closed_port(), &budget, Duration::from_secs(10));
    let err = p.acquire().await.unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err}");
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("hunter2"), "{msg}");
    eventually("the unit comes back", || budget.in_use() == 0).await;
    assert_eq!(budget.snapshot().async_side.waiting, 0);
}

#[tokio::test]
async fn an_exhausted_budget_times_out_with_the_budget_state() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Sync).unwrap();
    let p = pool(closed_port(), &budget, Duration::from_millis(200));
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

/// Accepts connections and answers each with the error packet a server at
/// `max_connections` sends instead of its handshake.
fn too_many_connections_server() -> (u16, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream): Result<TcpStream, _> = stream else {
                return;
            };
            count.fetch_add(1, Relaxed);
            let mut payload = vec![0xff, 0x10, 0x04]; // error 1040, little-endian
            payload.extend_from_slice(b"Too many connections");
            let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
            packet.push(0); // sequence id
            packet.extend_from_slice(&payload);
            let _ = stream.write_all(&packet);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn too_many_connections_is_retried_while_holding_one_unit_until_the_deadline() {
    let (port, accepted) = too_many_connections_server();
    let budget = Budget::new(3, Duration::from_secs(30));
    let p = pool(port, &budget, Duration::from_millis(400));
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
    assert!(
        accepted.load(Relaxed) >= 3,
        "retried {} times",
        accepted.load(Relaxed)
    );
    assert_eq!(
        watcher.await.unwrap(),
        1,
        "the retries held one unit, not more"
    );
    eventually("the unit comes back", || budget.in_use() == 0).await;
    let after = accepted.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        accepted.load(Relaxed),
        after,
        "no retries once nobody waits"
    );
}

#[tokio::test]
async fn a_closed_pool_refuses() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let p = pool(closed_port(), &budget, Duration::from_secs(1));
    p.close().await;
    assert!(p.is_closed());
    assert!(matches!(p.acquire().await, Err(DbError::Closed)));
}

#[tokio::test]
async fn callers_waiting_on_the_budget_get_closed_not_a_timeout_after_close() {
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Sync).unwrap();
    let p = pool(closed_port(), &budget, Duration::from_secs(10));
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
    let p = pool(closed_port(), &budget, Duration::from_secs(10));
    let cut = tokio::time::timeout(Duration::from_millis(100), p.acquire()).await;
    assert!(cut.is_err(), "the acquire was meant to be cut off");
    let s = budget.snapshot();
    assert_eq!((s.async_side.waiting, s.in_use), (0, 1), "{s}");
    drop(held);
    assert_eq!(budget.in_use(), 0);
}
