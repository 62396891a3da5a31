//! Checking out: past the budget's gate (closed while it is suspended), an idle
//! connection (validated when it sat idle long enough), or a new one once the budget has
//! a unit for it; callers queue in arrival order.

use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

use db_budget::{AdmitError, Bulkhead, CloseReason, DbError, Side, TimeoutPhase, Unit, WaitError};
use sqlx::Connection;
use tokio::sync::oneshot;

use super::{Idle, Shared};
use crate::conn::{Conn, ConnState};
use crate::guard::AsyncConn;
use crate::slot::{Farewell, Slot};

impl Shared {
    pub(super) async fn acquire(
        self: Arc<Self>,
        site: &'static Location<'static>,
        bulkhead: Option<Bulkhead>,
    ) -> Result<AsyncConn, DbError> {
        let started = Instant::now();
        let deadline = started + self.settings.pool_timeout;
        loop {
            self.pass_gate(started, deadline).await?;
            let conn = self
                .clone()
                .acquire_admitted(site, bulkhead.clone(), started, deadline)
                .await?;
            if !self.budget.is_suspended() {
                return Ok(conn);
            }
            // Suspended while this caller waited: nothing is handed out while suspended.
            // The connection goes back (to the next waiter, who does the same), and this
            // caller waits at the gate.
            drop(conn);
        }
    }

    /// Waits while the budget is suspended (`Budget::wait_while_suspended`), or until
    /// this pool closes.
    async fn pass_gate(&self, started: Instant, deadline: Instant) -> Result<(), DbError> {
        if !self.budget.is_suspended() {
            return Ok(());
        }
        // Registered before the check, so a close in between still wakes it.
        let closing = self.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.is_closed() {
            return Err(DbError::Closed);
        }
        tokio::select! {
            biased;
            () = &mut closing => Err(DbError::Closed),
            passed = self.budget.wait_while_suspended(Side::Async, started, deadline) => passed,
        }
    }

    /// Admission by the caller's bulkhead, if any, then a connection.
    async fn acquire_admitted(
        self: Arc<Self>,
        site: &'static Location<'static>,
        bulkhead: Option<Bulkhead>,
        started: Instant,
        deadline: Instant,
    ) -> Result<AsyncConn, DbError> {
        let admission = match bulkhead {
            Some(b) => {
                // Registered before the check, so a close in between still wakes it.
                let closing = self.closing.notified();
                tokio::pin!(closing);
                closing.as_mut().enable();
                if self.is_closed() {
                    return Err(DbError::Closed);
                }
                let admitted = tokio::select! {
                    biased;
                    () = &mut closing => Err(AdmitError::Closed),
                    admitted = b.admit(deadline) => admitted,
                };
                Some(admitted.map_err(|e| self.recorder.admission_error(e, started))?)
            }
            None => None,
        };
        let mut conn = self.clone().acquire_within(site, started, deadline).await?;
        conn.admission = admission;
        Ok(conn)
    }

    async fn acquire_within(
        self: Arc<Self>,
        site: &'static Location<'static>,
        started: Instant,
        deadline: Instant,
    ) -> Result<AsyncConn, DbError> {
        if let Some(slot) = self.take_idle(started, deadline).await? {
            return Ok(self.checkout(slot, started, site));
        }
        // Raised once this caller is in the queue (under its lock, below): whoever reads
        // `waiting` above zero may rely on the caller being served in arrival order.
        let mut waiting = None;
        loop {
            if self.is_closed() {
                return Err(DbError::Closed);
            }
            // Queue up; if a connection is idle and nobody is ahead, it comes at once.
            let (tx, rx) = oneshot::channel::<Idle>();
            let mut place = Place {
                shared: &self,
                handed: rx,
            };
            {
                let mut q = self.lock();
                if waiting.is_none() {
                    // Beyond DB_MAX_WAITERS: refused before joining the queue.
                    waiting = Some(self.recorder.try_waiting()?);
                }
                q.waiters.push_back(tx);
                let moved = q.dispatch();
                // The idle gauge changes with the idle list, under its lock: a reader
                // never sees it below zero.
                self.recorder.add_idle(-(moved as i32));
            }
            let got = tokio::select! {
                biased;
                idle = &mut place.handed => match idle {
                    Ok(idle) => Got::Connection(idle),
                    Err(_) => return Err(DbError::Closed),
                },
                unit = self.budget.acquire(Side::Async, deadline) => Got::Unit(unit),
            };
            let idle = match got {
                Got::Connection(idle) => idle,
                Got::Unit(unit) => {
                    // Leave the queue; a connection handed over meanwhile is preferred to
                    // opening a new one (the unit then goes straight back).
                    place.handed.close();
                    match place.handed.try_recv() {
                        Ok(idle) => idle,
                        Err(_) => {
                            let unit = match unit {
                                Ok(unit) => unit,
                                Err(WaitError::TimedOut | WaitError::CalledOff) => {
                                    return Err(self
                                        .recorder
                                        .timeout_error(TimeoutPhase::Wait, started));
                                }
                                Err(WaitError::Closed) => return Err(DbError::Closed),
                            };
                            let slot = self.connect_detached(unit, started, deadline).await?;
                            return Ok(self.checkout(slot, started, site));
                        }
                    }
                }
            };
            if let Some(slot) = self.fit(idle, started, deadline).await? {
                return Ok(self.checkout(slot, started, site));
            }
        }
    }

