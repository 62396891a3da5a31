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
                        // Back with its idle time unchanged, where that puts it.
                        shared.pool_idle(Idle { slot, since });
                    }
                    _ => shared.discard(slot, CloseReason::Broken, Farewell::Hard),
                }
            });
        }
    }
}
