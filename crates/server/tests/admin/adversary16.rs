//! An outside adversary's tests of issue 16's controls and causes (suspend, evict,
//! resize, the pool-timeout causes, the slow-statement list), against a real MariaDB.
//!
//! Each test names the invariant it attacks in its failure message. Tests that freeze
//! the database server (SIGSTOP, to hold a ping or a rollback in flight at the moment a
//! control acts) run on a private server of their own: freezing the shared one would
//! stall every other test.

use std::time::{Duration, Instant};

use db_async::{Args, AsyncPool};
use db_budget::{Budget, DatabaseUrl, DbError, Side};
use db_sync::SyncPool;
use mariadb_harness::{Server, ServerOptions};

#[path = "controls/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the controls module; not every helper is used here"
)]
mod support;

use support::{Setup, async_id, eventually, start, sync_id};

/// A budget and both pools over a private server that a test may freeze.
struct Private {
    server: Server,
    budget: Budget,
    async_pool: AsyncPool,
    sync_pool: SyncPool,
}

impl Private {
    /// `limit` units; both pools ping every reused connection (`validation_bypass` 0)
    /// and wait for a frozen server longer than the tests freeze it; `keepalive` as
    /// given (zero: off).
    fn start(prefix: &str, limit: u32, keepalive: Duration) -> Private {
        let server = Server::start(ServerOptions::default()).expect("start a private server");
        let db = server.create_database(prefix).expect("create database");
        let url = DatabaseUrl::parse(&server.app_url(&db)).expect("database url");
        let budget = Budget::new(limit, Duration::from_secs(60));
        let async_pool = AsyncPool::builder(url.clone(), budget.clone())
            .pool_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(20))
            .validation_bypass(Duration::ZERO)
            .keepalive(keepalive)
            .idle_timeout(Duration::from_secs(600))
            .build();
        let sync_pool = SyncPool::builder(url, budget.clone())
            .pool_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(20))
            .validation_bypass(Duration::ZERO)
            .keepalive(keepalive)
            .idle_timeout(Duration::from_secs(600))
            .build();
        Private {
            server,
            budget,
            async_pool,
            sync_pool,
        }
    }

    fn freeze(&self) {
        self.server.freeze().expect("SIGSTOP the private server");
    }

    fn thaw(&self) {
        self.server.resume().expect("SIGCONT the private server");
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        // A failed test may leave the server frozen: let its threads finish.
        let _ = self.server.resume();
        self.sync_pool.close();
    }
}

// ---------------------------------------------------------------------------------
// Evict: no connection opened before the evict is handed to a caller after it.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evict_during_the_validation_ping_of_an_idle_async_connection_does_not_hand_the_old_session_out()
 {
    // Arrange: one idle async connection, pinged at its next checkout.
    let p = Private::start("adv16_evict_ping_async", 2, Duration::ZERO);
    let mut conn = p.async_pool.acquire().await.expect("first checkout");
    let old = async_id(&mut conn).await;
    drop(conn);
    eventually("the connection is idle", || p.async_pool.idle_count() == 1).await;
    p.freeze();
    let pool = p.async_pool.clone();
    let checkout = tokio::spawn(async move { pool.acquire().await });
    eventually("the checkout took the idle connection to ping it", || {
        p.async_pool.idle_count() == 0
    })
    .await;
    assert!(
        !checkout.is_finished(),
        "the ping waits for the frozen server"
    );

    // Act: the operator evicts while the ping is under way, then the server answers.
    let eviction = p.budget.evict();
    p.thaw();

    // Assert
    let mut conn = tokio::time::timeout(Duration::from_secs(20), checkout)
        .await
        .expect("the checkout ends once the server answers")
        .unwrap()
        .expect("a connection");
    let got = async_id(&mut conn).await;
    assert_ne!(
        got, old,
        "evict invariant: connection {old}, opened before the evict (generation {}), was \
         handed to a caller after it (its validation ping was under way at the evict)",
        eviction.generation
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evict_during_the_validation_ping_of_an_idle_blocking_connection_does_not_hand_the_old_session_out()
 {
    // Arrange: one idle blocking connection, pinged at its next checkout.
    let p = Private::start("adv16_evict_ping_sync", 2, Duration::ZERO);
    let pool = p.sync_pool.clone();
    let old = tokio::task::spawn_blocking(move || sync_id(&mut pool.get().expect("checkout")))
        .await
        .unwrap();
    assert_eq!(p.sync_pool.state().idle, 1);
    p.freeze();
    let pool = p.sync_pool.clone();
    let checkout = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        Ok::<u64, DbError>(sync_id(&mut conn))
    });
    eventually("the checkout took the idle connection to ping it", || {
        p.sync_pool.state().idle == 0
    })
    .await;
    assert!(
        !checkout.is_finished(),
        "the ping waits for the frozen server"
    );

    // Act
    let eviction = p.budget.evict();
    p.thaw();

    // Assert
    let got = tokio::time::timeout(Duration::from_secs(20), checkout)
        .await
        .expect("the checkout ends once the server answers")
        .unwrap()
        .expect("a connection");
    assert_ne!(
        got, old,
        "evict invariant: blocking connection {old}, opened before the evict (generation \
         {}), was handed to a caller after it (its validation ping was under way at the \
         evict)",
        eviction.generation
    );
}

