//! `/admin/evict`: idle connections of both pools close now, connections in use close
//! when they come back, and the ones opened afterwards are kept, as the server's own
//! process list and `CONNECTION_ID()` show.

use super::support::{Ctl, Setup, async_id, eventually, start, sync_id};

/// The blocking pool's next checkout's `CONNECTION_ID()`, returned at once.
async fn next_sync_id(ctl: &Ctl) -> u64 {
    let pool = ctl.sync_pool.clone();
    tokio::task::spawn_blocking(move || sync_id(&mut pool.get().expect("blocking checkout")))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_closes_every_idle_connection_of_both_pools_now() {
    // Arrange: two idle async connections and one idle blocking one.
    let ctl = start("ctl_evict_idle", Setup::default()).await;
    let (mut a, mut b) = (
        ctl.async_pool.acquire().await.unwrap(),
        ctl.async_pool.acquire().await.unwrap(),
    );
    let mut old = vec![async_id(&mut a).await, async_id(&mut b).await];
    drop((a, b));
    old.push(next_sync_id(&ctl).await);
    old.sort_unstable();
    assert_eq!(ctl.server_connections(), old, "the server sees the three");

    // Act
    let r = ctl.post("/admin/evict", "").await;

    // Assert
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["idle_closed"], 3, "{v}");
    assert_eq!(v["closing_on_return"], 0, "{v}");
    eventually("the server no longer has the evicted connections", || {
        ctl.server_connections().is_empty()
    })
    .await;
    let snap = ctl.budget.snapshot();
    assert_eq!(snap.in_use, 0);
    let evicted: u64 = [snap.async_side, snap.sync_side]
        .iter()
        .flat_map(|s| s.closed_total.iter())
        .filter(|(reason, _)| reason.as_str() == "evicted")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(evicted, 3);
    let mut conn = ctl.async_pool.acquire().await.unwrap();
    let fresh = [async_id(&mut conn).await, next_sync_id(&ctl).await];
    assert!(
        fresh.iter().all(|id| !old.contains(id)),
        "{fresh:?} after {old:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_closes_a_connection_in_use_when_it_is_returned_and_keeps_the_ones_opened_after() {
    // Arrange: one connection of each side checked out.
    let ctl = start("ctl_evict_in_use", Setup::default()).await;
    let mut held = ctl.async_pool.acquire().await.unwrap();
    let held_async = async_id(&mut held).await;
    let pool = ctl.sync_pool.clone();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    let sync_holder = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().expect("held blocking connection");
        let _ = id_tx.send(sync_id(&mut conn));
        release_rx.recv().ok();
        // Still usable while it is held after the eviction.
        sync_id(&mut conn)
    });
    let held_sync = id_rx.await.unwrap();

    // Act
    let r = ctl.post("/admin/evict", "").await;

    // Assert: nothing in use is touched; each is closed when it comes back.
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["closing_on_return"], 2, "{r:?}");
    assert_eq!(
        async_id(&mut held).await,
        held_async,
        "in use, still the same session"
    );
    assert!(ctl.server_connections().contains(&held_async));
    drop(held);
    release_tx.send(()).unwrap();
    assert_eq!(sync_holder.await.unwrap(), held_sync);
    eventually("both returned connections are closed", || {
        let live = ctl.server_connections();
        !live.contains(&held_async) && !live.contains(&held_sync)
    })
    .await;

    // Assert: the connections opened after the eviction are reused, not churned.
    let mut conn = ctl.async_pool.acquire().await.unwrap();
    let fresh_async = async_id(&mut conn).await;
    drop(conn);
    let fresh_sync = next_sync_id(&ctl).await;
    assert_ne!(fresh_async, held_async);
    assert_ne!(fresh_sync, held_sync);
    for _ in 0..5 {
        let mut conn = ctl.async_pool.acquire().await.unwrap();
        assert_eq!(
            async_id(&mut conn).await,
            fresh_async,
            "async connection churned"
        );
        drop(conn);
        assert_eq!(
            next_sync_id(&ctl).await,
            fresh_sync,
            "blocking connection churned"
        );
    }
    let opened = ctl.budget.snapshot();
    assert_eq!(
        (
            opened.async_side.opened_total,
            opened.sync_side.opened_total
        ),
        (2, 2),
        "one connection before and one after the eviction, per side"
    );
}
