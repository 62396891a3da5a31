//! Background work on idle connections: the hand-over to the other side ([`Shrink`]) and
//! the reaper of expired ones.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use db_budget::{CloseReason, Shrink};

use super::{Idle, Shared};
use crate::slot::Farewell;

impl Shrink for Shared {
    /// Ends lingering sessions over the oldest idle connection, if one is idle and no
    /// reap runs (`lingering.rs`), in a task on the pool's runtime.
    fn reap_lingering(self: Arc<Self>) {
        if let Some(idle) = self.take_idle_for_reap() {
            self.reap(idle);
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
        shared.keep_alive();
    }
}