// ---------------------------------------------------------------------------------
// Resize: `owed` goes to 0, the idle connections are closed.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrink_while_the_keepalive_pings_the_idle_async_connections_still_closes_them_down_to_the_new_capacity()
 {
    // Arrange: two idle async connections, taken out by the keepalive for a ping that
    // the frozen server does not answer.
    let p = Private::start("adv16_shrink_keepalive", 2, Duration::from_millis(200));
    let (mut a, mut b) = (
        p.async_pool.acquire().await.unwrap(),
        p.async_pool.acquire().await.unwrap(),
    );
    let _ids = (async_id(&mut a).await, async_id(&mut b).await);
    drop((a, b));
    eventually("both connections are idle", || {
        p.async_pool.idle_count() == 2
    })
    .await;
    p.freeze();
    eventually("the keepalive took both out to ping them", || {
        p.async_pool.idle_count() == 0
    })
    .await;

    // Act: shrink to 1 while the pings are under way, then the server answers.
    let resized = p.budget.set_capacity(1).expect("within the limit");
    p.thaw();

    // Assert: nobody holds a connection, so one of the two must close.
    assert_eq!(
        resized.owed, 1,
        "both units were in use, none idle: {resized:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while (p.budget.owed() > 0 || p.budget.in_use() > 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = p.budget.snapshot();
    assert!(
        p.budget.owed() == 0 && snap.in_use <= 1,
        "resize invariant: 10 s after a shrink to 1 with nothing checked out, owed = {} and \
         {} units are in use ({} idle async connections): a connection the keepalive \
         pinged during the shrink went back to the idle list instead of paying the debt",
        p.budget.owed(),
        snap.in_use,
        p.async_pool.idle_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrink_while_returned_transactions_are_rolled_back_still_closes_them_down_to_the_new_capacity()
 {
    // Arrange: two async connections returned with their transactions open, whose
    // rollbacks the frozen server holds.
    let p = Private::start("adv16_shrink_settle", 2, Duration::ZERO);
    let mut a = p.async_pool.acquire().await.unwrap();
    let mut b = p.async_pool.acquire().await.unwrap();
    for conn in [&mut a, &mut b] {
        // A transaction left open: the return rolls it back before pooling.
        conn.execute("BEGIN", Args::default()).await.expect("BEGIN");
    }
    p.freeze();
    drop((a, b)); // settled in the background: each ROLLBACK waits for the server
    assert_eq!(p.async_pool.idle_count(), 0, "both are being settled");

    // Act: shrink to 1 (both units in use, none idle: one is owed), then thaw.
    let resized = p.budget.set_capacity(1).expect("within the limit");
    p.thaw();

    // Assert: nobody holds a connection, so one of the two must close.
    assert_eq!(resized.owed, 1, "{resized:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (p.budget.owed() > 0 || p.budget.in_use() > 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        p.budget.owed() == 0 && p.budget.in_use() <= 1,
        "resize invariant: 10 s after a shrink to 1 with nothing checked out, owed = {} and \
         {} units are in use ({} idle async connections): a connection rolled back during \
         the shrink went back to the idle list instead of paying the debt",
        p.budget.owed(),
        p.budget.in_use(),
        p.async_pool.idle_count()
    );
}

// ---------------------------------------------------------------------------------
// Suspend: a waiter still waiting at DB_POOL_TIMEOUT gets `suspended`.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_caller_queued_for_a_unit_when_the_budget_is_suspended_fails_with_suspended_at_its_pool_timeout()
 {
    // Arrange: the one unit held; an async caller queued for it.
    let ctl = start(
        "adv16_susp_queued_async",
        Setup {
            limit: 2,
            capacity: 1,
            pool_timeout: Duration::from_millis(1500),
            ..Setup::default()
        },
    )
    .await;
    let _held = ctl.async_pool.acquire().await.expect("the one connection");
    let pool = ctl.async_pool.clone();
    let queued = tokio::spawn(async move { pool.acquire().await.map(drop) });
    eventually("the caller queues", || {
        ctl.budget.snapshot().async_side.waiting == 1
    })
    .await;

    // Act: suspended while it waits; nothing comes back before its pool timeout.
    assert_eq!(ctl.post("/admin/suspend", "").await.status, 200);
    let got = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("ends at its pool timeout")
        .unwrap();

    // Assert
    let timeouts = ctl.budget.snapshot().async_side.acquire_timeouts_total;
    assert!(
        matches!(
            got,
            Err(DbError::Suspended {
                side: Side::Async,
                ..
            })
        ) && timeouts == 0,
        "suspend invariant: a waiter still waiting at DB_POOL_TIMEOUT while the budget is \
         suspended fails with `suspended`, not counted as a pool timeout; got {got:?} with \
         acquire_timeouts_total = {timeouts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_caller_queued_for_a_unit_when_the_budget_is_suspended_fails_with_suspended_at_its_pool_timeout()
 {
    // Arrange: the one unit held by an async checkout; a blocking caller queued for it.
    let ctl = start(
        "adv16_susp_queued_sync",
        Setup {
            limit: 2,
            capacity: 1,
            pool_timeout: Duration::from_millis(1500),
            ..Setup::default()
        },
    )
    .await;
    let _held = ctl.async_pool.acquire().await.expect("the one connection");
    let pool = ctl.sync_pool.clone();
    let queued = tokio::task::spawn_blocking(move || pool.get().map(drop));
    eventually("the caller queues", || {
        ctl.budget.snapshot().sync_side.waiting == 1
    })
    .await;

    // Act
    assert_eq!(ctl.post("/admin/suspend", "").await.status, 200);
    let got = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("ends at its pool timeout")
        .unwrap();

    // Assert
    let timeouts = ctl.budget.snapshot().sync_side.acquire_timeouts_total;
    assert!(
        matches!(
            got,
            Err(DbError::Suspended {
                side: Side::Sync,
                ..
            })
        ) && timeouts == 0,
        "suspend invariant: a blocking waiter still waiting at DB_POOL_TIMEOUT while the \
         budget is suspended fails with `suspended`, not counted as a pool timeout; got \
         {got:?} with acquire_timeouts_total = {timeouts}"
    );
}

// ---------------------------------------------------------------------------------
// Causes: slow statements show SQL text, never values.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_statement_list_never_shows_values_written_into_the_sql_text() {
    // Arrange: slow statements whose text carries values (a string literal with a quote,
    // an IN list, a number, a comment), as legacy code writes them.
    let ctl = start("adv16_slow_values", Setup::default()).await;
    ctl.budget
        .set_slow_query_threshold(Duration::from_millis(50));
    let secrets = [
        "s3cr3t-player-token",
        "o''brien@example.com",
        "987654321",
        "4711, 4712",
        "user=alice",
    ];
    let statements = [
        "SELECT SLEEP(0.1), 's3cr3t-player-token'",
        "SELECT SLEEP(0.1) FROM DUAL WHERE 'o''brien@example.com' <> ''",
        "SELECT SLEEP(0.1) + 987654321",
        "SELECT SLEEP(0.1) FROM DUAL WHERE 1 NOT IN (4711, 4712)",
        "SELECT /* user=alice */ SLEEP(0.1)",
    ];
    let mut conn = ctl.async_pool.acquire().await.unwrap();

    // Act
    for sql in statements {
        conn.execute(sql, Args::default())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    drop(conn);
    let r = ctl.get("/api/pool").await;

    // Assert
    assert_eq!(r.status, 200, "{r:?}");
    let listed = r.json()["slow_statements"].clone();
    let texts: Vec<String> = listed
        .as_array()
        .expect("slow_statements is a list")
        .iter()
        .filter_map(|s| s["sql"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !texts.is_empty(),
        "the slow statements are listed: {listed}"
    );
    let leaked: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|s| texts.iter().any(|t| t.contains(s)))
        .collect();
    assert!(
        leaked.is_empty(),
        "causes invariant: slow statements show SQL text, never values; /api/pool shows \
         {leaked:?} in {texts:?}"
    );
}

// ---------------------------------------------------------------------------------
// I1 under the controls: shrink, grow, evict, suspend and resume, quickly and mixed,
// under load from both sides; counted by the exact connection oracle.
// ---------------------------------------------------------------------------------

/// The largest capacity the chaos below sets: the limit's last two units stay withheld
/// throughout, so a connection over this is one the budget did not allow.
const CHAOS_CAP: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_evicting_and_suspending_quickly_under_load_from_both_sides_never_exceeds_the_capacity_set_and_loses_no_unit()
 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

    use mariadb_harness::oracle;

    const NAME: &str = "adversary16::resizing_evicting_and_suspending_quickly_under_load_from_both_sides_never_exceeds_the_capacity_set_and_loses_no_unit";
    if !oracle::is_active() {
        let out = tokio::task::spawn_blocking(|| oracle::rerun_under_shim(NAME))
            .await
            .unwrap()
            .expect("re-run under the oracle");
        assert!(out.status.success(), "the re-run under the oracle failed");
        return;
    }

    // Arrange: a limit of 6 brought down to 4; 6 async tasks and 3 blocking threads.
    let server = Server::shared();
    oracle::watch(server.port(), Some(server.socket_path()));
    let ctl = start(
        "adv16_chaos",
        Setup {
            limit: 6,
            capacity: CHAOS_CAP,
            pool_timeout: Duration::from_secs(2),
            ..Setup::default()
        },
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let unexpected = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ops = Arc::new(AtomicU64::new(0));
    let expected = |e: &DbError| {
        matches!(
            e,
            DbError::Suspended { .. } | DbError::PoolTimeout { .. } | DbError::Shed { .. }
        )
    };
    let mut tasks = Vec::new();
    for t in 0..6u64 {
        let (pool, stop, unexpected, ops) = (
            ctl.async_pool.clone(),
            stop.clone(),
            unexpected.clone(),
            ops.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Relaxed) {
                i += 1;
                let work = async {
                    let mut conn = pool.acquire().await?;
                    if i.is_multiple_of(4) {
                        conn.execute("BEGIN", Args::default()).await?;
                        conn.execute("DO SLEEP(0.005)", Args::default()).await?;
                        // Returned with the transaction open: settled in the background.
                    } else {
                        conn.execute("DO 1", Args::default()).await?;
                    }
                    Ok::<(), DbError>(())
                };
                match work.await {
                    Ok(()) => drop(ops.fetch_add(1, Relaxed)),
                    Err(e) if expected(&e) => {}
                    Err(e) => unexpected.lock().unwrap().push(format!("async: {e:?}")),
                }
            }
        }));
    }
    let mut threads = Vec::new();
    for _ in 0..3 {
        let (pool, stop, unexpected, ops) = (
            ctl.sync_pool.clone(),
            stop.clone(),
            unexpected.clone(),
            ops.clone(),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let work = || {
                    let mut conn = pool.get()?;
                    conn.execute("DO SLEEP(0.002)", ())?;
                    Ok::<(), DbError>(())
                };
                match work() {
                    Ok(()) => drop(ops.fetch_add(1, Relaxed)),
                    Err(e) if expected(&e) => {}
                    Err(e) => unexpected.lock().unwrap().push(format!("sync: {e:?}")),
                }
            }
        }));
    }
    eventually("both sides are served", || ops.load(Relaxed) > 50).await;
    oracle::reset_max();

    // Act: 4 s of controls 2–20 ms apart, from a fixed seed.
    let mut rng = seeded_rng::Rng::new(16);
    let mut actions = 0;
    let chaos_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < chaos_until {
        let r = match rng.below(10) {
            0..=4 => {
                let n = 1 + rng.below(u64::from(CHAOS_CAP));
                ctl.post("/admin/budget", &format!("{{\"capacity\": {n}}}"))
                    .await
            }
            5 | 6 => ctl.post("/admin/evict", "").await,
            7 => ctl.post("/admin/suspend", "").await,
            _ => ctl.post("/admin/resume", "").await,
        };
        assert_eq!(r.status, 200, "{r:?}");
        actions += 1;
        tokio::time::sleep(Duration::from_millis(2 + rng.below(18))).await;
    }
    let peak = oracle::max();
    println!(
        "adversary16 chaos: {actions} controls, {} checkouts served, peak {peak} connections",
        ops.load(Relaxed)
    );
    assert_eq!(ctl.post("/admin/resume", "").await.status, 200);
    assert_eq!(
        ctl.post("/admin/budget", &format!("{{\"capacity\": {CHAOS_CAP}}}"))
            .await
            .status,
        200
    );
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    for t in threads {
        tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
    }

    // Assert: never above the capacity set, nothing unexpected, and every unit back.
    assert!(
        peak <= i64::from(CHAOS_CAP),
        "I1: {peak} physical connections at once (oracle) with the capacity never set above \
         {CHAOS_CAP} during {actions} controls"
    );
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "callers got errors the controls do not explain: {unexpected:?}"
    );
    eventually("nothing owed once the holders are back", || {
        ctl.budget.owed() == 0
    })
    .await;
    let snap = ctl.budget.snapshot();
    assert_eq!(
        (snap.capacity, ctl.budget.capacity_target()),
        (CHAOS_CAP, CHAOS_CAP),
        "capacity after settling: {snap:?}"
    );
    let mut asyncs = Vec::new();
    for _ in 0..2 {
        let got = tokio::time::timeout(Duration::from_secs(5), ctl.async_pool.acquire()).await;
        asyncs.push(
            got.expect("no unit lost: an async checkout within 5 s")
                .expect("no unit lost: an async checkout"),
        );
    }
    let pool = ctl.sync_pool.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let syncs = tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..2).map(|_| pool.get()).collect::<Result<_, _>>()?;
        rx.recv().ok();
        drop(held);
        Ok::<(), DbError>(())
    });
    eventually(
        "the full capacity is checked out, both sides at once",
        || ctl.budget.snapshot().sync_side.active == 2 || syncs.is_finished(),
    )
    .await;
    assert_eq!(
        ctl.budget.snapshot().async_side.active + ctl.budget.snapshot().sync_side.active,
        CHAOS_CAP,
        "no unit lost: a full-capacity checkout of both sides"
    );
    assert!(
        oracle::current() <= i64::from(CHAOS_CAP),
        "{}",
        oracle::current()
    );
    let on_server = ctl.server_connections().len();
    assert!(
        on_server <= CHAOS_CAP as usize,
        "the server counts {on_server} connections of this database"
    );
    tx.send(()).unwrap();
    syncs.await.unwrap().expect("the blocking checkouts");
    drop(asyncs);
}

