//! What databases do in production, under steady mixed load.
//!
//! Each test starts its own private MariaDB and the whole application on it (budget 20,
//! `DB_POOL_TIMEOUT=1s`, `DB_CONNECT_TIMEOUT=1s`), runs the load of
//! the `loadgen` crate (200 simulated players, about 500 requests/s: 150 over HTTP,
//! 50 sending their gameplay events over WebSockets; async retention routes and
//! blocking legacy routes mixed), injects one fault, and checks what the clients saw:
//!
//! - nothing failed in the steady state before the fault;
//! - every failure was a 503 (never a 500, a broken connection or a hang), and came
//!   within the pool timeout (+ the connect timeout where connects can hang) + a
//!   scheduling margin;
//! - failures stopped within 2 s of the server being back;
//! - every reward claim and quest completion a client was told succeeded is in the
//!   ledger exactly once, and every other ledger row belongs to an attempt whose answer
//!   was a 503 or lost (it may have committed before the connection broke);
//! - afterwards no budget unit is stuck, the server sees no connection the budget does
//!   not count, and a graceful shutdown gives every unit back.
//!
//! The faults: a restart (stop, 3 s down, start); SIGSTOP for 5 s; `KILL` of every
//! connection of the app's account; `wait_timeout=2` with idle pools; `max_connections`
//! lowered below the budget at runtime. Two limits show in the figures and are asserted
//! as such: there is no statement timeout, so a statement already sent to a frozen
//! server waits for it (at most one request per connection of the budget); and a
//! connection used within the last 500 ms is reused without a ping (the validation
//! bypass), so a killed idle connection fails the one statement sent on it next.
//!
//! Figures are printed (`cargo nextest run -p server --test faults --no-capture`, or
//! `FAULT_LOG=warn` for the app's warnings too).

mod common;
mod fault_support;

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, Snapshot};
use fault_support::{
    BUDGET, CONNECT_TIMEOUT, FaultReport, MARGIN, POOL_TIMEOUT, Rig, app_options,
    assert_no_surprises, check_and_print_ledger,
};
use mariadb_harness::ServerOptions;

/// Load before the fault, to reach a steady state.
const WARM_UP: Duration = Duration::from_secs(4);
/// The load's ramp (clients starting) and a moment for the pools to settle: requests
/// sent before this are not part of the steady state checked before the fault.
const STEADY: Duration = Duration::from_millis(2500);
/// Load after the fault: the 2 s recovery window and then some.
const AFTER: Duration = Duration::from_secs(4);
/// "Within 2 s after the server is back the error rate is 0."
const RECOVERY: Duration = Duration::from_secs(2);

/// The longest a failing request may take: the waits the settings allow, plus margin.
fn fail_fast_bound() -> Duration {
    POOL_TIMEOUT + CONNECT_TIMEOUT + MARGIN
}

