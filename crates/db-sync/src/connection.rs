//! What r2d2 pools: a mysql connection together with the budget unit it paid with.
//!
//! # Socket timeouts (I4)
//!
//! The mysql crate waits for the server in blocking socket reads and writes; a frozen
//! server (SIGSTOP, a hung host) would hold the thread, the connection and its unit for
//! as long as it stays frozen. Every connection's socket therefore has a read and write
//! timeout (`SO_RCVTIMEO` / `SO_SNDTIMEO`: the longest one read or write waits without
//! progress, not a bound on a whole statement), switched by phase:
//!
//! - **handshake**: `DB_CONNECT_TIMEOUT` (set through the driver's options, see
//!   `manager.rs`);
//! - **statements** (helpers and raw access): the pool's I/O timeout, by default
//!   `DB_STATEMENT_TIMEOUT` + its 2 s margin (the server has answered by then, with an
//!   error if it stopped the statement), or `DB_MAX_LIFETIME` with the statement timeout
//!   off; `SyncPoolBuilder::io_timeout` sets it;
//! - **pool housekeeping** (validation ping, keepalive ping, `ROLLBACK` on return, the
//!   farewell `COM_QUIT` on close): `DB_CONNECT_TIMEOUT` again ([`Slot::housekeeping`]; a checkout's ping
//!   also ends at the caller's pool-timeout deadline); these are
//!   instant on a healthy server. A `ROLLBACK` that takes longer (a huge transaction)
//!   closes the connection, and the server finishes the rollback itself.
//!
//! A read or write that timed out leaves the protocol stream at an unknown point: the
//! connection is lost ([`Slot::doom_lost`]), closed and never pooled.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use db_budget::linger::{Session, TEARDOWN};
use db_budget::{Admission, CloseReason, Side, Unit};
use r2d2_mysql::mysql;

use crate::error::ConnectFailure;
use crate::raw::RawConn;
use crate::state::State;

/// r2d2's `Connection` type: a live connection, or the placeholder a failed connect
/// leaves (see `manager.rs` for why failures are not `Err`s). A placeholder holds no
/// unit and no socket; whoever takes it out of the pool drops it at once.
pub(crate) enum Managed {
    Live(Slot),
    Failed {
        failure: ConnectFailure,
        /// When the attempt ended: a caller that started later does not take an older
        /// failure as its answer (the server may be back).
        at: Instant,
    },
}

