//! `/admin/budget`: shrinking never closes a connection in use and the units in use
//! come down to the new capacity as holders return; growing lets waiters through at once.

use std::sync::mpsc;
use std::time::Duration;

use db_budget::DbError;

use super::support::{Setup, async_id, eventually, start, sync_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_while_every_unit_is_held_closes_none_in_use_and_in_use_converges_as_holders_return()
 {
    // Arrange: all 4 units held, 2 async and 2 blocking.
    let ctl = start(
        "ctl_shrink",
        Setup {
            pool_timeout: Duration::from_millis(500),
            ..Setup::default()
        },
    )
    .await;
    let mut asyncs = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut conn = ctl.async_pool.acquire().await.unwrap();
        ids.push(async_id(&mut conn).await);
        asyncs.push(conn);
    }
    let mut releases = Vec::new();
    let mut syncs = Vec::new();
    for _ in 0..2 {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (id_tx, id_rx) = tokio::sync::oneshot::channel();
        let pool = ctl.sync_pool.clone();
        syncs.push(tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().expect("blocking connection");
            let id = sync_id(&mut conn);
            let _ = id_tx.send(id);
            release_rx.recv().ok();
            // Still the same session after the shrink.
            sync_id(&mut conn) == id
        }));
        ids.push(id_rx.await.unwrap());
        releases.push(release_tx);
    }
    assert_eq!(ctl.budget.in_use(), 4);

    // Act
    let r = ctl.post("/admin/budget", r#"{"capacity": 1}"#).await;

    // Assert: every holder keeps its connection and can use it.
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(
        (v["capacity"].clone(), v["previous"].clone()),
        (1.into(), 4.into())
    );
    assert_eq!(
        (v["owed"].clone(), v["in_use"].clone()),
        (3.into(), 4.into())
    );
    let mut live = ctl.server_connections();
    ids.sort_unstable();
    live.sort_unstable();
    assert_eq!(live, ids, "no connection in use was closed");
    for conn in &mut asyncs {
        assert!(ids.contains(&async_id(conn).await));
    }
    let refused = ctl.async_pool.acquire().await.map(drop).unwrap_err();
    assert!(
        matches!(refused, DbError::PoolTimeout { .. }),
        "{refused:?}"
    );

    // Act and assert: the holders return one by one; in use comes down with each until
    // it reaches the new capacity (the last one is pooled).
    let mut expected = [3, 2, 1, 1].into_iter();
    for conn in asyncs.drain(..) {
        drop(conn);
        let in_use = expected.next().unwrap();
        eventually(&format!("{in_use} units in use"), || {
            ctl.budget.in_use() == in_use
        })
        .await;
    }
    for (release, holder) in releases.drain(..).zip(syncs.drain(..)) {
        release.send(()).unwrap();
        assert!(holder.await.unwrap(), "a blocking holder lost its session");
        let in_use = expected.next().unwrap();
        eventually(&format!("{in_use} units in use"), || {
            ctl.budget.in_use() == in_use
        })
        .await;
    }
    let snap = ctl.budget.snapshot();
    assert_eq!((snap.capacity, snap.in_use, ctl.budget.owed()), (1, 1, 0));
    eventually("the server holds one connection", || {
        ctl.server_connections().len() == 1
    })
    .await;
    let pool = ctl.sync_pool.clone();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let last = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().expect("the one unit serves");
        let id = sync_id(&mut conn);
        release_rx.recv().ok();
        id
    });
    eventually("the last connection is checked out", || {
        ctl.budget.snapshot().sync_side.active == 1
    })
    .await;
    let second = ctl.async_pool.acquire().await.map(drop).unwrap_err();
    assert!(matches!(second, DbError::PoolTimeout { .. }), "{second:?}");
    release_tx.send(()).unwrap();
    assert!(
        ids.contains(&last.await.unwrap()),
        "the pooled one is reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_lets_an_async_and_a_blocking_waiter_through() {
    // Arrange: a capacity of 1, held; one caller of each side waiting.
    let ctl = start(
        "ctl_grow",
        Setup {
            limit: 4,
            capacity: 1,
            ..Setup::default()
        },
    )
    .await;
    let mut held = ctl.async_pool.acquire().await.unwrap();
    let pool = ctl.async_pool.clone();
    let async_waiter = tokio::spawn(async move {
        let mut conn = pool.acquire().await?;
        Ok::<u64, DbError>(async_id(&mut conn).await)
    });
    let pool = ctl.sync_pool.clone();
    let sync_waiter = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        Ok::<u64, DbError>(sync_id(&mut conn))
    });
    eventually("both callers wait", || {
        let snap = ctl.budget.snapshot();
        snap.async_side.waiting == 1 && snap.sync_side.waiting == 1
    })
    .await;

    // Act
    let r = ctl.post("/admin/budget", r#"{"capacity": 3}"#).await;

    // Assert
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["limit"], 4);
    let (a, s) = tokio::time::timeout(Duration::from_secs(10), async {
        (async_waiter.await.unwrap(), sync_waiter.await.unwrap())
    })
    .await
    .expect("both waiters served within 10 s of the grow");
    let held_id = async_id(&mut held).await;
    let ids = [
        held_id,
        a.expect("async waiter"),
        s.expect("blocking waiter"),
    ];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_eq!(ctl.budget.snapshot().capacity, 3);
}
