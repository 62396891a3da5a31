//! Keepalive (`DB_KEEPALIVE`): idle connections idle that long since their last use or
//! ping are pinged in the background, so that a firewall's idle cut or the server's
//! `wait_timeout` never hands a caller a dead connection. Run by the reaper each tick.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use db_budget::CloseReason;
use sqlx::Connection;

use super::{Idle, Shared};
use crate::slot::Farewell;

impl Shared {
    /// Takes the idle connections that are due out of the idle list and pings each in
    /// a background task (bounded by the connect timeout); one that answers goes back
    /// with its idle time unchanged (so `DB_IDLE_TIMEOUT` still closes it), one that
    /// does not is closed.
    pub(super) fn keep_alive(self: &Arc<Self>) {
        let every = self.settings.keepalive;
        if every.is_zero() {
            return;
        }
        let due: VecDeque<Idle> = {
            let mut q = self.lock();
            let (due, keep): (VecDeque<Idle>, VecDeque<Idle>) =
                q.idle.drain(..).partition(|i: &Idle| {
                    let last = i.slot.pinged_at.map_or(i.since, |p| p.max(i.since));
                    last.elapsed() >= every
                });
            q.idle = keep;
            self.recorder.add_idle(-(due.len() as i32));
            due
        };
        for Idle { mut slot, since } in due {
            let shared = self.clone();
            self.spawn(async move {
                let limit = shared.settings.connect_timeout;
                match tokio::time::timeout(limit, slot.conn.ping()).await {
                    Ok(Ok(())) => {
                        slot.pinged_at = Some(Instant::now());
                        shared.put_back(Idle { slot, since });
                    }
                    _ => shared.discard(slot, CloseReason::Broken, Farewell::Hard),
                }
            });
        }
    }

    /// A pinged connection returns: to the caller that has waited longest, or into the
    /// idle list where its idle time puts it (oldest at the front).
    fn put_back(&self, mut idle: Idle) {
        let mut q = self.lock();
        if self.is_closed() {
            drop(q);
            self.discard(idle.slot, CloseReason::PoolClosed, Farewell::Graceful);
            return;
        }
        while let Some(waiter) = q.waiters.pop_front() {
            match waiter.send(idle) {
                Ok(()) => return,
                Err(back) => idle = back,
            }
        }
        let at = q.idle.partition_point(|i| i.since <= idle.since);
        q.idle.insert(at, idle);
        self.recorder.add_idle(1);
    }
}
