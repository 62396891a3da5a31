//! Transactions: [`SyncConn::transaction`] and the [`Transaction`] its closure receives.

use std::ops::{Deref, DerefMut};
use std::panic::Location;

use db_budget::DbError;

use crate::guard::SyncConn;

impl SyncConn {
    /// Runs `f` in a transaction: `START TRANSACTION`, then `COMMIT` if `f` returns
    /// `Ok`, `ROLLBACK` if it returns `Err` (the error is passed on). If `f` panics, the
    /// guard's drop closes the connection, which makes the server roll back.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut db_sync::SyncConn) -> Result<(), db_budget::DbError> {
    /// let id = conn.transaction(|tx| {
    ///     tx.execute("UPDATE players SET coins = coins - ? WHERE id = ?", (10, 7))?;
    ///     let done = tx.execute("INSERT INTO purchases (player_id, item) VALUES (?, ?)", (7, "hat"))?;
    ///     Ok(done.last_insert_id)
    /// })?;
    /// # let _ = id; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `f`'s error, or the error of `START TRANSACTION` / `COMMIT`. A transaction
    /// already open on this connection (started by a raw or helper `BEGIN`) is refused
    /// with SQLSTATE 25000 rather than committed implicitly by a second `START`.
    #[track_caller]
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let site = Location::caller();
        if self.tx_open {
            return Err(DbError::query(
                None,
                Some("25000".to_owned()),
                "a transaction is already open on this connection",
            ));
        }
        self.control("START TRANSACTION", site)?;
        self.tx_open = true;
        match f(&mut Transaction { conn: self }) {
            Ok(value) => match self.control("COMMIT", site) {
                Ok(()) => {
                    self.tx_open = false;
                    Ok(value)
                }
                Err(e) => {
                    self.rollback_quietly(site);
                    Err(e)
                }
            },
            Err(e) => {
                self.rollback_quietly(site);
                Err(e)
            }
        }
    }

    /// Ends the transaction after a failure; a connection that cannot roll back is
    /// closed (the server then rolls back).
    fn rollback_quietly(&mut self, site: &Location<'_>) {
        if !self.pooled().is_doomed()
            && let Err(e) = self.rollback_bounded(site)
        {
            tracing::warn!(call_site = %site, error = %e, "db-sync: ROLLBACK failed; closing the connection");
            self.pooled().doom_lost();
        }
        self.tx_open = false;
    }
}

/// The open transaction inside [`SyncConn::transaction`]: it dereferences to the
/// [`SyncConn`], so the same helpers (no nested `transaction`) and raw access work
/// on it, as db-async's `Transaction` dereferences to its `Conn`. `Tx` is its older name.
pub struct Transaction<'c> {
    conn: &'c mut SyncConn,
}

impl Deref for Transaction<'_> {
    type Target = SyncConn;

    /// The connection's helpers ([`SyncConn::fetch_one`], [`SyncConn::execute`],
    /// …) and, through it, raw access to [`mysql::Conn`]. A nested
    /// [`SyncConn::transaction`] is refused (SQLSTATE 25000).
    fn deref(&self) -> &SyncConn {
        self.conn
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut SyncConn {
        self.conn
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("conn", &self.conn)
            .finish()
    }
}
