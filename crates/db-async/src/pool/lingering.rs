//! Connections shut mid-statement: their units linger until the server has ended the
//! session (`db_budget::linger` says why), and this pool ends such sessions over a
//! connection it has to spare.
//!
//! A cut-off connection is shut at once and its unit handed to the budget with a
//! deadline. Then, at each tick of the pool's reaper, and whenever a connection is
//! about to be pooled while units linger, one connection at a time (a **reap**) kills
//! the lingering sessions (`KILL CONNECTION`, over a connection inside the budget:
//! never a new one), looks for them in the process list, and gives back the units of
//! those gone, before it is pooled.
//! The sessions may be the blocking side's: the budget is one.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use db_budget::linger::{self, TEARDOWN};
use db_budget::{Admission, Budget, CloseReason};
use sqlx::{AssertSqlSafe, Executor, MySqlConnection, Row};

use super::Shared;
use super::queues::Queues;
use crate::slot::{Farewell, Slot};

/// The pool's queues were locked when a reap was asked for.
#[derive(Debug)]
pub(super) struct Busy;

/// After a reap that left sessions still running, the next waits this long at first,
/// twice as long after each such reap, at most [`MAX_REAP_PAUSE`].
pub(super) const REAP_PAUSE: Duration = Duration::from_millis(100);
const MAX_REAP_PAUSE: Duration = Duration::from_secs(5);
/// Looks in the process list this many times (1, 2, 4 … ms apart) for killed sessions
/// to leave it.
const LOOKS: u32 = 8;

impl Shared {
    /// Shuts a connection cut off mid-statement (or mid-rollback) without a word; its
    /// unit lingers until the server has ended the session, at most [`TEARDOWN`] after
    /// the close (the session then stays on the list to kill).
    pub(super) fn discard_cut_off(
        self: &Arc<Self>,
        slot: Slot,
        reason: CloseReason,
        admission: Option<Admission>,
    ) {
        self.recorder.record_closed(reason);
        let limit = self.settings.return_timeout;
        let shared = self.clone();
        // If the runtime is gone the future is dropped: the slot then closes and its
        // unit returns at once, as before lingering existed.
        self.spawn(async move {
            let (unit, session) = slot.shut(Farewell::Hard, limit).await;
            // The budget then asks the pools (this one too) to reap over an idle
            // connection.
            shared
                .budget
                .linger(unit, admission, session, Instant::now() + TEARDOWN);
        });
    }

    /// Pools a connection, unless units linger and no reap runs: then it reaps first.
    pub(super) fn pool_or_reap(self: &Arc<Self>, slot: Slot) {
        if self.budget.sessions_to_end() > 0 && self.start_reap() {
            self.reap(slot);
        } else {
            self.push_idle(slot);
        }
    }

    /// The oldest idle connection, for a reap, if one is idle and no reap runs.
    pub(super) fn take_idle_for_reap(&self) -> Option<Slot> {
        self.idle_for_reap(self.lock())
    }

    /// As [`Shared::take_idle_for_reap`], but only if the queues are free this instant
    /// (`Err(Busy)` otherwise): for `Shrink::reap_lingering`, which must not wait for
    /// the pool's locks (its caller, a unit dropped anywhere, may hold them).
    pub(super) fn try_take_idle_for_reap(&self) -> Result<Option<Slot>, Busy> {
        let q = match self.queues.try_lock() {
            Ok(q) => q,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(Busy),
        };
        Ok(self.idle_for_reap(q))
    }

    /// Reaps over an idle connection if sessions are still to end, one is idle and no
    /// reap runs.
    pub(super) fn reap_if_needed(self: &Arc<Self>) {
        if self.budget.sessions_to_end() > 0
            && let Some(idle) = self.take_idle_for_reap()
        {
            self.reap(idle);
        }
    }

    fn idle_for_reap(&self, mut q: MutexGuard<'_, Queues>) -> Option<Slot> {
        if q.idle.is_empty() || !self.start_reap() {
            return None;
        }
        let idle = q.idle.pop_front().map(|i| i.slot);
        drop(q);
        self.recorder.add_idle(-1);
        idle
    }

