//! A frozen server with `DB_STATEMENT_TIMEOUT=1s`: the statements sent before or during
//! the freeze are given up on by the client's backstop (the limit plus its margin, then
//! the connection is closed), so no request waits for the server to run again.
//!
//! The freeze lasts longer than any request may wait with the backstop (below), so a
//! request that waits for the frozen server instead, as every statement in flight does
//! without a backstop, cannot stay within the bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use db_async::args;
use db_budget::{DbError, StoppedBy};
use mariadb_harness::ServerOptions;

use super::{AFTER, RECOVERY, STEADY, WARM_UP};
use crate::common;
use crate::fault_support::{
    CONNECT_TIMEOUT, FaultReport, MARGIN, POOL_TIMEOUT, Rig, app_options, assert_no_surprises,
    check_and_print_ledger,
};

/// `DB_STATEMENT_TIMEOUT` of this test.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the server stays frozen: longer than [`longest_wait`].
const PAUSE: Duration = Duration::from_secs(8);

/// When the client gives up on a statement the server does not answer: 2 s after the
/// limit, as documented for `DB_STATEMENT_TIMEOUT` (3 s here).
fn backstop() -> Duration {
    STATEMENT_TIMEOUT + Duration::from_secs(2)
}

/// The longest any request may take while the server is frozen: waiting for a
/// connection (the pool timeout, plus the connect timeout when it opens one), then one
/// statement given up on by the backstop, plus the scheduling margin. The slack over the
/// backstop is therefore the pool and connect timeouts and the margin (1 s each).
fn longest_wait() -> Duration {
    POOL_TIMEOUT + CONNECT_TIMEOUT + backstop() + MARGIN
}

/// A holder's task: how many statements it completed, or its first error.
type Holder = tokio::task::JoinHandle<Result<u64, DbError>>;

/// A caller that holds one async connection and sends `SELECT SLEEP(0.5)` (under the
/// limit) on it again and again: a statement is in flight, or about to be sent, when
/// the server freezes. Ends at the first error, or when `stop` is set.
fn hold_async(rig: &Rig, stop: Arc<AtomicBool>) -> Holder {
    let pool = rig.app.async_pool.clone();
    tokio::spawn(async move {
        let mut conn = pool.acquire().await?;
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            conn.fetch_one::<(i64,)>("SELECT SLEEP(0.5)", args![])
                .await?;
            done += 1;
        }
        Ok(done)
    })
}

/// [`hold_async`] on a connection of the blocking pool.
fn hold_blocking(rig: &Rig, stop: Arc<AtomicBool>) -> Holder {
    let pool = rig.app.sync_pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            conn.fetch_one::<(i64,)>("SELECT SLEEP(0.5)", ())?;
            done += 1;
        }
        Ok(done)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_with_a_1_s_statement_timeout_answers_every_request_within_the_backstop() {
    // Arrange: the fault tests' app with a 1 s statement timeout, under the load, and
    // one connection of each pool held by a caller whose statements run on the server.
    let rig = Rig::start(
        ServerOptions::default(),
        common::AppOptions {
            env: vec![
                ("DB_CONNECT_TIMEOUT", "1s".to_owned()),
                ("DB_STATEMENT_TIMEOUT", "1s".to_owned()),
            ],
            ..app_options()
        },
    )
    .await;
    let load = rig.load();
    tokio::time::sleep(WARM_UP).await;
    let stop = Arc::new(AtomicBool::new(false));
    let holders = [
        ("async", hold_async(&rig, stop.clone())),
        ("blocking", hold_blocking(&rig, stop.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Act: freeze mariadbd (SIGSTOP, until the kernel shows it stopped), then SIGCONT.
    let begin = load.recorder.now();
    rig.admin(|s| s.freeze()).await.expect("SIGSTOP");
    tokio::time::sleep(PAUSE).await;
    rig.admin(|s| s.resume()).await.expect("SIGCONT");
    let end = load.recorder.now();
    stop.store(true, Ordering::Relaxed);
    let mut held = Vec::new();
    for (side, holder) in holders {
        held.push((side, holder.await.expect("the holder did not panic")));
    }
    tokio::time::sleep(AFTER).await;
    let recorder = load.stop().await;

    // Assert
    let report = FaultReport::new(
        "SIGSTOP 8 s, DB_STATEMENT_TIMEOUT=1s",
        &recorder.samples(),
        STEADY,
        begin,
        end,
    );
    report.print();
    let codes = recorder.error_codes();
    eprintln!("   5xx answers by error code: {codes:?}; held connections: {held:?}");
    assert!(
        report.max_latency <= longest_wait(),
        "a request took {:?}, longer than the backstop {:?} plus the pool and connect \
         timeouts and the margin ({:?}); the server was frozen for {PAUSE:?}",
        report.max_latency,
        backstop(),
        longest_wait()
    );
    for (side, result) in held {
        match result {
            Err(DbError::StatementTimeout {
                stopped_by: StoppedBy::Client,
                limit,
                ..
            }) => assert_eq!(limit, STATEMENT_TIMEOUT, "{side}: the session's limit"),
            other => panic!(
                "{side}: the statement in flight on the frozen server must be given up on by \
                 the client's backstop, got {other:?}"
            ),
        }
    }
    report.assert_clean_before();
    report.assert_only_503();
    let others: Vec<_> = codes
        .keys()
        .filter(|(status, code)| {
            *status != 503 || !matches!(code.as_str(), "unavailable" | "statement_timeout")
        })
        .collect();
    assert!(
        others.is_empty(),
        "5xx answers other than 503 unavailable/statement_timeout: {codes:?}"
    );
    assert!(
        codes.contains_key(&(503, "statement_timeout".to_owned())),
        "requests in flight at the freeze were answered with statement_timeout: {codes:?}"
    );
    report.assert_recovered_within(RECOVERY);
    assert_no_surprises(&recorder);
    check_and_print_ledger(&rig, &[&recorder]).await;
    rig.assert_no_stuck_units_and_stop().await;
}
