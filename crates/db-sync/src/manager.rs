//! The r2d2 `ManageConnection` wrapper: takes a budget unit before every connect.
//!
//! # r2d2 behaviours this works around
//!
//! - r2d2 calls `connect` on its own worker threads and, when it returns `Err`, retries
//!   **forever** with a growing delay (`add_connection`), whether or not anybody still
//!   waits; the failed attempt keeps its slot in `pending_conns`, so during an outage
//!   the pool's slots fill up with retries that keep threads busy and (here) would keep
//!   waiting on the budget for nobody. So `connect` never returns `Err`: a failure
//!   becomes a [`Managed::Failed`] placeholder that r2d2 pools like a connection, the
//!   waiter that pops it learns why, and `has_broken` destroys it on its way back.
//! - r2d2 only stores a failed connect as a string (`last_error`), and `get_timeout`
//!   reports a bare "timed out waiting for connection". The last failure is kept in
//!   [`State`] instead, so a timeout says whether it was spent connecting.
//! - A connect job started for a caller who has since given up would still take a unit
//!   and open a connection nobody wants: `connect` checks that somebody waits before
//!   and after taking the unit. (A job already parked in the budget's queue cannot be
//!   called off; it gives the unit straight back when it gets one.)
//!
//! Elsewhere: r2d2 wakes no waiter when a returned connection is closed instead of
//! pooled (`guard.rs`, `wake_a_waiter`); its defaults open `max_size` connections
//! eagerly (`min_idle` None), ping on every checkout (`test_on_check_out`), run connects
//! on 3 threads and log through `log` (all overridden in `pool.rs`); r2d2_mysql's
//! `has_broken` pings on every check-in (replaced here by a flag check).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use db_budget::linger::{self, Session};
use db_budget::{DatabaseUrl, ServerFlavor, Side, WaitError};
use r2d2_mysql::MySqlConnectionManager;
use r2d2_mysql::mysql::prelude::Queryable;
use r2d2_mysql::mysql::{self, OptsBuilder};

use crate::connection::{MIN_TIMEOUT, Managed, Slot, set_socket_timeouts};
use crate::error::{ConnectFailure, is_server_busy};
use crate::state::State;

/// Backoff between connects the server refused with "too many connections".
const BUSY_BACKOFF_START: Duration = Duration::from_millis(5);
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Opens connections for r2d2, each paid for with a budget unit taken first.
pub(crate) struct BudgetedManager {
    inner: MySqlConnectionManager,
    /// `DATABASE_URL` with the password replaced, for log lines.
    shown_url: String,
    state: Arc<State>,
}

impl BudgetedManager {
    pub(crate) fn new(url: &DatabaseUrl, state: Arc<State>) -> BudgetedManager {
        let opts = connect_options(url, state.settings.connect_timeout);
        BudgetedManager {
            inner: MySqlConnectionManager::new(opts),
            shown_url: url.to_string(),
            state,
        }
    }

    fn open(&self) -> Managed {
        let s = &self.state;
        let _in_flight = s.in_flight();
        if s.is_closed() {
            return Managed::failed(ConnectFailure::Closed);
        }
        if !s.has_demand() {
            return Managed::failed(ConnectFailure::NoDemand);
        }
        let deadline = Instant::now() + s.settings.pool_timeout;
        // r2d2's worker threads have no runtime: park in the budget's queue, and leave it
        // as soon as no caller waits for this connection any more.
        let still_wanted = || s.has_demand() && !s.is_closed();
        let unit = match s
            .budget
            .acquire_blocking_while(Side::Sync, deadline, still_wanted)
        {
            Ok(unit) => unit,
            Err(WaitError::TimedOut) => return Managed::failed(ConnectFailure::BudgetTimedOut),
            Err(WaitError::Closed) => return Managed::failed(ConnectFailure::Closed),
            Err(WaitError::CalledOff) if s.is_closed() => {
                return Managed::failed(ConnectFailure::Closed);
            }
            Err(WaitError::CalledOff) => return Managed::failed(ConnectFailure::NoDemand),
        };
        if s.is_closed() {
            return Managed::failed(ConnectFailure::Closed);
        }
        if !s.has_demand() {
            // The caller gave up or was served meanwhile: the unit goes straight back.
            return Managed::failed(ConnectFailure::NoDemand);
        }
        let _connecting = s.connecting();
        let mut backoff = BUSY_BACKOFF_START;
        loop {
            // Read before the connect: one under way during an eviction counts as older.
            let generation = s.budget.generation();
            match r2d2::ManageConnection::connect(&self.inner) {
                // Connected with the handshake's timeouts, which also bound the session's
                // set-up; statements get theirs.
                Ok(mut conn) => {
                    let ready = start_session(&mut conn, s).and_then(|session| {
                        set_socket_timeouts(&conn, s.io_timeout)
                            .map(|()| session)
                            .map_err(mysql::Error::IoError)
                    });
                    match ready {
                        Ok(session) => {
                            let slot = Slot::new(conn, s.clone(), unit, generation, session);
                            return Managed::Live(slot);
                        }
                        Err(e) => {
                            drop(conn); // closed before the unit returns
                            let failure = ConnectFailure::Failed(Arc::new(e));
                            s.connect_failed(failure.clone());
                            return Managed::failed(failure);
                        }
                    }
                }
                // The server may still count a connection we closed a moment ago
                // (ARCHITECTURE.md, "Server-side lag"): keep the unit and try again until
                // the deadline.
                Err(e)
                    if is_server_busy(&e)
                        && Instant::now() + backoff < deadline
                        && s.has_demand() =>
                {
                    tracing::debug!(error = %e, "db-sync: server busy during connect, retrying");
                    s.connect_failed(ConnectFailure::ServerBusy(Arc::new(e)));
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
                }
                Err(e) => {
                    tracing::warn!(
                        url = %self.shown_url,
                        error = %e,
                        "db-sync: could not connect to the database server",
                    );
                    let failure = if is_server_busy(&e) {
                        ConnectFailure::ServerBusy(Arc::new(e))
                    } else {
                        ConnectFailure::Failed(Arc::new(e))
                    };
                    s.connect_failed(failure.clone());
                    return Managed::failed(failure);
                }
            }
        }
    }
}

