//! The server's `wait_timeout` closing connections while the pools idle.

use std::time::Duration;

use db_budget::Snapshot;
use mariadb_harness::ServerOptions;

use super::{AFTER, WARM_UP};
use crate::common;
use crate::fault_support::{
    FaultReport, Rig, app_options, assert_no_surprises, check_and_print_ledger,
};

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
