//! A waiting async caller gets the unit of an idle or returned connection, and the
//! waiter thread does not close the idle connection it asks for.

use std::thread;
use std::time::{Duration, Instant};

use db_budget::{CloseReason, Side};

use crate::{assert_settled, closed, fixture};

#[test]
fn a_waiting_async_caller_gets_the_unit_of_an_idle_connection_at_once() {
    let f = fixture("sync_shrink", 1);
    drop(f.pool.get().unwrap()); // one idle connection holds the only unit
    assert_eq!(f.budget.in_use(), 1);

    let started = Instant::now();
    let unit = f
        .budget
        .acquire_blocking(Side::Async, started + Duration::from_secs(5))
        .expect("the sync side gave its idle connection back");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Yielded), 1);
    assert_eq!(f.pool.state().connections, 0);
    drop(unit);
    assert_settled(&f);
}

#[test]
fn a_connection_returned_while_the_async_side_waits_is_closed_not_pooled() {
    let f = fixture("sync_yield", 1);
    let conn = f.pool.get().unwrap();
    let budget = f.budget.clone();
    let waiter = thread::spawn(move || {
        budget
            .acquire_blocking(Side::Async, Instant::now() + Duration::from_secs(5))
            .map(drop)
    });
    // Once the async caller waits in the budget's queue, the sync side should yield.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.budget.should_yield(Side::Sync) {
        assert!(Instant::now() < deadline, "the async waiter never queued");
        thread::sleep(Duration::from_millis(5));
    }
    drop(conn);
    waiter
        .join()
        .unwrap()
        .expect("the returned connection's unit went to the waiter");
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Yielded), 1);
    assert_settled(&f);
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn the_async_waiter_thread_does_not_close_the_idle_connection_it_asks_for() {
    // `Shrink` must not block the thread that starts waiting (it may be a runtime
    // worker): the close, with its socket writes, happens elsewhere.
    let f = fixture("sync_shrink_thread", 1);
    drop(f.pool.get().unwrap()); // one idle connection holds the only unit
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Only this thread's events reach the subscriber.
    let unit = tracing::subscriber::with_default(subscriber, || {
        tracing::debug!("probe: the waiter thread logs here");
        f.budget
            .acquire_blocking(Side::Async, Instant::now() + Duration::from_secs(5))
    })
    .expect("the sync side gave its idle connection back");
    let text = logs.text();
    assert!(text.contains("probe: the waiter thread"), "{text}");
    assert!(
        !text.contains("closing a db-sync connection"),
        "the waiter's thread closed the connection itself:\n{text}"
    );
    assert_eq!(closed(&f.budget.snapshot(), CloseReason::Yielded), 1);
    assert_eq!(f.pool.state().connections, 0);
    drop(unit);
    assert_settled(&f);
}
