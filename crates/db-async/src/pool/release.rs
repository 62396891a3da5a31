//! The return policy: a returned connection is pooled, settled first (in a background
//! task on the pool's runtime), or closed, decided without I/O on the caller's thread.

use std::sync::Arc;
use std::time::Instant;

use db_budget::{Admission, CloseReason, Side};
use sqlx::{Connection, Executor};

use super::{Idle, Shared};
use crate::conn::ConnState;
use crate::slot::{Farewell, Slot};

impl Shared {
    /// A connection comes back from a caller. Decides, without I/O on this thread,
    /// whether it is pooled, settled first (rollback/validation in a background task),
    /// or closed.
    pub(crate) fn release(
        self: &Arc<Self>,
        slot: Slot,
        state: ConnState,
        admission: Option<Admission>,
    ) {
        let farewell = if state.busy {
            // Cut off mid-statement: the server may still run it, so the unit (and
            // the bulkhead place it was checked out in) lingers.
            self.discard_cut_off(slot, CloseReason::Cancelled, admission);
            return;
        } else if self.is_closed() {
            if self.budget.sessions_to_end() > 0 && !state.broken && !state.session_dirty {
                // Sessions cut off before the close are ended over it first; then
                // `pool_idle` closes it (the pool is closed).
                self.pool_or_reap(slot);
                return;
            }
            Some((CloseReason::PoolClosed, Farewell::Graceful))
        } else if std::thread::panicking() {
            Some((CloseReason::Cancelled, Farewell::Hard))
        } else if state.broken {
            Some((CloseReason::Broken, Farewell::Hard))
        } else if state.session_dirty {
            // `ROLLBACK` first is not needed: closing ends any transaction too.
            Some((CloseReason::SessionState, Farewell::Graceful))
        } else if self.budget.is_evicted(slot.generation) {
            Some((CloseReason::Evicted, Farewell::Graceful))
        } else if slot.opened_at.elapsed() >= self.settings.max_lifetime {
            Some((CloseReason::MaxLifetime, Farewell::Graceful))
        } else if self.budget.should_yield(Side::Async) {
            Some((CloseReason::Yielded, Farewell::Graceful))
        } else {
            None
        };
        if let Some((reason, how)) = farewell {
            self.discard(slot, reason, how);
        } else if state.tx_open || slot.conn.should_flush() {
            self.settle(slot, state);
        } else {
            self.pool_or_reap(slot);
        }
    }

    /// Rolls back a transaction left open (or flushes unsent bytes), bounded by the
    /// return timeout, then pools the connection; closes it on failure.
    pub(super) fn settle(self: &Arc<Self>, mut slot: Slot, state: ConnState) {
        let shared = self.clone();
        self.spawn(async move {
            let limit = shared.settings.return_timeout;
            let work = async {
                if state.tx_open {
                    slot.conn.execute("ROLLBACK").await.map(|_| ())
                } else {
                    slot.conn.flush().await
                }
            };
            match tokio::time::timeout(limit, work).await {
                Ok(Ok(())) => shared.pool_or_reap(slot),
                Ok(Err(_)) => shared.discard(slot, CloseReason::Broken, Farewell::Hard),
                // The server may still be rolling back: the unit lingers.
                Err(_) => shared.discard_cut_off(slot, CloseReason::Broken, None),
            }
        });
    }

    /// Pools a connection: to the caller that has waited longest, or onto the idle list.
    pub(super) fn push_idle(&self, slot: Slot) {
        self.pool_idle(Idle {
            slot,
            since: Instant::now(),
        });
    }

    /// Pools `idle`: to the caller that has waited longest, or into the idle list where
    /// its idle time puts it (oldest at the front; a connection just returned goes last).
    pub(super) fn pool_idle(&self, mut idle: Idle) {
        let mut q = self.lock();
        // Checked under the lock `close` sets it under: no idle connection is left
        // in a closed pool.
        if self.is_closed() {
            drop(q);
            self.discard(idle.slot, CloseReason::PoolClosed, Farewell::Graceful);
            return;
        }
        // Evicted while it was away (a settle, a keepalive ping): closed, not pooled.
        if self.budget.is_evicted(idle.slot.generation) {
            drop(q);
            self.discard(idle.slot, CloseReason::Evicted, Farewell::Graceful);
            return;
        }
        // Units owed while it was away (a shrink, a lease given up): closed, so that its
        // unit pays the debt, as a return does (`Budget::should_yield`).
        if self.budget.owed() > 0 {
            drop(q);
            self.discard(idle.slot, CloseReason::Yielded, Farewell::Graceful);
            return;
        }
        while let Some(waiter) = q.waiters.pop_front() {
            match waiter.send(idle) {
                Ok(()) => return,
                // That caller gave up meanwhile: the next one.
                Err(back) => idle = back,
            }
        }
        let at = q.idle.partition_point(|i| i.since <= idle.since);
        q.idle.insert(at, idle);
        self.recorder.add_idle(1);
    }

    /// Closes a connection in the background; its unit returns once the socket is
    /// closed. If no runtime can run the task, the slot is dropped, which closes the
    /// socket before the unit returns all the same.
    pub(super) fn discard(&self, mut slot: Slot, reason: CloseReason, how: Farewell) {
        self.recorder.record_closed(reason);
        if how == Farewell::Graceful && reason.awaits_server_count() {
            // The server counts the session until it has torn it down: the unit
            // lingers for it if a caller waits (`Unit::quits`).
            slot.unit.quits(slot.session);
        }
        let limit = self.settings.return_timeout;
        self.spawn(slot.close(how, limit));
    }

    /// Runs pool work (closes, settles) on the pool's own runtime, never on the
    /// caller's: a caller may sit on another runtime that nobody drives once it is
    /// done (a test's, a `block_on`'s), and the work would never run. If the pool's
    /// runtime has shut down, the future is dropped at once, which still closes the
    /// socket before the unit returns (field order in `Slot`).
    pub(super) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtime.spawn(fut));
    }
}
