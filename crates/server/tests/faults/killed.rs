//! `KILL` of every connection of the app's account.

use std::time::Duration;

use db_async::args;
use mariadb_harness::ServerOptions;

use super::{AFTER, RECOVERY, STEADY, WARM_UP, fail_fast_bound};
use crate::fault_support::{
    FaultReport, Rig, app_options, assert_no_surprises, check_and_print_ledger,
};

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
