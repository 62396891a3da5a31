//! Timeouts that name the cause: each of the four (backlog, leaked holders, failing
//! connects, slow statements) produced for real, against MariaDB or the fake server
//! that answers every connect with ERROR 1040, and read from the pool-timeout error,
//! with the longest holders by call site.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, DbError, Holder, Side, TimeoutPhase, WaitCause};
use db_sync::SyncPool;
use integration_tests::{Server, TestDb, eventually, init_tracing, runtime};
use mariadb_harness::fake;

use super::POOL_TIMEOUT;

/// `DB_SLOW_QUERY` of the slow-statement tests.
const SLOW: Duration = Duration::from_millis(100);

/// What a pool timeout says about why: its cause, holders and message.
fn why(err: DbError) -> (WaitCause, Vec<Holder>, String) {
    let msg = err.to_string();
    match err {
        DbError::PoolTimeout { cause, holders, .. } => (cause, holders, msg),
        other => panic!("expected a pool timeout, got {other:?}"),
    }
}

#[test]
fn a_timeout_behind_holders_kept_idle_past_the_leak_threshold_names_leaked_holders_and_their_site()
{
    // Arrange: budget 2 with a 100 ms leak threshold; both units checked out at one
    // line of this file, nothing run on them, held past the threshold.
    init_tracing();
    let db = TestDb::create(Server::shared(), "why_leak");
    let rt = runtime();
    let budget = Budget::new(2, Duration::from_millis(100));
    let pool = async_pool(&rt, &db.url, &budget, POOL_TIMEOUT);
    let mut held = Vec::new();
    let mut line = 0;
    for _ in 0..2 {
        let (conn, at) = (rt.block_on(pool.acquire()).unwrap(), line!());
        held.push(conn);
        line = at;
    }
    std::thread::sleep(Duration::from_millis(150));

    // Act
    let (cause, holders, msg) = why(rt.block_on(pool.acquire()).unwrap_err());

    // Assert: the cause, and the site with both checkouts, in the error and its message.
    println!("leaked: {msg}");
    assert_eq!(cause, WaitCause::LeakedHolders, "{msg}");
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0].site_text(), format!("{}:{line}", file!()));
    assert_eq!(holders[0].count, 2);
    assert!(holders[0].held >= Duration::from_millis(150), "{holders:?}");
    let named = format!("(async): leaked holders — {}:{line} held ", file!());
    assert!(
        msg.contains(&named) && msg.contains(" (×2); budget 2/2 in use"),
        "{msg}"
    );
    drop(held);
}

#[test]
fn a_timeout_behind_async_holders_in_statements_slower_than_db_slow_query_names_slow_statements() {
    // Arrange: budget 2; both units inside `DO SLEEP(2)` on the async side, running
    // longer than DB_SLOW_QUERY (100 ms) by the time the caller gives up. The leak
    // threshold (30 s) is far away.
    init_tracing();
    let db = TestDb::create(Server::shared(), "why_slow_async");
    let rt = runtime();
    let budget = integration_tests::budget(2);
    budget.set_slow_query_threshold(SLOW);
    let pool = async_pool(&rt, &db.url, &budget, POOL_TIMEOUT);
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            rt.spawn(async move {
                let mut conn = pool.acquire().await?;
                conn.execute("DO SLEEP(2)", args![]).await.map(drop)
            })
        })
        .collect();
    wait_for_active(&budget, Side::Async);
    std::thread::sleep(SLOW);

    // Act
    let (cause, holders, msg) = why(rt.block_on(pool.acquire()).unwrap_err());

    // Assert
    println!("slow async: {msg}");
    assert_eq!(cause, WaitCause::SlowStatements, "{msg}");
    assert!(msg.contains("(async): slow statements — "), "{msg}");
    assert_eq!(
        holders.iter().map(|h| h.count).sum::<u32>(),
        2,
        "{holders:?}"
    );
    for s in sleepers {
        rt.block_on(s).unwrap().expect("the sleeping holder");
    }
}