impl r2d2::ManageConnection for BudgetedManager {
    type Connection = Managed;
    type Error = mysql::Error;

    /// Never `Err`: see the module docs.
    fn connect(&self) -> Result<Managed, mysql::Error> {
        Ok(self.open())
    }

    /// A ping. Only r2d2's `test_on_check_out` calls this, and that is off: the pool
    /// pings itself, and only connections idle longer than the validation bypass.
    fn is_valid(&self, slot: &mut Managed) -> Result<(), mysql::Error> {
        match slot {
            Managed::Live(p) => p.housekeeping(|c| c.ping()),
            Managed::Failed { .. } => Err(mysql::Error::IoError(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connect attempt failed",
            ))),
        }
    }

    /// Runs on every check-in. No ping (r2d2_mysql's would cost a round trip per
    /// checkout): only the doomed flag, the lifetime and the budget's wish.
    fn has_broken(&self, slot: &mut Managed) -> bool {
        match slot {
            Managed::Live(p) => p.on_return(),
            Managed::Failed { .. } => true,
        }
    }
}

/// Readies a new session: reads the server's dialect (for the pool's per-statement
/// limits; the pool's first connect only), the session's id and its server's start
/// (a cut-off statement's unit lingers for the session, `db_budget::linger`; a server
/// started since the last connect makes the budget forget the old one's sessions) and,
/// when the pool has a statement timeout, sets it on the session once, so statements
/// pay nothing for it: two round trips per connect. A session reset undoes the limit;
/// the guard sets it again (`guard.rs`).
///
/// # Errors
///
/// The driver's error; the connection is then dropped.
fn start_session(conn: &mut mysql::Conn, state: &State) -> Result<Session, mysql::Error> {
    let flavor = match state.flavor() {
        Some(known) => known,
        None => {
            // The pool's first connect asks; later ones reuse the answer.
            let version: Option<String> = conn.query_first(ServerFlavor::VERSION_QUERY)?;
            let flavor = ServerFlavor::from_version(version.as_deref().unwrap_or(""));
            state.saw_flavor(flavor);
            flavor
        }
    };
    let row: Option<(u64, u64)> = conn.query_first(linger::session_query(flavor))?;
    let (id, uptime) = row.ok_or(mysql::Error::DriverError(mysql::DriverError::SetupError))?;
    let session = Session::new(id, uptime);
    state.budget.saw_server(session);
    if let Some(set) = state.session_limit_statement() {
        conn.query_drop(set)?;
    }
    Ok(session)
}

/// Options for every connection of a pool on `url`.
///
/// `DB_CONNECT_TIMEOUT` bounds the TCP connect and, as the socket's read and write
/// timeout during the handshake, every wait for the server in it (greeting,
/// authentication, the driver's `SELECT @@max_allowed_packet`). Against a server that
/// accepts the TCP connection but answers nothing (frozen, overloaded), the attempt
/// fails after one connect timeout and its unit returns; a server answering every step
/// just in time could stretch it, since the driver offers no bound on the whole. The
/// statement timeouts are set once the connection is open (`connection.rs`).
fn connect_options(url: &DatabaseUrl, connect_timeout: Duration) -> OptsBuilder {
    let connect_timeout = connect_timeout.max(MIN_TIMEOUT);
    let opts = OptsBuilder::new()
        .user(Some(url.user()))
        .pass(url.password())
        .db_name(Some(url.database()))
        // Essential: with `prefer_socket` on (the default), a TCP connect to a loopback
        // address opens a second connection over the server's unix socket, and one
        // unit would pay for two server connections (ARCHITECTURE.md, "The mysql crate").
        .prefer_socket(false)
        .tcp_connect_timeout(Some(connect_timeout))
        .read_timeout(Some(connect_timeout))
        .write_timeout(Some(connect_timeout));
    match url.socket() {
        Some(path) => opts.socket(Some(path.to_string_lossy())),
        None => opts.ip_or_hostname(Some(url.host())).tcp_port(url.port()),
    }
}

/// r2d2's error handler. r2d2's default logs through the `log` crate at error level;
/// this logs through `tracing` at warn. mysql errors carry no password.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WarnOnError;

impl r2d2::HandleError<mysql::Error> for WarnOnError {
    fn handle_error(&self, error: mysql::Error) {
        tracing::warn!(%error, "db-sync: connection error reported by r2d2");
    }
}
