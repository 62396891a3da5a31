//! A server restart: stopped, 3 s down, started again.

use std::time::Duration;

use mariadb_harness::ServerOptions;

use super::{AFTER, RECOVERY, STEADY, WARM_UP};
use crate::fault_support::{
    FaultReport, MARGIN, POOL_TIMEOUT, Rig, app_options, assert_no_surprises,
    check_and_print_ledger,
};

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