#[test]
fn a_timeout_behind_blocking_holders_in_statements_slower_than_db_slow_query_names_slow_statements()
{
    // Arrange: as above, on the blocking side.
    init_tracing();
    let db = TestDb::create(Server::shared(), "why_slow_sync");
    let budget = integration_tests::budget(2);
    budget.set_slow_query_threshold(SLOW);
    let pool = SyncPool::builder(db.url.clone(), budget.clone())
        .pool_timeout(POOL_TIMEOUT)
        .build();
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.get()?.execute("DO SLEEP(2)", ()).map(drop))
        })
        .collect();
    wait_for_active(&budget, Side::Sync);
    std::thread::sleep(SLOW);

    // Act
    let (cause, holders, msg) = why(pool.get().unwrap_err());

    // Assert
    println!("slow sync: {msg}");
    assert_eq!(cause, WaitCause::SlowStatements, "{msg}");
    assert!(msg.contains("(sync): slow statements — "), "{msg}");
    assert_eq!(
        holders.iter().map(|h| h.count).sum::<u32>(),
        2,
        "{holders:?}"
    );
    for s in sleepers {
        s.join().unwrap().expect("the sleeping holder");
    }
}

#[test]
fn a_timeout_while_the_server_refuses_every_connect_names_failing_connects_on_either_side() {
    // Arrange: both pools on a server that answers every connect with ERROR 1040; no
    // connection is held, the budget has room.
    init_tracing();
    let full = fake::TooManyConnections::start().expect("bind a local port");
    let url = DatabaseUrl::parse(&fake::url(full.port())).expect("fake url");
    let rt = runtime();
    let budget = integration_tests::budget(2);
    let apool = async_pool(&rt, &url, &budget, POOL_TIMEOUT);
    let spool = SyncPool::builder(url, budget.clone())
        .pool_timeout(POOL_TIMEOUT)
        .build();

    // Act
    let async_err = rt.block_on(apool.acquire()).unwrap_err();
    let sync_err = spool.get().unwrap_err();

    // Assert: each side's own failed connects name the cause; nobody holds anything.
    for (err, side) in [(async_err, Side::Async), (sync_err, Side::Sync)] {
        assert!(
            matches!(err, DbError::PoolTimeout { side: s, phase: TimeoutPhase::Connect, .. } if s == side),
            "{err:?}"
        );
        let (cause, holders, msg) = why(err);
        println!("failing connects: {msg}");
        assert_eq!(cause, WaitCause::FailingConnects, "{msg}");
        assert!(holders.is_empty(), "{holders:?}");
        assert!(
            msg.contains(&format!("({side}): failing connects; budget")),
            "{msg}"
        );
        assert!(!msg.contains(fake::PASSWORD), "{msg}");
    }
    assert!(full.accepted() > 0, "the fake server was asked");
}

#[test]
fn timeouts_among_many_short_callers_name_the_backlog() {
    // Arrange: budget 2, and 30 callers at once, each running a 50 ms statement (below
    // DB_SLOW_QUERY, 200 ms) on a short checkout (far below the leak threshold): more
    // work than two connections do within the pool timeout.
    init_tracing();
    let db = TestDb::create(Server::shared(), "why_backlog");
    let rt = runtime();
    let budget = integration_tests::budget(2);
    let pool = async_pool(&rt, &db.url, &budget, POOL_TIMEOUT);

    // Act
    let outcomes: Vec<Result<(), DbError>> = rt.block_on(async {
        let callers = (0..30).map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                conn.execute("DO SLEEP(0.05)", args![]).await.map(drop)
            })
        });
        futures_util::future::join_all(callers)
            .await
            .into_iter()
            .map(|r| r.expect("caller task"))
            .collect()
    });

    // Assert: some were served, some timed out, and every timeout says backlog.
    let served = outcomes.iter().filter(|r| r.is_ok()).count();
    let causes: Vec<WaitCause> = outcomes
        .into_iter()
        .filter_map(Result::err)
        .map(|e| why(e).0)
        .collect();
    println!("backlog: {served} served, timeouts: {causes:?}");
    assert!(
        served > 0 && !causes.is_empty(),
        "{served} served, {causes:?}"
    );
    assert!(
        causes.iter().all(|c| *c == WaitCause::Backlog),
        "{causes:?}"
    );
}

fn async_pool(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    budget: &Budget,
    timeout: Duration,
) -> AsyncPool {
    let _e = rt.enter();
    AsyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(timeout)
        .build()
}

/// Waits until both units of `side` are checked out.
fn wait_for_active(budget: &Budget, side: Side) {
    let both = eventually(Duration::from_secs(5), || {
        budget.snapshot().side(side).active == 2
    });
    assert!(both, "{}", budget.snapshot());
}
