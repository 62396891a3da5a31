//! [`SyncConn`]: the checked-out connection legacy code holds.

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use db_budget::{Admission, CheckoutTicket, CloseReason};
use r2d2_mysql::mysql::{self, prelude::Queryable};

use crate::connection::{Managed, Slot};
use crate::manager::BudgetedManager;
use crate::raw::RawConn;

/// A connection checked out of a [`SyncPool`](crate::SyncPool); derefs to
/// [`RawConn`] (and through it to [`mysql::Conn`], for raw statements), and offers the
/// same helpers as the async side
/// ([`SyncConn::fetch_one`], [`SyncConn::execute`],
/// [`SyncConn::transaction`], …).
///
/// Dropping it is the whole clean-up, on every path out of the scope (return, `?`,
/// panic). It replaces the Python pattern
///
/// ```text
/// conn = get_database_connection()
/// try:
///     ...
/// finally:
///     conn.close()
/// ```
///
/// whose missing `finally` leaked connections in production. On drop:
///
/// - if the thread is panicking, the connection is closed, not pooled: the panic may
///   have interrupted it mid-statement (its unit returns after the socket is closed);
/// - else, if a transaction may be open, it is rolled back (`ROLLBACK`), and the
///   connection is closed instead if that fails; see "Open transactions" below;
/// - else it goes back to the pool, or is closed if it is too old, broken, or the
///   async side is waiting for its budget unit.
///
/// # Open transactions
///
/// The mysql crate (28) keeps the server's "in transaction" status flag private, so the
/// guard tracks it itself: a transaction is assumed open after
/// [`SyncConn::transaction`] or a helper statement that starts one (`BEGIN`,
/// `START TRANSACTION`) until it ends, and **whenever the raw connection was borrowed
/// mutably** (through `DerefMut`), since raw statements cannot be seen. In those cases
/// the drop sends one `ROLLBACK` (a no-op on the server when nothing is open; one round
/// trip). Code that uses only the helpers pays nothing.
///
/// # Session state
///
/// A helper statement that changes session state (`SET autocommit = 0`, `SET @var`,
/// `LOCK TABLES`, `GET_LOCK`, temporary tables; the classifier both sides share,
/// `db_budget::sql::changes_session`) makes the drop reset the session
/// (`COM_RESET_CONNECTION`, one round trip, which also rolls back) before the connection
/// is pooled; `USE other` makes it close the connection. After **raw** access the guard
/// cannot see what ran, so it always resets (legacy code got a fresh session from every
/// `get_database_connection()`, which connected anew): one more round trip, and a
/// connection left in another database is closed. What the SQL text cannot show is not
/// caught: a stored function or trigger that sets a user variable or takes `GET_LOCK`;
/// call [`SyncConn::discard`] after calling one.
///
/// After raw access the `ROLLBACK` also proves the connection is in step (it travels
/// with a `SELECT` of a fresh token, same round trip): a raw statement whose error the
/// guard could not see, e.g. a read that timed out on a frozen server, may have left
/// the server's late answer in the socket, and such a connection is closed rather than
/// handing that answer to the next user.
///
/// # Bounded waits
///
/// The drop's `ROLLBACK` waits for the server at most `DB_CONNECT_TIMEOUT`; a connection
/// that does not answer in time is closed (the server then rolls back itself), so a
/// frozen server cannot hold the dropping thread or the budget unit. Statements wait at
/// most the pool's I/O timeout ([`SyncPoolBuilder::io_timeout`](crate::SyncPoolBuilder::io_timeout))
/// for any progress; one that overruns it fails with
/// [`DbError::ConnectionLost`](db_budget::DbError::ConnectionLost) (helpers) or an I/O
/// error (raw calls), and the connection is closed, never pooled.
///
/// # Panics
///
/// None: dropping never panics, and a failed `ROLLBACK` closes the connection instead.
#[must_use = "the connection goes back to the pool as soon as the guard is dropped"]
pub struct SyncConn {
    /// `None` only inside `drop`, once the connection has been given back.
    checkout: Option<Checkout>,
    /// To wake a waiter r2d2 leaves asleep (see [`wake_a_waiter`]).
    pool: r2d2::Pool<BudgetedManager>,
    site: &'static Location<'static>,
    pub(crate) tx_open: bool,
    /// What the helpers' statements did to the session (see [`SessionChange`]).
    pub(crate) session: SessionChange,
    raw_used: bool,
    /// The limit [`SyncConn::with_statement_timeout`] gave the next helper statement.
    pub(crate) next_timeout: Option<Duration>,
    /// The module bulkhead's place, given back after the connection (declared last).
    pub(crate) admission: Option<Admission>,
}

/// Session state a helper statement left behind, strongest last: the return path
/// resets a [`SessionChange::Resettable`] session (`COM_RESET_CONNECTION`: one round
/// trip, no reconnect) and closes a [`SessionChange::Database`] one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SessionChange {
    /// Nothing the next holder could notice.
    #[default]
    Clean,
    /// `SET autocommit = 0`, `SET @var`, `LOCK TABLES`, `GET_LOCK`, a temporary table,
    /// … (see `db_budget::sql::changes_session`): undone by a session reset.
    Resettable,
    /// `USE other`: a reset keeps the current database, so the connection is closed.
    Database,
}

