//! Transactions: explicit commit, rollback when dropped.

use std::ops::{Deref, DerefMut};
use std::panic::Location;

use db_budget::DbError;
use sqlx::Executor;

use crate::conn::Conn;

/// An open transaction on a checked-out connection. Run statements through it (it
/// dereferences to [`Conn`]), then [`commit`](Transaction::commit).
///
/// Dropped without `commit` or `rollback` (early return, `?`, panic, cancellation), it
/// rolls back: the `ROLLBACK` is sent before the connection runs anything else, and
/// before it goes back to the pool; a connection whose `ROLLBACK` fails or times out is
/// closed instead, which makes the server roll back.
#[must_use = "a transaction rolls back unless committed"]
#[derive(Debug)]
pub struct Transaction<'c> {
    /// `Some` for the transaction's whole life; `commit`/`rollback` take it.
    conn: Option<&'c mut Conn>,
}

impl<'c> Transaction<'c> {
    pub(crate) async fn begin(
        conn: &'c mut Conn,
        site: &'static Location<'static>,
    ) -> Result<Self, DbError> {
        conn.simple("BEGIN", site).await?;
        Ok(Transaction { conn: Some(conn) })
    }

    /// Commits.
    ///
    /// # Errors
    ///
    /// Query and connection errors as [`DbError`]. If the connection was lost during
    /// `COMMIT`, whether the transaction committed is unknown.
    #[track_caller]
    pub fn commit(mut self) -> impl Future<Output = Result<(), DbError>> + Send + 'c {
        let site = Location::caller();
        // `self` moves into the future: dropped before its first poll, it is dropped
        // with it, and the transaction counts as abandoned (rolled back later).
        async move {
            let Some(conn) = self.conn.take() else {
                return Ok(());
            };
            conn.end("COMMIT", site).await
        }
    }

    /// Rolls back now (dropping does the same, later).
    ///
    /// # Errors
    ///
    /// Query and connection errors as [`DbError`].
    #[track_caller]
    pub fn rollback(mut self) -> impl Future<Output = Result<(), DbError>> + Send + 'c {
        let site = Location::caller();
        // `self` moves into the future: dropped before its first poll, it is dropped
        // with it, and the transaction counts as abandoned (rolled back later).
        async move {
            let Some(conn) = self.conn.take() else {
                return Ok(());
            };
            conn.end("ROLLBACK", site).await
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.state.tx_abandoned = conn.state.tx_open;
        }
    }
}

impl Deref for Transaction<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_deref()
            .expect("a live transaction has its connection")
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_deref_mut()
            .expect("a live transaction has its connection")
    }
}

impl Conn {
    /// A text-protocol statement without arguments (BEGIN/COMMIT/ROLLBACK cannot all be
    /// prepared), with the same busy/timing/error handling as the helpers.
    pub(crate) async fn simple(
        &mut self,
        sql: &'static str,
        site: &'static Location<'static>,
    ) -> Result<(), DbError> {
        self.run(sql, site, async |conn| conn.execute(sql).await.map(|_| ()))
            .await
    }

    /// `COMMIT` or `ROLLBACK` of a [`Transaction`]. If it fails, the transaction may
    /// still be open and has no owner any more: it is rolled back before the next
    /// statement (or on return).
    async fn end(
        &mut self,
        sql: &'static str,
        site: &'static Location<'static>,
    ) -> Result<(), DbError> {
        let r = self.simple(sql, site).await;
        if r.is_err() {
            self.state.tx_abandoned = self.state.tx_open;
        }
        r
    }
}
