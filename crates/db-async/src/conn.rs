//! A checked-out connection's statements: the query helpers, shared by
//! [`AsyncConn`](crate::AsyncConn) and [`Transaction`](crate::Transaction).

use std::panic::Location;
use std::time::Instant;

use db_budget::{Budget, DbError, ExecResult, Side};
use sqlx::mysql::{MySql, MySqlRow};
use sqlx::{Executor, FromRow, MySqlConnection, SqlSafeStr};

use crate::args::Args;
use crate::dict::{DictRow, to_dict};
use crate::error::{breaks_connection, from_sqlx};
use crate::slot::Slot;

/// A connection in a caller's hands, with the query helpers.
///
/// You get one by dereferencing an [`AsyncConn`](crate::AsyncConn) or a
/// [`Transaction`](crate::Transaction). Every helper takes the SQL text (a `&'static
/// str`, or `sqlx::AssertSqlSafe(..)` for built text) and [`Args`] for its `?`
/// placeholders, runs it as a prepared statement, times it (statements slower than
/// `DB_SLOW_QUERY` are logged with their SQL, never their values) and maps errors to
/// [`DbError`].
///
/// # Cancel safety
///
/// Dropping a helper's future mid-statement is allowed, and the connection is then
/// never reused: the protocol state is unknown, so the pool closes it (without reading
/// from it) and returns its unit. If a transaction was open, the server rolls it back
/// when the connection closes.
#[derive(Debug)]
pub struct Conn {
    pub(crate) slot: Option<Slot>,
    pub(crate) budget: Budget,
    pub(crate) state: ConnState,
}

/// What the pool must know when the connection comes back.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnState {
    /// A statement started and has not finished: set before each await, cleared after.
    /// Still set at return = the future was cancelled mid-statement.
    pub(crate) busy: bool,
    /// A [`Transaction`](crate::Transaction) was dropped without commit or rollback.
    pub(crate) rollback_pending: bool,
    /// Somebody used the raw connection; its state is unverified.
    pub(crate) raw_used: bool,
    /// An I/O or protocol error showed the connection dead.
    pub(crate) broken: bool,
}

impl Conn {
    fn raw_conn(&mut self) -> &mut MySqlConnection {
        &mut self
            .slot
            .as_mut()
            .expect("a checked-out connection has a slot")
            .conn
    }

    /// Before each statement: settle an abandoned transaction, then mark busy.
    pub(crate) async fn prepare(&mut self) -> Result<&mut MySqlConnection, DbError> {
        if self.state.rollback_pending {
            self.state.busy = true;
            let r = self.raw_conn().execute("ROLLBACK").await;
            self.state.busy = false;
            if let Err(e) = r {
                self.state.broken |= breaks_connection(&e);
                return Err(from_sqlx(e));
            }
            self.state.rollback_pending = false;
        }
        self.state.busy = true;
        Ok(self.raw_conn())
    }

    /// After each statement: clear busy, record timing, map the error.
    pub(crate) fn finish<T>(
        &mut self,
        sql: &str,
        started: Instant,
        site: &Location<'_>,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, DbError> {
        self.state.busy = false;
        if starts_transaction(sql) {
            // Opened outside `AsyncConn::begin`: make the return path roll it back.
            self.state.raw_used = true;
        }
        self.budget
            .record_query(Side::Async, sql, started.elapsed(), site);
        result.map_err(|e| {
            self.state.broken |= breaks_connection(&e);
            from_sqlx(e)
        })
    }

