//! `/admin/suspend` and `/admin/resume`: new checkouts of both pools wait (even for an
//! idle connection), checkouts already made finish, and a resume lets the waiters on.

use std::time::Duration;

use db_async::Args;
use db_budget::{DbError, Side};

use crate::admin_support::metrics::parse_metrics;

use super::support::{Setup, async_id, eventually, start, sync_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_makes_new_async_and_blocking_checkouts_wait_even_for_idle_connections_while_a_held_one_finishes()
 {
    // Arrange: an idle connection in each pool, and one async connection held.
    let ctl = start("ctl_suspend", Setup::default()).await;
    let mut held = ctl.async_pool.acquire().await.expect("held connection");
    drop(
        ctl.async_pool
            .acquire()
            .await
            .expect("a second async connection"),
    );
    let sync_pool = ctl.sync_pool.clone();
    tokio::task::spawn_blocking(move || drop(sync_pool.get().expect("a blocking connection")))
        .await
        .unwrap();
    assert_eq!(ctl.async_pool.idle_count(), 1);
    assert_eq!(ctl.sync_pool.state().idle, 1);

    // Act
    let r = ctl.post("/admin/suspend", "").await;
    let pool = ctl.async_pool.clone();
    let async_waiter = tokio::spawn(async move {
        let mut conn = pool.acquire().await?;
        conn.fetch_one::<(i64,)>("SELECT 1", Args::default()).await
    });
    let pool = ctl.sync_pool.clone();
    let sync_waiter = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        conn.fetch_one::<(i64,)>("SELECT 1", ())
    });

    // Assert: both wait at the gate; nothing was handed out, not even the idle ones.
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(
        (v["suspended"].clone(), v["changed"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(v["checked_out"], 1, "{v}");
    assert_eq!(v["async_checked_out"], 1, "{v}");
    eventually("both checkouts wait at the gate", || {
        ctl.budget.suspended_waiting() == 2
    })
    .await;
    let in_flight = async_id(&mut held).await;
    assert!(
        ctl.server_connections().contains(&in_flight),
        "the held connection runs statements while suspended"
    );
    assert!(!async_waiter.is_finished() && !sync_waiter.is_finished());
    assert_eq!(
        ctl.async_pool.idle_count(),
        1,
        "the idle async connection stays idle"
    );
    assert_eq!(ctl.sync_pool.state().idle, 1, "the idle blocking one too");
    let c = ctl.controls().await;
    assert_eq!(
        (c["suspended"].clone(), c["suspended_waiting"].clone()),
        (true.into(), 2.into())
    );
    let metrics = parse_metrics(&ctl.get("/metrics").await.body);
    assert_eq!(metrics.get("db_budget_suspended", &[]), 1.0);
    assert_eq!(metrics.get("db_budget_suspended_waiting", &[]), 2.0);
    let ready = ctl.get("/readyz").await;
    assert_eq!(
        ready.status, 200,
        "a suspended instance stays ready: {ready:?}"
    );
    assert_eq!(ready.json()["async"], "suspended");
    drop(held);
    assert!(!async_waiter.is_finished() && !sync_waiter.is_finished());

    // Act: resume.
    let r = ctl.post("/admin/resume", "").await;

    // Assert: both go on, each on a connection.
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["released"], 2);
    let (a, s) = tokio::time::timeout(Duration::from_secs(10), async {
        (async_waiter.await.unwrap(), sync_waiter.await.unwrap())
    })
    .await
    .expect("both waiters served within 10 s of the resume");
    assert_eq!(a.expect("async checkout after the resume"), (1,));
    assert_eq!(s.expect("blocking checkout after the resume"), (1,));
    assert_eq!(ctl.budget.suspended_waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_still_waiting_at_its_pool_timeout_fails_with_the_suspended_error_and_a_resume_serves_again()
 {
    // Arrange
    let ctl = start(
        "ctl_suspend_timeout",
        Setup {
            pool_timeout: Duration::from_millis(500),
            ..Setup::default()
        },
    )
    .await;
    assert_eq!(ctl.post("/admin/suspend", "").await.status, 200);

    // Act
    let async_err = ctl.async_pool.acquire().await.map(drop).unwrap_err();
    let pool = ctl.sync_pool.clone();
    let sync_err = tokio::task::spawn_blocking(move || pool.get().map(drop).unwrap_err())
        .await
        .unwrap();

    // Assert
    assert!(
        matches!(
            async_err,
            DbError::Suspended {
                side: Side::Async,
                ..
            }
        ),
        "{async_err:?}"
    );
    assert!(
        matches!(
            sync_err,
            DbError::Suspended {
                side: Side::Sync,
                ..
            }
        ),
        "{sync_err:?}"
    );
    assert!(sync_err.to_string().contains("suspended"), "{sync_err}");
    let snap = ctl.budget.snapshot();
    assert_eq!(
        (
            snap.async_side.acquire_timeouts_total,
            snap.sync_side.acquire_timeouts_total
        ),
        (0, 0),
        "a suspension is not a pool timeout"
    );
    assert_eq!((snap.in_use, ctl.budget.suspended_waiting()), (0, 0));
    assert_eq!(ctl.post("/admin/resume", "").await.status, 200);
    let mut conn = ctl
        .async_pool
        .acquire()
        .await
        .expect("served after the resume");
    assert!(async_id(&mut conn).await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_cancelled_while_suspended_leaves_nothing_behind_and_closing_the_pool_ends_a_blocking_wait()
 {
    // Arrange
    let ctl = start("ctl_suspend_cancel", Setup::default()).await;
    assert_eq!(ctl.post("/admin/suspend", "").await.status, 200);

    // Act: an async checkout cut off while it waits at the gate.
    let cut = tokio::time::timeout(Duration::from_millis(200), ctl.async_pool.acquire()).await;

    // Assert
    assert!(cut.is_err(), "it waited at the gate");
    let snap = ctl.budget.snapshot();
    assert_eq!(ctl.budget.suspended_waiting(), 0, "it left the gate");
    assert_eq!(
        (snap.in_use, snap.async_side.waiting, snap.async_side.active),
        (0, 0, 0)
    );

    // Act: a blocking checkout at the gate when its pool closes.
    let pool = ctl.sync_pool.clone();
    let waiter = tokio::task::spawn_blocking(move || pool.get().map(drop));
    eventually("the blocking checkout waits at the gate", || {
        ctl.budget.suspended_waiting() == 1
    })
    .await;
    ctl.sync_pool.close();

    // Assert
    let closed = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("ended within 5 s of the close")
        .unwrap();
    assert!(matches!(closed, Err(DbError::Closed)), "{closed:?}");
    assert_eq!(ctl.budget.suspended_waiting(), 0);
    assert_eq!(ctl.post("/admin/resume", "").await.status, 200);
    let mut conn = ctl.async_pool.acquire().await.expect("async still serves");
    let id = async_id(&mut conn).await;
    assert_eq!(
        ctl.server_connections(),
        vec![id],
        "nothing else was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_already_queued_for_a_connection_when_the_budget_is_suspended_is_not_handed_one() {
    // Arrange: one unit, held; a blocking caller queued for it.
    let ctl = start(
        "ctl_suspend_queued",
        Setup {
            limit: 2,
            capacity: 1,
            ..Setup::default()
        },
    )
    .await;
    let pool = ctl.sync_pool.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().expect("the one connection");
        let _ = id_tx.send(sync_id(&mut conn));
        held_rx.recv().ok();
        drop(conn);
    });
    let first = id_rx.await.expect("the holder has the connection");
    let pool = ctl.sync_pool.clone();
    let queued = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        Ok::<u64, DbError>(sync_id(&mut conn))
    });
    eventually("the second caller queues in the pool", || {
        ctl.budget.snapshot().sync_side.waiting == 1
    })
    .await;

    // Act: suspend, then the holder gives its connection back.
    assert_eq!(ctl.post("/admin/suspend", "").await.status, 200);
    held_tx.send(()).unwrap();
    holder.await.unwrap();

    // Assert: the returned connection is not handed to the queued caller; it waits at
    // the gate, and gets it after the resume.
    eventually("the queued caller moved to the gate", || {
        ctl.budget.suspended_waiting() == 1
    })
    .await;
    assert!(!queued.is_finished());
    assert_eq!(
        ctl.budget.snapshot().sync_side.active,
        0,
        "nothing handed out"
    );
    assert_eq!(ctl.post("/admin/resume", "").await.status, 200);
    let second = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("served within 10 s of the resume")
        .unwrap()
        .expect("a connection after the resume");
    assert_eq!(second, first, "the same connection, pooled while suspended");
}
