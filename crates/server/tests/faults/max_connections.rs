//! `max_connections` lowered below the budget at runtime.

use std::time::Duration;

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl};
use mariadb_harness::ServerOptions;

use super::{AFTER, RECOVERY, STEADY, WARM_UP, fail_fast_bound, timeouts};
use crate::common;
use crate::fault_support::{
    FaultReport, Rig, app_options, assert_no_surprises, check_and_print_ledger,
};

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
