//! The checked-out connection.

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;

use db_budget::{Admission, CheckoutTicket, DbError};

use crate::conn::Conn;
use crate::pool::Shared;
use crate::tx::Transaction;

/// A connection checked out of an [`AsyncPool`](crate::AsyncPool). Run statements
/// through it (it dereferences to [`Conn`]); dropping it returns the connection.
///
/// On return the pool decides: a connection whose statement was cut off, whose holder
/// panicked, that the server dropped, or whose session state changed, is closed rather
/// than reused; a transaction left open is rolled back first; a connection the other
/// side needs is closed so that its budget unit moves there. Returning never waits on
/// the network in the caller's task.
#[must_use = "the connection goes back to the pool as soon as this is dropped"]
#[derive(Debug)]
pub struct AsyncConn {
    pub(crate) conn: Conn,
    pub(crate) ticket: CheckoutTicket,
    pub(crate) shared: Arc<Shared>,
    /// The module bulkhead's place, given back after the connection (declared last).
    pub(crate) admission: Option<Admission>,
}

impl AsyncConn {
    /// Begins a transaction (`BEGIN`). Commit it with
    /// [`Transaction::commit`]; dropped uncommitted, it rolls back.
    ///
    /// # Errors
    ///
    /// Query and connection errors as [`DbError`].
    #[track_caller]
    pub fn begin(&mut self) -> impl Future<Output = Result<Transaction<'_>, DbError>> + Send + '_ {
        let site = Location::caller();
        Transaction::begin(&mut self.conn, site)
    }
}

impl AsyncConn {
    /// Closes this connection instead of returning it to the pool, e.g. after a stored
    /// routine or trigger changed session state that the pool cannot see in the SQL
    /// text (a user variable, `GET_LOCK`). Its unit returns once the socket is closed.
    pub fn discard(mut self) {
        self.conn.state.session_dirty = true;
    }
}

impl Deref for AsyncConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for AsyncConn {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Drop for AsyncConn {
    fn drop(&mut self) {
        if let Some(slot) = self.conn.slot.take() {
            // A connection cut off mid-statement keeps its bulkhead place while its
            // unit lingers (`db_budget::linger`).
            let admission = if self.conn.state.busy {
                self.admission.take()
            } else {
                None
            };
            self.shared.release(slot, self.conn.state, admission);
        }
        // `ticket` drops after this: the checkout ends once the pool has the connection.
        let _ = &self.ticket;
    }
}