    /// The one row the statement returns, decoded into `T` (any `sqlx::FromRow`, e.g. a
    /// `#[derive(sqlx::FromRow)]` struct or a tuple).
    ///
    /// # Errors
    ///
    /// [`DbError::RowNotFound`] when there is no row; query, decode and connection
    /// errors as [`DbError`].
    #[track_caller]
    pub fn fetch_one<'c, T>(
        &'c mut self,
        sql: impl SqlSafeStr,
        args: Args,
    ) -> impl Future<Output = Result<T, DbError>> + Send + 'c
    where
        T: for<'r> FromRow<'r, MySqlRow> + Send + Unpin + 'c,
    {
        let fut = self.fetch_optional::<T>(sql, args);
        async move { fut.await?.ok_or(DbError::RowNotFound) }
    }

    /// The first row the statement returns, if any, decoded into `T`.
    ///
    /// # Errors
    ///
    /// Query, decode and connection errors as [`DbError`].
    #[track_caller]
    pub fn fetch_optional<'c, T>(
        &'c mut self,
        sql: impl SqlSafeStr,
        args: Args,
    ) -> impl Future<Output = Result<Option<T>, DbError>> + Send + 'c
    where
        T: for<'r> FromRow<'r, MySqlRow> + Send + Unpin + 'c,
    {
        let site = Location::caller();
        let sql = sql.into_sql_str();
        async move {
            let args = args.into_arguments()?;
            let conn = self.prepare().await?;
            let started = Instant::now();
            let r = sqlx::query_as_with::<MySql, T, _>(sql.clone(), args)
                .fetch_optional(conn)
                .await;
            self.finish(sql.as_str(), started, site, r)
        }
    }

    /// Every row the statement returns, decoded into `T`.
    ///
    /// # Errors
    ///
    /// Query, decode and connection errors as [`DbError`].
    #[track_caller]
    pub fn fetch_all<'c, T>(
        &'c mut self,
        sql: impl SqlSafeStr,
        args: Args,
    ) -> impl Future<Output = Result<Vec<T>, DbError>> + Send + 'c
    where
        T: for<'r> FromRow<'r, MySqlRow> + Send + Unpin + 'c,
    {
        let site = Location::caller();
        let sql = sql.into_sql_str();
        async move {
            let args = args.into_arguments()?;
            let conn = self.prepare().await?;
            let started = Instant::now();
            let r = sqlx::query_as_with::<MySql, T, _>(sql.clone(), args)
                .fetch_all(conn)
                .await;
            self.finish(sql.as_str(), started, site, r)
        }
    }

    /// The one row the statement returns, as a [`DictRow`].
    ///
    /// # Errors
    ///
    /// [`DbError::RowNotFound`] when there is no row; otherwise as
    /// [`Conn::fetch_dict_all`].
    #[track_caller]
    pub fn fetch_dict_one<'c>(
        &'c mut self,
        sql: impl SqlSafeStr,
        args: Args,
    ) -> impl Future<Output = Result<DictRow, DbError>> + Send + 'c {
        let fut = self.fetch_dict_all(sql, args);
        async move { fut.await?.into_iter().next().ok_or(DbError::RowNotFound) }
    }

    /// Every row the statement returns, as [`DictRow`]s in column order.
    ///
    /// # Errors
    ///
    /// Query, decode and connection errors as [`DbError`].
    #[track_caller]
    pub fn fetch_dict_all<'c>(
        &'c mut self,
        sql: impl SqlSafeStr,
        args: Args,
    ) -> impl Future<Output = Result<Vec<DictRow>, DbError>> + Send + 'c {
        let site = Location::caller();
        let sql = sql.into_sql_str();
        async move {
            let args = args.into_arguments()?;
            let conn = self.prepare().await?;
            let started = Instant::now();
            let r = sqlx::query_with::<MySql, _>(sql.clone(), args)
                .fetch_all(conn)
                .await
                .and_then(|rows| rows.iter().map(to_dict).collect());
            self.finish(sql.as_str(), started, site, r)
        }
    }

    /// Runs a statement that returns no rows (`INSERT`, `UPDATE`, `DELETE`, DDL).
    ///
    /// # Errors
    ///
    /// Query and connection errors as [`DbError`].
    #[track_caller]
    pub fn execute<'c>(
        &'c mut self,
        sql: impl SqlSafeStr,
        args: Args,
    ) -> impl Future<Output = Result<ExecResult, DbError>> + Send + 'c {
        let site = Location::caller();
        let sql = sql.into_sql_str();
        async move {
            let args = args.into_arguments()?;
            let conn = self.prepare().await?;
            let started = Instant::now();
            let r = sqlx::query_with::<MySql, _>(sql.clone(), args)
                .execute(conn)
                .await
                .map(|done| ExecResult {
                    rows_affected: done.rows_affected(),
                    last_insert_id: Some(done.last_insert_id()).filter(|id| *id != 0),
                });
            self.finish(sql.as_str(), started, site, r)
        }
    }

    /// The underlying sqlx connection, for what the helpers do not cover (streams,
    /// `sqlx::query!` macros, migrations).
    ///
    /// The pool can no longer vouch for it: when it comes back, it is checked with a
    /// ping (bounded in time) before reuse, and closed if that fails.
    pub fn raw(&mut self) -> &mut MySqlConnection {
        self.state.raw_used = true;
        self.raw_conn()
    }
}

/// `BEGIN…` or `START TRANSACTION…` run through a helper.
fn starts_transaction(sql: &str) -> bool {
    let head = sql.trim_start().get(..5).unwrap_or("");
    head.eq_ignore_ascii_case("begin") || head.eq_ignore_ascii_case("start")
}