impl Managed {
    pub(crate) fn failed(failure: ConnectFailure) -> Managed {
        Managed::Failed {
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
pub(crate) struct Slot {
    pub(crate) conn: RawConn,
    /// Set once a connection must not be pooled again, with the reason it is closed.
    doomed: Option<CloseReason>,
    /// The stream is broken or out of step (an I/O error, a timeout, a server error that
    /// means the session is gone): the close skips the driver's farewell writes.
    lost: bool,
    /// The client gave up waiting for the server mid-statement: the server may still
    /// run it, so the unit lingers until the server has ended the session
    /// (`db_budget::linger`).
    cut_off: bool,
    opened_at: Instant,
    /// When it closes at its first return or housekeeping pass: `DB_MAX_LIFETIME` after
    /// it opened, less its jitter (up to 5 %, [`PoolSettings::lifetime_jitter`]), so that
    /// connections opened together do not all reconnect together.
    ///
    /// [`PoolSettings::lifetime_jitter`]: db_budget::PoolSettings::lifetime_jitter
    retires_at: Instant,
    /// When it last went idle (its idle timeout counts from here).
    returned_at: Instant,
    /// When the keepalive last pinged it while idle.
    pinged_at: Option<Instant>,
    /// Set by the housekeeping pass before it puts back a connection nobody used: the
    /// return keeps `returned_at` (the idle timeout still counts from the last use).
    unused: bool,
    idle: bool,
    /// The budget's eviction generation when its connect started (`Budget::evict`): an
    /// evicted connection is closed on its return and never handed out.
    generation: u64,
    state: Arc<State>,
    /// The server's session (its id and its server's start, read at connect).
    session: Session,
    /// The bulkhead place of a checkout cut off mid-statement, handed over by its guard
    /// to linger with the unit ([`Slot::hold_admission`]).
    admission: Option<Admission>,
    /// `None` only once a lost connection's unit was handed to the budget to linger.
    unit: Option<Unit>,
}

impl Slot {
    /// A connection just opened, whose connect started in eviction `generation`; r2d2
    /// puts it in its idle list next.
    pub(crate) fn new(
        conn: mysql::Conn,
        state: Arc<State>,
        unit: Unit,
        generation: u64,
        session: Session,
    ) -> Slot {
        let now = Instant::now();
        state.opened();
        state.recorder.record_opened();
        state.enter_idle();
        let lifetime = state.settings.max_lifetime;
        let retires_at = now + lifetime.saturating_sub(state.settings.lifetime_jitter());
        Slot {
            conn: RawConn::wrap(conn),
            doomed: None,
            lost: false,
            cut_off: false,
            opened_at: now,
            retires_at,
            returned_at: now,
            pinged_at: None,
            unused: false,
            idle: true,
            generation,
            state,
            session,
            admission: None,
            unit: Some(unit),
        }
    }

    /// Marks the connection to be closed when it is returned; the first reason wins.
    pub(crate) fn doom(&mut self, reason: CloseReason) {
        self.doomed.get_or_insert(reason);
    }

    /// Marks the connection lost: closed on return, without a farewell to the server.
    pub(crate) fn doom_lost(&mut self) {
        self.lost = true;
        self.doom(CloseReason::Broken);
    }

    /// `true` once a statement on it was cut off ([`Slot::doom_cut_off`]).
    pub(crate) fn is_cut_off(&self) -> bool {
        self.cut_off
    }

    /// The checkout's bulkhead place, kept until the cut-off session's unit comes back.
    pub(crate) fn hold_admission(&mut self, admission: Option<Admission>) {
        self.admission = admission;
    }

    /// The server's session of this connection.
    pub(crate) fn session(&self) -> Session {
        self.session
    }

    /// [`Slot::doom_lost`] for a statement the client gave up on (past its I/O
    /// timeout): the server may still be running it, so the unit lingers until the
    /// session is killed, at most [`TEARDOWN`] after the close (`db_budget::linger`).
    pub(crate) fn doom_cut_off(&mut self) {
        self.cut_off = true;
        self.doom_lost();
    }

    /// Runs one pool-housekeeping exchange (ping, `ROLLBACK`) with the socket timeouts
    /// at `limit` (`DB_CONNECT_TIMEOUT`, or less), then restores the statement bound.
    /// A connection whose timeouts cannot be set is lost.
    ///
    /// # Errors
    ///
    /// `f`'s error, or the I/O error of setting the timeouts.
    pub(crate) fn bounded<R>(
        &mut self,
        limit: Duration,
        f: impl FnOnce(&mut mysql::Conn) -> Result<R, mysql::Error>,
    ) -> Result<R, mysql::Error> {
        set_socket_timeouts(&self.conn, limit)?;
        let result = f(&mut self.conn);
        if let Err(e) = set_socket_timeouts(&self.conn, self.state.io_timeout) {
            tracing::warn!(error = %e, "db-sync: cannot restore the socket timeouts; closing the connection");
            self.doom_lost();
        }
        result
    }

    /// [`Slot::bounded`] at the connect timeout.
    ///
    /// # Errors
    ///
    /// As [`Slot::bounded`].
    pub(crate) fn housekeeping<R>(
        &mut self,
        f: impl FnOnce(&mut mysql::Conn) -> Result<R, mysql::Error>,
    ) -> Result<R, mysql::Error> {
        self.bounded(self.state.settings.connect_timeout, f)
    }

    pub(crate) fn is_doomed(&self) -> bool {
        self.doomed.is_some()
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Taken out of r2d2's idle list. Returns how long since the server last heard from
    /// it (its last use, or the keepalive's ping).
    pub(crate) fn leave_idle(&mut self) -> Duration {
        if self.idle {
            self.idle = false;
            self.state.leave_idle();
        }
        self.pinged_at
            .map_or(self.returned_at, |p| p.max(self.returned_at))
            .elapsed()
    }

    /// How long since it was last returned (the idle timeout's clock).
    pub(crate) fn idle_for(&self) -> Duration {
        self.returned_at.elapsed()
    }

    /// `true` once an eviction since its connect condemned it.
    pub(crate) fn is_evicted(&self) -> bool {
        self.state.budget.is_evicted(self.generation)
    }

    /// `true` once past its (jittered) lifetime.
    pub(crate) fn has_retired(&self) -> bool {
        Instant::now() >= self.retires_at
    }

    /// The keepalive's ping, bounded by the connect timeout. `false` (and the connection
    /// lost) when the server did not answer.
    pub(crate) fn keepalive_ping(&mut self) -> bool {
        match self.housekeeping(|c| c.ping()) {
            Ok(()) => {
                self.pinged_at = Some(Instant::now());
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "db-sync: idle connection failed its keepalive ping; closing it");
                self.doom_lost();
                false
            }
        }
    }

    /// Marks a connection the housekeeping pass took out and puts back without a use:
    /// its idle time keeps counting from its last real return.
    pub(crate) fn put_back_unused(&mut self) {
        self.unused = true;
    }

    /// r2d2's `has_broken`, run on every check-in: `true` closes the connection (and
    /// frees its unit), `false` puts it in the idle list. Never does I/O.
    pub(crate) fn on_return(&mut self) -> bool {
        if self.doomed.is_none() {
            if self.state.is_closed() {
                self.doom(CloseReason::PoolClosed);
            } else if self.is_evicted() {
                self.doom(CloseReason::Evicted);
            } else if self.has_retired() {
                self.doom(CloseReason::MaxLifetime);
            } else if self.state.budget.should_yield(Side::Sync) {
                // The async side waits for a unit: give this one back now (I2).
                self.doom(CloseReason::Yielded);
            }
        }
        if self.doomed.is_some() {
            self.unused = false;
            self.state.note_closed_on_return();
            return true;
        }
        if !std::mem::take(&mut self.unused) {
            self.returned_at = Instant::now();
        }
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
impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("connection_id", &self.conn.connection_id())
            .field("doomed", &self.doomed)
            .field("idle", &self.idle)
            .field("age", &self.opened_at.elapsed())
            .finish_non_exhaustive()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let reason = self.close_reason();
        self.state.recorder.record_closed(reason);
        if self.idle {
            self.idle = false;
            self.state.leave_idle();
        }
        self.state.closed_one();
        tracing::debug!(reason = reason.as_str(), "closing a db-sync connection");
        // The driver's drop writes COM_STMT_CLOSE per cached statement and COM_QUIT.
        // To a lost connection they would be noise, or wait on a frozen server: shut the
        // socket so that they fail at once. Otherwise bound them by the connect timeout.
        let farewell = if self.lost {
            with_socket(&self.conn, |s| s.shutdown(std::net::Shutdown::Both))
        } else {
            set_socket_timeouts(&self.conn, self.state.settings.connect_timeout)
        };
        if let Err(e) = farewell {
            // ENOTCONN: the peer is gone already; nothing to wait for either way.
            tracing::debug!(error = %e, "db-sync: preparing the socket for its close");
        }
        if !self.lost
            && !self.cut_off
            && reason.awaits_server_count()
            && let Some(unit) = &mut self.unit
        {
            // The server counts the session until it has torn it down: the unit
            // lingers for it if a caller waits (`Unit::quits`).
            unit.quits(self.session);
        }
        if self.cut_off
            && let Some(unit) = self.unit.take()
        {
            self.state.budget.linger(
                unit,
                self.admission.take(),
                self.session,
                Instant::now() + TEARDOWN,
            );
        }
        // Then the fields drop: the socket closes, then the unit (if it did not linger)
        // returns.
    }
}

/// The shortest socket timeout set (settings built by hand may hold zero).
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Runs `f` on a borrowed view of `conn`'s socket (TCP or unix).
fn with_socket<R>(conn: &mysql::Conn, f: impl FnOnce(socket2::SockRef<'_>) -> R) -> R {
    // SAFETY: the descriptor is `conn`'s open socket, and `conn` is borrowed for the
    // whole call, so it stays open while the view exists; the view never closes it.
    let fd = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) };
    f(socket2::SockRef::from(&fd))
}

/// Sets the read and write timeout of `conn`'s socket: a later read or write that waits
/// longer than `d` for the server fails with an I/O error (see the module docs).
///
/// # Errors
///
/// The `setsockopt` error (`d` must not be zero).
pub(crate) fn set_socket_timeouts(conn: &mysql::Conn, d: Duration) -> io::Result<()> {
    // A zero timeout would mean "none" to setsockopt.
    let d = d.max(MIN_TIMEOUT);
    with_socket(conn, |socket| {
        socket.set_read_timeout(Some(d))?;
        socket.set_write_timeout(Some(d))
    })
}
