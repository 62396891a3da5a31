//! What happens to connections while they sit idle, on both sides, against the real
//! server: the keepalive (`DB_KEEPALIVE`) pings them so that the server's
//! `wait_timeout` never closes one under the pool (the next request needs no
//! reconnect), the idle timeout closes them, and each retires at its own jittered
//! lifetime, so connections opened together do not reconnect together.

use std::time::{Duration, Instant};

use db_async::{AsyncPool, args};
use db_sync::SyncPool;
use integration_tests::{Server, TestDb, budget, eventually, runtime};

const ONE_SECOND: Duration = Duration::from_secs(1);

fn database(prefix: &str) -> (&'static Server, TestDb) {
    let server = Server::shared();
    (server, TestDb::create(server, prefix))
}

/// Sets the server's global `wait_timeout` (new sessions take it) until dropped. This
/// binary's server is private (one per test process under nextest).
struct WaitTimeout(&'static Server);

impl WaitTimeout {
    fn set(server: &'static Server, secs: u32) -> WaitTimeout {
        server
            .sql(&format!("SET GLOBAL wait_timeout = {secs}"))
            .expect("set wait_timeout");
        WaitTimeout(server)
    }
}

impl Drop for WaitTimeout {
    fn drop(&mut self) {
        let _ = self.0.sql("SET GLOBAL wait_timeout = 28800");
    }
}

#[test]
fn async_keepalive_keeps_an_idle_connection_alive_past_the_servers_wait_timeout() {
    // Arrange: the server drops sessions idle for 3 s; the pool keeps idle connections
    // for a minute and pings those idle for 1 s (2 s of slack for a loaded machine,
    // where a ping 1 s late was seen).
    let (server, db) = database("st_keepalive");
    let _restore = WaitTimeout::set(server, 3);
    let budget = budget(1);
    let (before, after, wait_timeout) = runtime().block_on(async {
        let pool = AsyncPool::builder(db.url.clone(), budget.clone())
            .idle_timeout(Duration::from_secs(60))
            .keepalive(ONE_SECOND)
            .build();
        let mut conn = pool.acquire().await.unwrap();
        let (id, wait_timeout): (u64, u64) = conn
            .fetch_one("SELECT CONNECTION_ID(), @@wait_timeout", args![])
            .await
            .unwrap();
        drop(conn);

        // Act: idle for more than twice the server's wait_timeout.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let mut conn = pool.acquire().await.unwrap();
        let (again,): (u64,) = conn
            .fetch_one("SELECT CONNECTION_ID()", args![])
            .await
            .unwrap();
        (id, again, wait_timeout)
    });

    // Assert
    assert_eq!(wait_timeout, 3, "the session has the short wait_timeout");
    assert_eq!(after, before, "the same connection, still alive");
    assert_eq!(
        budget.snapshot().async_side.opened_total,
        1,
        "no reconnect was needed"
    );
}

#[test]
fn blocking_keepalive_keeps_an_idle_connection_alive_past_the_servers_wait_timeout() {
    // Arrange: as on the async side.
    let (server, db) = database("idle_keepalive_sync");
    let _restore = WaitTimeout::set(server, 3);
    let budget = budget(1);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(Duration::from_secs(60))
        .keepalive(ONE_SECOND)
        .build();
    let (before, wait_timeout): (u64, u64) = pool
        .fetch_one("SELECT CONNECTION_ID(), @@wait_timeout", ())
        .unwrap();

    // Act: idle for more than twice the server's wait_timeout.
    std::thread::sleep(Duration::from_secs(7));
    let (after,): (u64,) = pool.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();

    // Assert
    assert_eq!(wait_timeout, 3, "the session has the short wait_timeout");
    assert_eq!(after, before, "the same connection, still alive");
    assert_eq!(
        budget.snapshot().sync_side.opened_total,
        1,
        "no reconnect was needed"
    );
    let state = pool.state();
    assert_eq!(
        (state.connections, state.idle),
        (1, 1),
        "back in the idle list"
    );
}

#[test]
fn blocking_keepalive_pings_do_not_keep_a_connection_past_its_idle_timeout() {
    // Arrange: pinged every 100 ms, idle for at most 1 s.
    let (_, db) = database("idle_timeout_sync");
    let budget = budget(1);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(ONE_SECOND)
        .keepalive(Duration::from_millis(100))
        .build();
    let (_,): (u64,) = pool.fetch_one("SELECT CONNECTION_ID()", ()).unwrap();

    // Act: r2d2's own reaper would not run for 30 s, and each ping restarts its clock.
    let closed = eventually(Duration::from_secs(10), || pool.state().connections == 0);

    // Assert
    assert!(closed, "closed by its idle timeout: {:?}", pool.state());
    assert!(
        eventually(Duration::from_secs(2), || budget.snapshot().in_use == 0),
        "its unit is back"
    );
}

#[test]
fn blocking_connections_opened_together_retire_at_different_times() {
    // Arrange: 16 connections opened at once, with a lifetime of 6 s (each retires up
    // to 300 ms earlier, at random), passes every 50 ms, no idle timeout before then.
    let (_, db) = database("idle_jitter_sync");
    let budget = budget(16);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .idle_timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(6))
        .keepalive(Duration::from_millis(100))
        .build();
    let held: Vec<_> = (0..16).map(|_| pool.get().unwrap()).collect();
    drop(held);

    // Act: watch them close.
    let mut closes = Vec::new();
    let mut open = pool.state().connections;
    let deadline = Instant::now() + Duration::from_secs(20);
    while open > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        let now = pool.state().connections;
        if now < open {
            closes.push(Instant::now());
        }
        open = now;
    }

    // Assert: spread over more than a few passes (without the jitter all 16 retire
    // within the time it took to open them plus one pass; the chance that 16 draws of
    // up to 300 ms fall within 120 ms of each other is about 1 in 100,000).
    assert_eq!(open, 0, "every connection retired");
    let spread = *closes.last().unwrap() - closes[0];
    assert!(
        spread >= Duration::from_millis(120),
        "retirements spread over {spread:?} in {} steps",
        closes.len()
    );
    assert!(eventually(Duration::from_secs(2), || budget
        .snapshot()
        .in_use
        == 0));
}
