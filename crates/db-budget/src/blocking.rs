//! Waiting without a runtime: how a blocking thread queues on the same semaphore as
//! async tasks.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::DbError;

struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// How often [`park_while`] looks at its `keep_waiting` condition.
const RECHECK: Duration = Duration::from_millis(5);

/// Polls `fut` on this thread, parking between polls, until it completes, or `deadline`
/// passes, or `keep_waiting` (checked at least every 5 ms) returns false: `None`, and the
/// future is dropped, which for a semaphore acquire leaves the queue. Needs no runtime:
/// tokio's sync primitives only need a waker.
pub(crate) fn park_while<F: Future>(
    fut: F,
    deadline: Instant,
    keep_waiting: impl Fn() -> bool,
) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline || !keep_waiting() {
            return None;
        }
        thread::park_timeout((deadline - now).min(RECHECK));
    }
}

/// Runs `f`, which blocks this thread, in a way that is safe for the runtime the thread
/// belongs to, if any:
///
/// - no runtime: runs it;
/// - a multi-thread runtime (worker or blocking thread): inside
///   [`tokio::task::block_in_place`], so the worker's other tasks move elsewhere;
/// - a current-thread runtime: refuses with [`DbError::BlockingNotAllowed`] on the
///   thread that drives it, since every task on it (including the ones that would give
///   a connection back) would stall.
///
/// # Heuristic
///
/// tokio offers no public way to tell a current-thread runtime's own thread from its
/// `spawn_blocking` threads (both see the runtime's handle and a task id). Blocking
/// threads are named `tokio-rt-worker` (`tokio-runtime-worker` before tokio 1.50) unless
/// the runtime was built with another `thread_name`; that name is what this checks. A runtime with custom thread names
/// therefore gets a refusal from `spawn_blocking` too: use a multi-thread runtime there.
///
/// # Errors
///
/// [`DbError::BlockingNotAllowed`] as above.
pub fn block_safely<R>(f: impl FnOnce() -> R) -> Result<R, DbError> {
    match Handle::try_current() {
        Err(_) => Ok(f()),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::CurrentThread => {
            if matches!(
                thread::current().name(),
                Some("tokio-rt-worker" | "tokio-runtime-worker")
            ) {
                Ok(f())
            } else {
                Err(DbError::BlockingNotAllowed)
            }
        }
        Ok(_) => Ok(tokio::task::block_in_place(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_completes_and_a_pending_one_gives_up_at_the_deadline() {
        let sem = tokio::sync::Semaphore::new(1);
        let start = Instant::now();
        let first = park_while(sem.acquire(), start + Duration::from_secs(1), || true);
        assert!(first.is_some());
        let second = park_while(
            sem.acquire(),
            Instant::now() + Duration::from_millis(50),
            || true,
        );
        assert!(second.is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_release_from_another_thread_wakes_the_parked_thread() {
        let sem = Arc::new(tokio::sync::Semaphore::new(0));
        let s2 = sem.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            s2.add_permits(1);
        });
        let got = park_while(
            sem.acquire(),
            Instant::now() + Duration::from_secs(5),
            || true,
        );
        assert!(got.is_some());
        t.join().unwrap();
    }

    #[test]
    fn block_safely_refuses_on_a_current_thread_runtime_and_allows_spawn_blocking() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(matches!(
                block_safely(|| ()),
                Err(DbError::BlockingNotAllowed)
            ));
            let inside = tokio::task::spawn_blocking(|| block_safely(|| 7))
                .await
                .unwrap();
            assert_eq!(inside.unwrap(), 7);
        });
    }

    #[test]
    fn block_safely_runs_on_a_multi_thread_worker_and_a_plain_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let v = rt.block_on(async { tokio::spawn(async { block_safely(|| 3) }).await.unwrap() });
        assert_eq!(v.unwrap(), 3);
        assert_eq!(block_safely(|| 4).unwrap(), 4);
    }
}