    /// Pops idle connections (newest first) until one is fit for use; takes none while
    /// callers are queued (they come first).
    pub(super) async fn take_idle(
        self: &Arc<Self>,
        started: Instant,
        deadline: Instant,
    ) -> Result<Option<Slot>, DbError> {
        loop {
            if self.is_closed() {
                return Err(DbError::Closed);
            }
            let idle = {
                let mut q = self.lock();
                q.prune();
                if !q.waiters.is_empty() {
                    return Ok(None);
                }
                let idle = q.idle.pop_back();
                if idle.is_some() {
                    self.recorder.add_idle(-1);
                }
                idle
            };
            let Some(idle) = idle else {
                return Ok(None);
            };
            if let Some(slot) = self.fit(idle, started, deadline).await? {
                return Ok(Some(slot));
            }
        }
    }

    /// Checks a connection that sat idle: evicted or too old → closed; not heard from
    /// (used or pinged by the keepalive) for longer than the validation bypass → pinged
    /// first, and closed if an evict started meanwhile. `None`: it was closed, try
    /// another.
    pub(super) async fn fit(
        self: &Arc<Self>,
        Idle { slot, since }: Idle,
        started: Instant,
        deadline: Instant,
    ) -> Result<Option<Slot>, DbError> {
        if self.budget.is_evicted(slot.generation) {
            self.discard(slot, CloseReason::Evicted, Farewell::Graceful);
            return Ok(None);
        }
        if slot.opened_at.elapsed() >= self.settings.max_lifetime {
            self.discard(slot, CloseReason::MaxLifetime, Farewell::Graceful);
            return Ok(None);
        }
        // The server last heard from it at its return or the keepalive's ping.
        let quiet_since = slot.pinged_at.map_or(since, |p| p.max(since));
        if quiet_since.elapsed() <= self.settings.validation_bypass {
            return Ok(Some(slot));
        }
        let now = Instant::now();
        if now >= deadline {
            self.push_idle(slot);
            return Err(self.recorder.timeout_error(TimeoutPhase::Validate, started));
        }
        let limit = self.settings.connect_timeout.min(deadline - now);
        // Dropped mid-ping (the caller gave up), the connection is out of step: shut
        // as a cut-off one, its unit lingering, not dropped into the server's count.
        let mut pinging = CutOffOnDrop {
            shared: self,
            slot: Some(slot),
        };
        let pinged = tokio::time::timeout(limit, pinging.slot_mut().conn.ping()).await;
        let slot = pinging.disarm();
        match pinged {
            // Evicted while the ping was under way: the old session is not handed out.
            Ok(Ok(())) if self.budget.is_evicted(slot.generation) => {
                self.discard(slot, CloseReason::Evicted, Farewell::Graceful);
                Ok(None)
            }
            Ok(Ok(())) => Ok(Some(slot)),
            _ => {
                self.discard(slot, CloseReason::Broken, Farewell::Hard);
                Ok(None)
            }
        }
    }

    pub(super) fn checkout(
        self: &Arc<Self>,
        slot: Slot,
        started: Instant,
        site: &'static Location<'static>,
    ) -> AsyncConn {
        self.recorder.record_acquire(started.elapsed());
        let ticket = self.recorder.checkout(site);
        AsyncConn {
            conn: Conn {
                slot: Some(slot),
                recorder: self.recorder.clone(),
                state: ConnState::default(),
                statement: ticket.statement_mark(),
            },
            ticket,
            shared: self.clone(),
            admission: None,
        }
    }
}

/// How a waiting caller was served.
enum Got {
    Connection(Idle),
    Unit(Result<Unit, WaitError>),
}

/// A caller's place in the queue. Dropped with a connection in it (the acquire given up
/// after a return was handed to it), it pools the connection again: dropped, its socket
/// would close while the server still counts the session, and its unit would go
/// straight to the next connect.
struct Place<'a> {
    shared: &'a Arc<Shared>,
    handed: oneshot::Receiver<Idle>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.handed.close();
        if let Ok(idle) = self.handed.try_recv() {
            self.shared.pool_idle(idle);
        }
    }
}

/// A connection under a validation ping. Dropped before [`CutOffOnDrop::disarm`] (the
/// caller gave up mid-ping), it is shut as cut off: its unit lingers until the server
/// has ended the session (`lingering.rs`).
struct CutOffOnDrop<'a> {
    shared: &'a Arc<Shared>,
    slot: Option<Slot>,
}

impl CutOffOnDrop<'_> {
    fn slot_mut(&mut self) -> &mut Slot {
        self.slot.as_mut().expect("armed until disarmed")
    }

    fn disarm(mut self) -> Slot {
        self.slot.take().expect("armed until disarmed")
    }
}

impl Drop for CutOffOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.shared
                .discard_cut_off(slot, CloseReason::Cancelled, None);
        }
    }
}
