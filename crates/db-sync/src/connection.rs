//! What r2d2 pools: a mysql connection together with the budget unit it paid with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_budget::{CloseReason, Side, Unit};
use r2d2_mysql::mysql;

use crate::error::ConnectFailure;
use crate::state::State;

/// r2d2's `Connection` type: a live connection, or the placeholder a failed connect
/// leaves (see `manager.rs` for why failures are not `Err`s). A placeholder holds no
/// unit and no socket; whoever takes it out of the pool drops it at once.
pub(crate) enum Slot {
    Live(Pooled),
    Failed {
        failure: ConnectFailure,
        /// When the attempt ended: a caller that started later does not take an older
        /// failure as its answer (the server may be back).
        at: Instant,
    },
}

impl Slot {
    pub(crate) fn failed(failure: ConnectFailure) -> Slot {
        Slot::Failed {
            failure,
            at: Instant::now(),
        }
    }
}

/// One physical connection and its budget unit.
///
/// The unit is the **last** field: fields drop in declaration order, so the socket is
/// closed before the unit goes back to the budget (invariant I1 counts a connection
/// until its socket is closed).
///
/// Gauges: `idle` mirrors whether r2d2 holds this connection in its idle list, and
/// every change of it moves the budget's `idle` gauge; `Drop` counts exactly one close
/// reason and lowers the gauge if the connection dies idle.
pub(crate) struct Pooled {
    pub(crate) conn: mysql::Conn,
    /// Set once a connection must not be pooled again, with the reason it is closed.
    doomed: Option<CloseReason>,
    opened_at: Instant,
    returned_at: Instant,
    idle: bool,
    state: Arc<State>,
    _unit: Unit,
}

impl Pooled {
    /// A connection just opened; r2d2 puts it in its idle list next.
    pub(crate) fn new(conn: mysql::Conn, state: Arc<State>, unit: Unit) -> Pooled {
        let now = Instant::now();
        state.opened();
        state.budget.record_opened(Side::Sync);
        state.enter_idle();
        Pooled {
            conn,
            doomed: None,
            opened_at: now,
            returned_at: now,
            idle: true,
            state,
            _unit: unit,
        }
    }

    /// Marks the connection to be closed when it is returned; the first reason wins.
    pub(crate) fn doom(&mut self, reason: CloseReason) {
        self.doomed.get_or_insert(reason);
    }

    pub(crate) fn is_doomed(&self) -> bool {
        self.doomed.is_some()
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Taken out of r2d2's idle list. Returns how long it sat idle.
    pub(crate) fn leave_idle(&mut self) -> Duration {
        if self.idle {
            self.idle = false;
            self.state.leave_idle();
        }
        self.returned_at.elapsed()
    }

    /// r2d2's `has_broken`, run on every check-in: `true` closes the connection (and
    /// frees its unit), `false` puts it in the idle list. Never does I/O.
    pub(crate) fn on_return(&mut self) -> bool {
        if self.doomed.is_none() {
            if self.state.is_closed() {
                self.doom(CloseReason::PoolClosed);
            } else if self.opened_at.elapsed() >= self.state.settings.max_lifetime {
                self.doom(CloseReason::MaxLifetime);
            } else if self.state.budget.should_yield(Side::Sync) {
                // The async side waits for a unit: give this one back now (I2).
                self.doom(CloseReason::Yielded);
            }
        }
        if self.doomed.is_some() {
            self.state.note_closed_on_return();
            return true;
        }
        self.returned_at = Instant::now();
        if !self.idle {
            self.idle = true;
            self.state.enter_idle();
        }
        false
    }

    /// Why this connection is being closed now.
    fn close_reason(&self) -> CloseReason {
        if let Some(reason) = self.doomed {
            return reason;
        }
        if !self.idle {
            // Every path out of a checkout dooms or returns the connection first; a
            // connection dropped in between is in an unknown state.
            return CloseReason::Broken;
        }
        // Dropped while idle: the pool itself going away, or r2d2's reaper, which
        // closes connections idle longer than the idle timeout or older than the
        // lifetime (our `returned_at` is stamped just before r2d2's idle clock starts,
        // so it never reads less idle time than the reaper saw).
        if self.state.is_closed() {
            CloseReason::PoolClosed
        } else if self.returned_at.elapsed() >= self.state.settings.idle_timeout {
            CloseReason::IdleTimeout
        } else {
            CloseReason::MaxLifetime
        }
    }
}

// Hand-written: `mysql::Conn`'s derived `Debug` prints its options, password included.
impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("connection_id", &self.conn.connection_id())
            .field("doomed", &self.doomed)
            .field("idle", &self.idle)
            .field("age", &self.opened_at.elapsed())
            .finish_non_exhaustive()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let reason = self.close_reason();
        self.state.budget.record_closed(Side::Sync, reason);
        if self.idle {
            self.idle = false;
            self.state.leave_idle();
        }
        self.state.closed_one();
        tracing::debug!(reason = reason.as_str(), "closing a db-sync connection");
        // Then the fields drop: the socket closes (mysql sends COM_QUIT), then the unit
        // returns.
    }
}