struct Checkout {
    ticket: CheckoutTicket,
    conn: r2d2::PooledConnection<BudgetedManager>,
}

impl SyncConn {
    /// Wraps a live connection just taken out of the idle list.
    pub(crate) fn new(
        conn: r2d2::PooledConnection<BudgetedManager>,
        ticket: CheckoutTicket,
        pool: r2d2::Pool<BudgetedManager>,
        site: &'static Location<'static>,
    ) -> SyncConn {
        debug_assert!(matches!(*conn, Managed::Live(_)));
        SyncConn {
            checkout: Some(Checkout { ticket, conn }),
            pool,
            site,
            tx_open: false,
            session: SessionChange::Clean,
            raw_used: false,
            next_timeout: None,
            admission: None,
        }
    }

    pub(crate) fn pooled(&mut self) -> &mut Slot {
        match self.checkout.as_mut().map(|c| &mut *c.conn) {
            Some(Managed::Live(p)) => p,
            // `SyncPool` hands out live connections only, and `checkout` is emptied
            // only at the end of `drop`.
            _ => unreachable!("a SyncConn always holds a live connection"),
        }
    }

    fn pooled_ref(&self) -> &Slot {
        match self.checkout.as_ref().map(|c| &*c.conn) {
            Some(Managed::Live(p)) => p,
            _ => unreachable!("a SyncConn always holds a live connection"),
        }
    }

    /// Closes this connection instead of returning it to the pool, e.g. after raw
    /// statements changed session settings the next user must not inherit. Its budget
    /// unit returns once the socket is closed.
    pub fn discard(mut self) {
        self.pooled().doom(CloseReason::SessionState);
    }

    /// Runs the next helper statement under `limit` instead of the pool's statement
    /// timeout (`DB_STATEMENT_TIMEOUT`), longer or shorter; `Duration::ZERO` runs it
    /// without one. Applies to one statement, then the pool's limit holds again:
    ///
    /// ```no_run
    /// # fn demo(conn: &mut db_sync::SyncConn) -> Result<(), db_budget::DbError> {
    /// use std::time::Duration;
    /// let rows: Vec<(u64,)> = conn
    ///     .with_statement_timeout(Duration::from_secs(60))
    ///     .fetch_all("SELECT id FROM events WHERE day < CURDATE()", ())?;
    /// # let _ = rows; Ok(()) }
    /// ```
    ///
    /// On MariaDB the statement is sent as `SET STATEMENT max_statement_time = N FOR
    /// …` (prepared like the statement itself; the session keeps its limit), on MySQL a
    /// `SELECT` gets a `MAX_EXECUTION_TIME` hint (other statements keep the session's
    /// limit there). The socket's read timeout follows `limit` (plus the margin) for
    /// that statement. Transaction statements (`BEGIN`, `COMMIT`, …) run as they are.
    pub fn with_statement_timeout(&mut self, limit: Duration) -> &mut Self {
        self.next_timeout = Some(limit);
        self
    }

    /// Marks the checkout as inside a statement until the guard drops (`cause.rs` of
    /// db-budget tells a slow statement from a leak by it).
    pub(crate) fn enter_statement(&self) -> db_budget::InStatement {
        match &self.checkout {
            Some(c) => c.ticket.enter_statement(),
            None => unreachable!("a SyncConn holds its checkout until the end of drop"),
        }
    }

    /// The call site that checked this connection out (reported by leak detection).
    pub fn checked_out_at(&self) -> &'static Location<'static> {
        self.site
    }
}

impl Deref for SyncConn {
    type Target = RawConn;

    fn deref(&self) -> &RawConn {
        &self.pooled_ref().conn
    }
}

impl DerefMut for SyncConn {
    /// Raw access: from now on the guard cannot know whether a transaction is open, so
    /// its drop sends a `ROLLBACK` (see "Open transactions").
    fn deref_mut(&mut self) -> &mut RawConn {
        self.raw_used = true;
        &mut self.pooled().conn
    }
}

impl Drop for SyncConn {
    fn drop(&mut self) {
        self.settle();
        let state = self.pooled().state().clone();
        if self.pooled().is_cut_off() {
            // Its bulkhead place lingers with its unit (`db_budget::linger`).
            let admission = self.admission.take();
            self.pooled().hold_admission(admission);
        }
        if let Some(Checkout { ticket, conn }) = self.checkout.take() {
            // The `active` gauge falls first, so a snapshot may miss the connection
            // for a moment but never counts it twice.
            drop(ticket);
            // Back to r2d2, whose `has_broken` pools or closes it.
            drop(conn);
        }
        if state.take_wakeup() {
            wake_a_waiter(&self.pool);
        }
    }
}

impl SyncConn {
    /// Decides, before the return, whether the connection may be pooled: doomed if
    /// the thread panics or the rollback fails. One that may be pooled first ends
    /// lingering sessions, if any (`lingering.rs`).
    fn settle(&mut self) {
        self.settle_session();
        let p = self.pooled();
        if !p.is_doomed() && !std::thread::panicking() {
            crate::lingering::reap(p);
        }
    }