    /// Claims the one reap allowed at a time, unless the last one ended less than
    /// [`REAP_PAUSE`] ago with sessions left.
    fn start_reap(&self) -> bool {
        let now = Instant::now();
        let mut not_before = self
            .reap_not_before
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.reaping.load(SeqCst) || now < *not_before {
            return false;
        }
        self.reaping.store(true, SeqCst);
        *not_before = now;
        true
    }

    /// Kills the lingering sessions over `slot`, gives back the units of those gone,
    /// then pools `slot` (bounded by the return timeout; a reap cut short closes it).
    /// Sessions cut off meanwhile are reaped on the same connection before it is
    /// pooled: a cut-off during a reap starts none of its own.
    pub(super) fn reap(self: &Arc<Self>, mut slot: Slot) {
        let shared = self.clone();
        self.spawn(async move {
            let limit = shared.settings.return_timeout;
            let outcome = tokio::time::timeout(limit, shared.end_lingering(&mut slot)).await;
            let pause = if matches!(outcome, Ok(Ok(0))) {
                None
            } else {
                let mut pause = shared.reap_pause.lock().unwrap_or_else(|e| e.into_inner());
                let this = *pause;
                *pause = (this * 2).min(MAX_REAP_PAUSE);
                *shared
                    .reap_not_before
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Instant::now() + this;
                Some(this)
            };
            if pause.is_none() {
                *shared.reap_pause.lock().unwrap_or_else(|e| e.into_inner()) = REAP_PAUSE;
            }
            shared.reaping.store(false, SeqCst);
            match outcome {
                Ok(Ok(_)) => shared.push_idle(slot),
                Ok(Err(_)) => shared.discard(slot, CloseReason::Broken, Farewell::Hard),
                Err(_) => shared.discard_cut_off(slot, CloseReason::Broken, None),
            }
            // Sessions left (still exiting, or not this account's to kill): try again
            // after the pause with an idle connection, if returns do not come first.
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
                shared.reap_if_needed();
            }
        });
    }
}

impl Shared {
    /// Ends the lingering sessions of `slot`'s server over `slot`, again for those cut
    /// off meanwhile, until none is left that it has not tried. Returns how many are
    /// still listed.
    ///
    /// # Errors
    ///
    /// An I/O or protocol error: `slot` is then out of step.
    pub(super) async fn end_lingering(&self, slot: &mut Slot) -> Result<usize, sqlx::Error> {
        let boot = slot.session.boot;
        let mut tried: Vec<u64> = Vec::new();
        let mut left = 0;
        loop {
            let sessions: Vec<u64> = self
                .budget
                .lingering_sessions(boot)
                .into_iter()
                .filter(|s| !tried.contains(s))
                .collect();
            if sessions.is_empty() {
                return Ok(left);
            }
            left = end_sessions(&self.budget, boot, &mut slot.conn, &sessions).await?;
            tried.extend(sessions);
        }
    }
}

/// `KILL CONNECTION` for each of `sessions`, then looks for them in the process list
/// until they are gone (a killed session ends when its thread notices): the units of
/// those gone come back. Returns how many are still listed. A `KILL` the server
/// refuses (1094: gone already; not this account's) is no error: the process list
/// decides.
///
/// # Errors
///
/// An I/O or protocol error: the connection is then closed.
async fn end_sessions(
    budget: &Budget,
    boot: u64,
    conn: &mut MySqlConnection,
    sessions: &[u64],
) -> Result<usize, sqlx::Error> {
    if sessions.is_empty() {
        return Ok(0);
    }
    for &session in sessions {
        match conn
            .execute(AssertSqlSafe(linger::kill_statement(session)))
            .await
        {
            Ok(_) | Err(sqlx::Error::Database(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut pause = Duration::from_millis(1);
    for look in 1..=LOOKS {
        let rows = conn
            .fetch_all(AssertSqlSafe(linger::still_running_query(sessions)))
            .await?;
        let listed = rows
            .iter()
            .map(|r| r.try_get::<u64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let ended: Vec<u64> = sessions
            .iter()
            .copied()
            .filter(|s| !listed.contains(s))
            .collect();
        budget.sessions_ended(boot, &ended);
        if listed.is_empty() || look == LOOKS {
            return Ok(listed.len());
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    unreachable!("the last look returns")
}
