//! The client's backstop for a statement the server does not stop: one watchdog task
//! per pool instead of a timer per statement.
//!
//! The server enforces `DB_STATEMENT_TIMEOUT`; the client gives up only when the server
//! does not answer at all, at the limit plus a margin of seconds. A per-statement
//! `tokio::time::timeout` registered and removed a timer-wheel entry on every
//! statement, which cost 2–3 % of the throughput of short statements (BENCHMARKS.md
//! section 9) for a deadline that almost never fires. Here each connection has a
//! [`Watch`]: a statement stores its deadline in it (one atomic store) and clears it
//! after (another); the pool's watchdog looks at every watch each [`TICK`] and cuts off
//! the statements past their deadline, so the backstop fires up to one tick late.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

/// How often the watchdog looks: the backstop fires at most this late.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// No statement is running.
const IDLE: u64 = 0;
/// The watchdog cut off the running statement.
const EXPIRED: u64 = u64::MAX;

/// One connection's running statement, as the watchdog sees it.
#[derive(Debug)]
pub(crate) struct Watch {
    epoch: Instant,
    /// [`IDLE`], [`EXPIRED`], or the deadline in milliseconds since `epoch`.
    deadline: AtomicU64,
    /// The task running the statement, woken when it is cut off.
    waker: AtomicWaker,
}

impl Watch {
    /// Runs `statement`, cut off once it has run `wait`: `None` then (the future is
    /// dropped mid-exchange, as a timeout would drop it).
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future leaves the deadline set; the watchdog then marks it
    /// expired, which the next call overwrites. Nothing else is left behind.
    pub(crate) async fn guard<T>(
        &self,
        wait: Duration,
        statement: impl Future<Output = T>,
    ) -> Option<T> {
        let due = self.millis(Instant::now() + wait);
        self.deadline.store(due, Ordering::SeqCst);
        let mut statement = std::pin::pin!(statement);
        let r = std::future::poll_fn(|cx| {
            // Registered before the check: a cut-off after it wakes this task.
            self.waker.register(cx.waker());
            if self.deadline.load(Ordering::SeqCst) == EXPIRED {
                return Poll::Ready(None);
            }
            statement.as_mut().poll(cx).map(Some)
        })
        .await;
        self.deadline.store(IDLE, Ordering::SeqCst);
        r
    }

    fn millis(&self, at: Instant) -> u64 {
        // At least 1: 0 means no statement.
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms)
            .unwrap_or(EXPIRED - 1)
            .clamp(1, EXPIRED - 1)
    }

    /// Marks the running statement expired when it is past its deadline at `now`;
    /// `true` if it did (the caller then wakes it).
    fn expire_if_due(&self, now: u64) -> bool {
        let due = self.deadline.load(Ordering::SeqCst);
        // A statement that finished or started meanwhile changed the value: the
        // exchange fails and nothing is cut off.
        due != IDLE
            && due != EXPIRED
            && due <= now
            && self
                .deadline
                .compare_exchange(due, EXPIRED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }
}

/// Every connection's [`Watch`], held weakly (a closed connection's is dropped at the
/// next look).
#[derive(Debug)]
pub(crate) struct Watchdog {
    epoch: Instant,
    watches: Mutex<Vec<Weak<Watch>>>,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            epoch: Instant::now(),
            watches: Mutex::new(Vec::new()),
        }
    }
}

impl Watchdog {
    /// A watch for a new connection (once per connect, not per statement).
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            epoch: self.epoch,
            deadline: AtomicU64::new(IDLE),
            waker: AtomicWaker::new(),
        });
        self.lock().push(Arc::downgrade(&watch));
        watch
    }

    /// One look: cuts off every statement past its deadline, then wakes them (outside
    /// the lock). Returns how many it cut off.
    pub(crate) fn look(&self) -> usize {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(EXPIRED - 1);
        let due: Vec<Arc<Watch>> = {
            let mut watches = self.lock();
            watches.retain(|w| w.strong_count() > 0);
            watches
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|w| w.expire_if_due(now))
                .collect()
        };
        for w in &due {
            w.waker.wake();
        }
        due.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Watch>>> {
        // Nothing panics under this lock.
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_statement_past_its_deadline_is_cut_off_at_the_next_look() {
        let dog = Arc::new(Watchdog::default());
        let watch = dog.watch();
        let looker = {
            let dog = dog.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if dog.look() > 0 {
                        break;
                    }
                }
            })
        };
        let r = watch
            .guard(Duration::from_millis(20), std::future::pending::<()>())
            .await;
        assert_eq!(r, None);
        looker.await.unwrap();
        // The next statement starts afresh.
        assert_eq!(
            watch.guard(Duration::from_secs(60), async { 7 }).await,
            Some(7)
        );
    }

    #[tokio::test]
    async fn a_statement_that_finishes_in_time_is_never_cut_off() {
        let dog = Watchdog::default();
        let watch = dog.watch();
        assert_eq!(
            watch.guard(Duration::from_millis(1), async { 1 }).await,
            Some(1)
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(dog.look(), 0, "finished: nothing to cut off");
    }

    #[test]
    fn a_closed_connections_watch_is_forgotten() {
        let dog = Watchdog::default();
        drop(dog.watch());
        dog.look();
        assert!(dog.lock().is_empty());
    }
}