    fn settle_session(&mut self) {
        let site = self.site;
        let tx_open = self.tx_open;
        let raw_used = self.raw_used;
        // What raw statements did cannot be seen: legacy code got a fresh session from
        // every `get_database_connection()` (it connected anew), so a raw-used session
        // is reset too.
        let session = if raw_used {
            self.session.max(SessionChange::Resettable)
        } else {
            self.session
        };
        let p = self.pooled();
        if p.is_doomed() {
            return;
        }
        if std::thread::panicking() {
            p.doom(CloseReason::Cancelled);
            return;
        }
        // Every exchange below is bounded by the connect timeout: a frozen server cannot
        // hold the dropping thread (or the unit) longer.
        let started = Instant::now();
        let (what, result) = match session {
            SessionChange::Database => {
                p.doom(CloseReason::SessionState);
                return;
            }
            SessionChange::Clean if !tx_open => return,
            SessionChange::Clean => ("ROLLBACK", p.housekeeping(|c| c.query_drop("ROLLBACK"))),
            SessionChange::Resettable => {
                // After raw access the reset must read the answer it is owed, not a late
                // one, and a raw `USE` is not undone by a reset: `rollback_in_step`
                // proves the first and reports the second.
                let database = p.state().database.clone();
                let in_step = if raw_used {
                    p.housekeeping(|c| rollback_in_step(c, &database))
                } else {
                    Ok(true)
                };
                match in_step {
                    Ok(false) => {
                        p.doom(CloseReason::SessionState);
                        return;
                    }
                    in_step => {
                        // A reset also clears the session's statement limit: set again.
                        let limit = p.state().session_limit_statement();
                        let reset = |c: &mut mysql::Conn| {
                            c.reset()?;
                            limit.map_or(Ok(()), |set| c.query_drop(set))
                        };
                        (
                            "RESET CONNECTION",
                            in_step.and_then(|_| p.housekeeping(reset)),
                        )
                    }
                }
            }
        };
        p.state()
            .recorder
            .record_query(what, started.elapsed(), site);
        if let Err(e) = result {
            tracing::warn!(
                call_site = %site,
                error = %crate::error::map_error(e),
                "db-sync: {what} on return failed; closing the connection",
            );
            p.doom_lost();
        }
    }
}

/// The `ROLLBACK` after raw access, proving on the way that the connection is in step.
///
/// A raw statement may have failed without the guard seeing it, e.g. a read that timed
/// out on a frozen server: the server's late answer to it then still sits in the
/// socket, and a plain `ROLLBACK` would read that answer as its own, leaving its own
/// answer for the next user's statement (a wrong result). So the `ROLLBACK` travels with
/// a `SELECT` of a token never used before, in one round trip; only a connection whose
/// last answer echoes that token has read every answer it was owed.
///
/// The same `SELECT` reports the current database: `true` when it is still
/// `database` (the pool's), `false` after a raw `USE`.
///
/// # Errors
///
/// The driver's error, or [`DriverError::PacketOutOfSync`](mysql::DriverError) when
/// the answers were not this exchange's.
fn rollback_in_step(conn: &mut mysql::Conn, database: &str) -> Result<bool, mysql::Error> {
    static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
    let token = NEXT_TOKEN.fetch_add(1, Relaxed);
    let mut echoed = None;
    let mut current: Option<String> = None;
    let mut result = conn.query_iter(format!("ROLLBACK; SELECT {token}, DATABASE()"))?;
    while let Some(set) = result.iter() {
        for row in set {
            let row = row?;
            if echoed.is_none() {
                echoed = row.get_opt::<u64, _>(0).and_then(Result::ok);
                current = row
                    .get_opt::<Option<String>, _>(1)
                    .and_then(Result::ok)
                    .flatten();
            }
        }
    }
    drop(result);
    if echoed == Some(token) {
        Ok(current.as_deref() == Some(database))
    } else {
        Err(mysql::DriverError::PacketOutOfSync.into())
    }
}

/// r2d2 wakes a waiter when a connection is pooled or opened, but not when a returned
/// one is closed (`put_back` → `drop_conns` notifies nobody). A waiter that found the
/// pool at its size would then sleep until its timeout although there is room now.
/// A zero-timeout `get_timeout` makes r2d2 start a connect for it (the waiter is woken
/// when that lands); if r2d2 hands out an idle connection instead, giving it straight
/// back wakes a waiter too.
pub(crate) fn wake_a_waiter(pool: &r2d2::Pool<BudgetedManager>) {
    if let Ok(handed_out) = pool.get_timeout(Duration::ZERO) {
        drop(handed_out);
    }
}

impl std::fmt::Debug for SyncConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConn")
            .field("connection_id", &self.pooled_ref().conn.connection_id())
            .field("checked_out_at", &self.site)
            .field("transaction_open", &self.tx_open)
            .field("raw_used", &self.raw_used)
            .finish_non_exhaustive()
    }
}