// ---------------------------------------------------------------------------------
// Metrics: a request refused for its body (not its token) counts as refused too.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_request_refused_for_its_body_counts_as_refused_and_its_reply_never_echoes_the_token()
 {
    use crate::admin_support::metrics::parse_metrics;

    // Arrange
    let ctl = start("adv16_refused_counts", Setup::default()).await;
    let count = |body: &str, action: &str, result: &str| {
        parse_metrics(body).get(
            "db_admin_actions_total",
            &[("action", action), ("result", result)],
        )
    };
    let token_body = format!(r#"{{"capacity": "{}"}}"#, support::TOKEN);

    // Act: bad bodies (one carrying the token as a value), each once.
    let replies = [
        ctl.post("/admin/budget", r#"{"capacity": 0}"#).await,
        ctl.post("/admin/budget", &token_body).await,
        ctl.post("/admin/suspend", r#"{"now": true}"#).await,
        ctl.post("/admin/evict", "not json").await,
        ctl.post("/admin/resume", "[]").await,
    ];
    let metrics = ctl.get("/metrics").await.body;

    // Assert
    for r in &replies {
        assert_eq!(r.status, 400, "{r:?}");
        assert!(
            !r.body.contains(support::TOKEN),
            "auth invariant: a reply echoes the token: {r:?}"
        );
    }
    for (action, refused) in [
        ("budget", 2.0),
        ("suspend", 1.0),
        ("evict", 1.0),
        ("resume", 1.0),
    ] {
        assert_eq!(
            count(&metrics, action, "refused"),
            refused,
            "metrics invariant: db_admin_actions_total{{action={action}, result=refused}} \
             counts the refused bodies"
        );
        assert_eq!(count(&metrics, action, "ok"), 0.0, "{action}");
    }
}