fn timeouts(s: &Snapshot) -> u64 {
    s.async_side.acquire_timeouts_total + s.sync_side.acquire_timeouts_total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_fails_fast_with_503s_and_recovers_within_2_s() {
    // Arrange
    let rig = Rig::start(ServerOptions::default(), app_options()).await;
    let load = rig.load();
    tokio::time::sleep(WARM_UP).await;

    // Act: stop mariadbd (SIGTERM, wait for exit), 3 s down, start it again.
    let begin = load.recorder.now();
    rig.admin(|s| s.stop()).await.expect("stop the server");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.admin(|s| s.restart_after_stop())
        .await
        .expect("restart the server");
    let end = load.recorder.now();
    tokio::time::sleep(AFTER).await;
    let recorder = load.stop().await;

    // Assert
    let report = FaultReport::new("restart", &recorder.samples(), STEADY, begin, end);
    report.print();
    report.assert_clean_before();
    report.assert_only_503();
    // Down, the server refuses connections at once: no wait beyond the pool timeout.
    report.assert_failed_within(POOL_TIMEOUT + MARGIN);
    report.assert_recovered_within(RECOVERY);
    assert!(
        report.failures.values().sum::<usize>() > 0,
        "the outage was seen"
    );
    assert_no_surprises(&recorder);
    check_and_print_ledger(&rig, &[&recorder]).await;
    rig.assert_no_stuck_units_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_sigstop_5_s_gives_bounded_waits_and_recovers_within_2_s() {
    // Arrange
    let rig = Rig::start(ServerOptions::default(), app_options()).await;
    let load = rig.load();
    tokio::time::sleep(WARM_UP).await;

    // Act: SIGSTOP mariadbd for 5 s, then SIGCONT.
    let begin = load.recorder.now();
    rig.admin(|s| s.pause()).await.expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(5)).await;
    rig.admin(|s| s.resume()).await.expect("SIGCONT");
    let end = load.recorder.now();
    tokio::time::sleep(AFTER).await;
    let recorder = load.stop().await;

    // Assert
    let report = FaultReport::new("SIGSTOP 5 s", &recorder.samples(), STEADY, begin, end);
    report.print();
    report.assert_clean_before();
    report.assert_only_503();
    report.assert_failed_within(fail_fast_bound());
    report.assert_recovered_within(RECOVERY);
    // A statement already sent waits for the frozen server's answer (there is no
    // statement timeout): only requests holding one of the budget's connections can,
    // and they are answered once the server runs again.
    let slow: usize = report.slow_successes.values().sum();
    assert!(
        slow <= BUDGET as usize,
        "{slow} requests waited longer than {:?} for the server, more than the {BUDGET} connections",
        fail_fast_bound()
    );
    assert!(
        report.last_answer_of_fault <= end + fail_fast_bound(),
        "a request sent during the pause was answered only at {:?} (the server ran again at {end:?})",
        report.last_answer_of_fault
    );
    assert_no_surprises(&recorder);
    check_and_print_ledger(&rig, &[&recorder]).await;
    rig.assert_no_stuck_units_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_pooled_connection_fails_at_most_one_statement_per_connection() {
    // Arrange
    let rig = Rig::start(ServerOptions::default(), app_options()).await;
    let load = rig.load();
    tokio::time::sleep(WARM_UP).await;
    let opened_before = {
        let s = rig.app.budget.snapshot();
        s.async_side.opened_total + s.sync_side.opened_total
    };

    // Two statements surely in flight at the KILL: a long SLEEP through each pool,
    // running on the server before the connections are listed.
    let pool = rig.app.async_pool.clone();
    let sleeping_async = tokio::spawn(async move {
        let mut conn = pool.acquire().await.expect("an async connection");
        conn.fetch_one::<(i64,)>("SELECT SLEEP(20)", args![]).await
    });
    let pool = rig.app.sync_pool.clone();
    let sleeping_sync = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().expect("a blocking connection");
        conn.fetch_one::<(i64,)>("SELECT SLEEP(20)", ())
    });
    let sleeping = || async {
        rig.admin(|s| {
            s.sql(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE USER = 'app' AND INFO LIKE 'SELECT SLEEP%'",
            )
        })
        .await
        .expect("count the sleepers")
        .trim()
        .to_owned()
    };
    while sleeping().await != "2" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Act: from an admin session, KILL every connection of the app's account. Each
    // fails the statement in flight on it, or, idle for less than the validation bypass
    // (500 ms), the next statement sent on it; then the pools replace it.
    let begin = load.recorder.now();
    let opened_total = || {
        let s = rig.app.budget.snapshot();
        s.async_side.opened_total + s.sync_side.opened_total
    };
    let opened_at_kill = opened_total();
    let listed = rig
        .admin(|s| {
            let listed =
                s.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")?;
            // One statement for all of them (MariaDB): none can slip away between a
            // list and its KILLs.
            s.sql("KILL CONNECTION USER 'app'")?;
            Ok::<String, std::io::Error>(listed)
        })
        .await
        .expect("kill the app's connections");
    // Those listed, plus any the pools opened meanwhile: at least as many as were killed.
    let killed = listed.trim().parse::<u64>().expect("a count") + opened_total() - opened_at_kill;
    let end = load.recorder.now();
    let in_flight_async = sleeping_async.await.expect("async sleeper");
    let in_flight_sync = sleeping_sync.await.expect("blocking sleeper");
    tokio::time::sleep(AFTER).await;
    let recorder = load.stop().await;

    // Assert
    eprintln!("   killed mid-statement: async {in_flight_async:?}; blocking {in_flight_sync:?}");
    for (side, result) in [
        ("async", in_flight_async.map(|_| ())),
        ("blocking", in_flight_sync.map(|_| ())),
    ] {
        let e = result.expect_err("the statement was killed");
        assert!(
            e.is_unavailable(),
            "{side}: a statement on a killed connection must be 'unavailable' (a 503), got {e:?}"
        );
    }
    let report = FaultReport::new(
        "KILL every pooled connection",
        &recorder.samples(),
        STEADY,
        begin,
        end,
    );
    report.print();
    let failed: usize = report.failures.values().sum();
    let opened = {
        let s = rig.app.budget.snapshot();
        s.async_side.opened_total + s.sync_side.opened_total
    } - opened_before;
    eprintln!(
        "   killed {killed} connections; {failed} requests failed; {opened} connections opened since"
    );
    assert!(killed > 0, "there were pooled connections to kill");
    report.assert_clean_before();
    report.assert_only_503();
    assert!(
        failed as u64 <= killed,
        "{failed} requests failed for {killed} killed connections: more than one statement per connection"
    );
    report.assert_failed_within(fail_fast_bound());
    report.assert_recovered_within(RECOVERY);
    assert!(opened > 0, "the pools replaced the killed connections");
    assert_no_surprises(&recorder);
    check_and_print_ledger(&rig, &[&recorder]).await;
    rig.assert_no_stuck_units_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_by_wait_timeout_while_idle_never_reach_a_client() {
    // Arrange: the server closes connections idle for 2 s; the pools' idle timeout is
    // longer (10 s), so only validation before reuse can save the next requests.
    let rig = Rig::start(
        ServerOptions {
            extra_args: vec!["--wait-timeout=2".into()],
            ..ServerOptions::default()
        },
        common::AppOptions {
            env: vec![
                ("DB_CONNECT_TIMEOUT", "1s".to_owned()),
                ("DB_IDLE_TIMEOUT", "10s".to_owned()),
            ],
            ..app_options()
        },
    )
    .await;
    let warm = rig.load();
    tokio::time::sleep(WARM_UP).await;
    let warm = warm.stop().await;
    // The async side holds most units now; give the blocking side some idle ones too.
    let pool = rig.app.sync_pool.clone();
    tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..4)
            .map(|_| pool.get().expect("a blocking connection"))
            .collect();
        drop(held);
    })
    .await
    .unwrap();
    let idle = rig.app.budget.snapshot();
    assert!(
        idle.async_side.idle > 0 && idle.sync_side.idle > 0,
        "both pools hold idle connections: {idle}"
    );

    // Act: let the pools idle past wait_timeout, then load again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let on_server = rig.server_connections().await;
    let load = rig.load();
    tokio::time::sleep(AFTER).await;
    let recorder = load.stop().await;

    // Assert
    let after = rig.app.budget.snapshot();
    let closed = |s: &Snapshot, reason: &str| -> u64 {
        [&s.async_side, &s.sync_side]
            .iter()
            .flat_map(|side| side.closed_total.iter())
            .filter(|(r, _)| r.as_str() == reason)
            .map(|(_, n)| n)
            .sum()
    };
    let broken = closed(&after, "broken") - closed(&idle, "broken");
    let reaped = closed(&after, "idle_timeout") - closed(&idle, "idle_timeout");
    let report = FaultReport::new(
        "wait_timeout=2",
        &recorder.samples(),
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    report.print();
    eprintln!(
        "   idle before the pause: {} async + {} sync; the server kept {on_server} of them; \
         closed as broken on reuse: {broken}; reaped by the idle timeout: {reaped}",
        idle.async_side.idle, idle.sync_side.idle
    );
    assert_eq!(on_server, 0, "the server closed the idle connections");
    assert_eq!(reaped, 0, "validation, not the reaper, replaced them");
    assert!(broken > 0, "validation found the closed connections");
    assert!(
        report.failures.is_empty(),
        "no request failed: {:?}",
        report.failures
    );
    assert_no_surprises(&warm);
    assert_no_surprises(&recorder);
    check_and_print_ledger(&rig, &[&warm, &recorder]).await;
    rig.assert_no_stuck_units_and_stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_lowered_below_the_budget_gives_counted_503s_and_service_resumes() {
    // Arrange: connections live 2 s, so the pools reconnect all the time and meet the
    // lowered limit at once (lowering max_connections closes no open connection).
    let rig = Rig::start(
        ServerOptions::default(),
        common::AppOptions {
            env: vec![
                ("DB_CONNECT_TIMEOUT", "1s".to_owned()),
                ("DB_MAX_LIFETIME", "2s".to_owned()),
            ],
            ..app_options()
        },
    )
    .await;
    // Other clients of the server (root, so that the lowered limit cannot refuse them):
    // one admin session and 7 idle sessions, open before the limit falls. MariaDB's
    // floor for max_connections is 10, so with them the app's account gets 2.
    let others = AsyncPool::builder(
        DatabaseUrl::parse(&rig.server.root_url(&rig.app.db)).expect("root URL"),
        Budget::new(8, Duration::from_secs(60)),
    )
    .build();
    let mut admin = others.acquire().await.expect("an admin session");
    let mut idle = Vec::new();
    for _ in 0..7 {
        idle.push(others.acquire().await.expect("another client's session"));
    }
    let load = rig.load();
    tokio::time::sleep(WARM_UP).await;
    let before = rig.app.budget.snapshot();

    // Act: max_connections 10 (the floor) for 4 s, then 200 again.
    let begin = load.recorder.now();
    admin
        .execute("SET GLOBAL max_connections = 10", args![])
        .await
        .expect("lower max_connections");
    tokio::time::sleep(Duration::from_secs(4)).await;
    admin
        .execute("SET GLOBAL max_connections = 200", args![])
        .await
        .expect("raise max_connections");
    let end = load.recorder.now();
    drop((admin, idle));
    tokio::time::sleep(AFTER).await;
    let recorder = load.stop().await;

    // Assert
    let after = rig.app.budget.snapshot();
    let report = FaultReport::new(
        "max_connections 10 (2 for the app) < budget 20",
        &recorder.samples(),
        STEADY,
        begin,
        end,
    );
    report.print();
    let failed: usize = report.failures.values().sum();
    let counted = timeouts(&after) - timeouts(&before);
    let refused = rig
        .admin(|s| s.global_status("Connection_errors_max_connections"))
        .await
        .expect("status");
    eprintln!(
        "   {failed} requests failed; acquire timeouts counted in metrics: {counted}; \
         connects refused by the server (Connection_errors_max_connections): {refused}"
    );
    report.assert_clean_before();
    report.assert_only_503();
    report.assert_failed_within(fail_fast_bound());
    report.assert_recovered_within(RECOVERY);
    assert!(failed > 0, "the lowered limit was felt");
    assert!(
        counted as usize >= failed,
        "every 503 is counted in db_acquire_timeouts_total ({counted} < {failed})"
    );
    assert_no_surprises(&recorder);
    check_and_print_ledger(&rig, &[&recorder]).await;
    rig.assert_no_stuck_units_and_stop().await;
}
