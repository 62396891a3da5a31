//! The world the retention tests share (`tests/retention_*.rs`): a database of its
//! own per test, a budget of [`MAX_CONNECTIONS`], the async pool, the migrated and
//! seeded schema, and the service on a manual clock; and the checks every one of them
//! ends with (no pool timeout, every connection back).
//!
//! Every retention test runs on a budget of `MAX_CONNECTIONS = 4` with a 10 s pool
//! timeout, most with 50 to 200 concurrent tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DbError};
use retention::chrono::{DateTime, TimeZone, Utc};
use retention::{ManualClock, Retention, RetentionError};
use tokio::task::JoinSet;

use crate::{Server, TestDb, async_pool, budget, init_tracing};

/// `MAX_CONNECTIONS` for every retention test.
pub const MAX_CONNECTIONS: u32 = 4;

/// One test's world: its own database, a budget of 4, a pool, the migrated and
/// seeded schema, and a service on a manual clock.
#[derive(Debug)]
pub struct World {
    /// The budget of [`MAX_CONNECTIONS`] the pool draws from.
    pub budget: Budget,
    /// The async pool the service runs on.
    pub pool: AsyncPool,
    /// The service's clock, moved by hand.
    pub clock: Arc<ManualClock>,
    /// The service under test.
    pub retention: Retention,
}

/// Noon UTC on that day.
pub fn noon(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

/// A database of its own on the shared server, and a budget of [`MAX_CONNECTIONS`].
pub fn database(prefix: &str) -> (TestDb, Budget) {
    init_tracing();
    (
        TestDb::create(Server::shared(), prefix),
        budget(MAX_CONNECTIONS),
    )
}

impl World {
    /// Migrates and seeds; call inside the runtime.
    pub async fn new(db: &TestDb, budget: &Budget) -> World {
        let pool = async_pool(&db.url, budget);
        retention::migrate(&pool).await.expect("migrations run");
        let clock = Arc::new(ManualClock::new(noon(2025, 3, 1)));
        let retention = Retention::builder(pool.clone())
            .clock(clock.clone())
            .build()
            .expect("valid settings");
        retention
            .initialize_quest_templates()
            .await
            .expect("templates seeded");
        retention
            .initialize_daily_rewards()
            .await
            .expect("tiers seeded");
        World {
            budget: budget.clone(),
            pool,
            clock,
            retention,
        }
    }

    /// A new player, created with plain SQL through the pool.
    pub async fn player(&self, name: &str) -> u64 {
        let mut conn = self.pool.acquire().await.unwrap();
        conn.execute(
            "INSERT INTO players (name) VALUES (?)",
            args![name.to_owned()],
        )
        .await
        .unwrap()
        .last_insert_id
        .expect("an auto-increment id")
    }

    /// `SELECT COUNT(*) …` with one id argument.
    pub async fn count(&self, sql: &'static str, id: u64) -> i64 {
        let mut conn = self.pool.acquire().await.unwrap();
        let (n,): (i64,) = conn.fetch_one(sql, args![id]).await.unwrap();
        n
    }

    /// A statement with two id arguments (test set-up).
    pub async fn exec(&self, sql: &'static str, a: u64, b: u64) {
        let mut conn = self.pool.acquire().await.unwrap();
        conn.execute(sql, args![a, b]).await.unwrap();
    }

    /// No caller timed out waiting for a connection, and every connection came back.
    pub async fn assert_healthy(&self) {
        let s = self.budget.snapshot();
        assert_eq!(s.capacity, MAX_CONNECTIONS);
        assert_eq!(
            s.async_side.acquire_timeouts_total, 0,
            "a pool timeout happened: {s:?}"
        );
        assert!(
            poll(Duration::from_secs(5), || async {
                let s = self.budget.snapshot();
                s.async_side.active == 0 && s.in_use <= MAX_CONNECTIONS
            })
            .await,
            "connections still checked out: {:?}",
            self.budget.snapshot()
        );
    }
}

/// Polls `cond` every 10 ms until it holds or `within` passes; returns whether it held.
pub async fn poll<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fails the test on a pool timeout (or any database error), with the message.
pub fn no_db_error(e: &RetentionError) {
    if let RetentionError::Db(db) = e {
        assert!(
            !matches!(db, DbError::PoolTimeout { .. }),
            "pool timeout with MAX_CONNECTIONS={MAX_CONNECTIONS}: {db}"
        );
        panic!("database error: {db}");
    }
}

/// Runs `n` copies of `task` at once (spawned, so on both worker threads) and
/// returns their results.
pub async fn concurrently<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(task(i));
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r.expect("task did not panic"));
    }
    out
}
