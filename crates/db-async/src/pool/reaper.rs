//! Background work on idle connections: the hand-over to the other side ([`Shrink`]) and
//! the reaper of expired ones.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use db_budget::{CloseReason, Shrink};

use super::lingering::Busy;
use super::{Idle, Shared};
use crate::slot::Farewell;

impl Shrink for Shared {
    /// Ends lingering sessions over the oldest idle connection, if one is idle and no
    /// reap runs (`lingering.rs`), in a task on the pool's runtime. Never waits for the
    /// pool's lock (the unit whose drop called it may have been dropped under it): if
    /// the lock is held, a task looks again.
    fn reap_lingering(self: Arc<Self>) {
        match self.try_take_idle_for_reap() {
            Ok(Some(idle)) => self.reap(idle),
            Ok(None) => {}
            Err(Busy) => {
                // Locked this instant (perhaps by the very code that dropped the unit):
                // look again from a task, once the holder is done, so that a pool that
                // goes quiet does not idle beside a session nobody killed.
                let shared = self.clone();
                self.spawn(async move { shared.reap_if_needed() });
            }
        }
    }

    /// Gives the oldest idle connection back to the budget: the other side waits.
    fn shrink_idle(&self) -> bool {
        let idle = {
            let mut q = self.lock();
            let idle = q.idle.pop_front();
            if idle.is_some() {
                self.recorder.add_idle(-1);
            }
            idle
        };
        let Some(idle) = idle else {
            return false;
        };
        self.discard(idle.slot, CloseReason::Yielded, Farewell::Graceful);
        true
    }

    /// Closes every idle connection an eviction condemned (`Budget::evict`), in the
    /// background.
    fn evict_idle(&self) -> u32 {
        let evicted: Vec<Idle> = {
            let mut q = self.lock();
            let (evicted, keep): (VecDeque<Idle>, VecDeque<Idle>) = q
                .idle
                .drain(..)
                .partition(|i| self.budget.is_evicted(i.slot.generation));
            q.idle = keep;
            self.recorder.add_idle(-(evicted.len() as i32));
            evicted.into()
        };
        let n = evicted.len() as u32;
        for idle in evicted {
            self.discard(idle.slot, CloseReason::Evicted, Farewell::Graceful);
        }
        n
    }
}

/// Closes idle connections past `DB_IDLE_TIMEOUT` or `DB_MAX_LIFETIME`; ends when the
/// pool is dropped.
pub(super) async fn reap(shared: Weak<Shared>) {
    let tick = match shared.upgrade() {
        Some(s) => {
            (s.settings.idle_timeout / 4).clamp(Duration::from_millis(25), Duration::from_secs(1))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(tick).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let expired: Vec<(Idle, CloseReason)> = {
            let mut q = shared.lock();
            let mut keep = VecDeque::with_capacity(q.idle.len());
            let mut expired = Vec::new();
            let closed = shared.is_closed();
            for i in q.idle.drain(..) {
                if closed {
                    // The budget closed under the pool (`AsyncPool::close` drains it
                    // itself).
                    expired.push((i, CloseReason::PoolClosed));
                } else if i.slot.opened_at.elapsed() >= shared.settings.max_lifetime {
                    expired.push((i, CloseReason::MaxLifetime));
                } else if i.since.elapsed() >= shared.settings.idle_timeout {
                    expired.push((i, CloseReason::IdleTimeout));
                } else {
                    keep.push_back(i);
                }
            }
            q.idle = keep;
            shared.recorder.add_idle(-(expired.len() as i32));
            expired
        };
        for (i, reason) in expired {
            shared.discard(i.slot, reason, Farewell::Graceful);
        }
        // Sessions still to end (a reap asked for found no connection to spare, or
        // their units came back at the deadline): over an idle connection now, rather
        // than at the next return, which a quiet pool may not make.
        shared.reap_if_needed();
        shared.keep_alive();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use db_budget::{Budget, DatabaseUrl, Shrink};

    use crate::AsyncPool;

    #[tokio::test]
    async fn a_reap_asked_for_while_the_pool_s_lock_is_held_returns_without_waiting_for_it() {
        // Arrange: a pool (nothing is opened), its queues locked as a return path
        // holds them when a unit drops under them.
        let url = DatabaseUrl::parse("mysql://app:secret@127.0.0.1:1/game").unwrap();
        let pool = AsyncPool::builder(url, Budget::new(2, Duration::from_secs(30))).build();
        let shared = pool.shared.clone();
        let queues = shared.lock();

        // Act: the budget asks for a reap from another thread meanwhile.
        let (done, returned) = mpsc::channel();
        let asker = Arc::clone(&shared);
        std::thread::spawn(move || {
            Shrink::reap_lingering(asker);
            let _ = done.send(());
        });

        // Assert: it came back while the lock was still held (waiting for the lock,
        // it would have waited for ever).
        let came_back = returned.recv_timeout(Duration::from_secs(10));
        drop(queues);
        assert!(
            came_back.is_ok(),
            "reap_lingering waited for the pool's lock"
        );
    }
}
