//! A frozen server: SIGSTOP for 5 s, then SIGCONT.

use std::time::Duration;

use mariadb_harness::ServerOptions;

use super::{AFTER, RECOVERY, STEADY, WARM_UP, fail_fast_bound};
use crate::fault_support::{
    BUDGET, FaultReport, Rig, app_options, assert_no_surprises, check_and_print_ledger,
};

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
    // A statement already sent waits for the frozen server's answer (the default
    // statement timeout, 10 s, is longer than the pause): only requests holding one of
    // the budget's connections can, and they are answered once the server runs again.
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
