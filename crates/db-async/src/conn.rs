//! A checked-out connection's statements: the query helpers, shared by
//! [`AsyncConn`](crate::AsyncConn) and [`Transaction`](crate::Transaction).

use std::borrow::Cow;
use std::panic::Location;
use std::time::{Duration, Instant};

use db_budget::sql::{self, TxControl};
use db_budget::statement_timeout::classify;
use db_budget::{DbError, ExecResult, Recorder, StatementLimits, StatementMark, StoppedBy};
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::{AssertSqlSafe, Connection, Executor, FromRow, MySqlConnection, SqlSafeStr, SqlStr};

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
/// Dropping a helper's future mid-statement (e.g. under `tokio::time::timeout`) is
/// allowed, and the connection then runs nothing more: its protocol state is unknown,
/// so every later statement on it fails at once with [`DbError::Interrupted`], and the
/// pool closes it on return (without reading from it) and returns its unit. If a
/// transaction was open, the server rolls it back when the connection closes.
///
/// # Statement timeouts
///
/// Every statement runs under the pool's statement timeout (`DB_STATEMENT_TIMEOUT`),
/// which the server enforces: it was set on the session when the connection opened,
/// so it costs no round trip. A statement that runs out of time fails with
/// [`DbError::StatementTimeout`] (stopped by the server) and the connection stays in
/// step: its next statement runs, and it is pooled on return.
/// [`Conn::with_statement_timeout`] gives the next statement another limit. If the
/// server does not answer by the limit plus the pool's margin (frozen, partitioned),
/// the statement is cut off as a dropped future is (see "Cancel safety"): it fails with
/// [`DbError::StatementTimeout`] stopped by the client, and the connection is closed.
///
/// # Session state
///
/// Transactions are tracked explicitly: open from a successful `BEGIN` (through
/// [`AsyncConn::begin`](crate::AsyncConn::begin) or a helper) until a successful
/// `COMMIT`/`ROLLBACK`; a connection returned with one open is rolled back before
/// reuse. A statement that changes session state the pool cannot reset (`SET
/// autocommit = 0`, `LOCK TABLES`, `GET_LOCK`, user variables, temporary tables; see
/// [`db_budget::sql::changes_session`]) makes the pool close the connection on return,
/// so the next caller never inherits it.
#[derive(Debug)]
pub struct Conn {
    pub(crate) slot: Option<Slot>,
    pub(crate) recorder: Recorder,
    pub(crate) state: ConnState,
    /// The checkout's "in a statement" clock, set while a helper's statement runs.
    pub(crate) statement: StatementMark,
}

/// What the pool must know when the connection comes back, and what the next
/// statement must know before it runs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnState {
    /// A statement started and has not finished: set before each await, cleared after.
    /// Still set afterwards = the statement was cut off (its future dropped): every
    /// later statement is refused ([`DbError::Interrupted`]) and the pool closes the
    /// connection without reading from it.
    pub(crate) busy: bool,
    /// A transaction is open on the server: set when `BEGIN`/`START TRANSACTION`
    /// succeeds, cleared only when `COMMIT`/`ROLLBACK` succeeds. Still set at return =
    /// the pool rolls it back before reuse.
    pub(crate) tx_open: bool,
    /// The open transaction has no owner any more (its [`Transaction`] was dropped, or
    /// its `COMMIT`/`ROLLBACK` failed): roll back before the next statement.
    pub(crate) tx_abandoned: bool,
    /// The session changed in a way the pool cannot reset (see
    /// [`db_budget::sql::changes_session`], and [`Conn::raw`]): closed on return.
    pub(crate) session_dirty: bool,
    /// An I/O or protocol error, or a server error that means the connection is gone,
    /// showed it dead (or `COMMIT RELEASE` ended the session).
    pub(crate) broken: bool,
    /// [`Conn::raw`] handed the connection out: what ran on it is unknown (a raw
    /// statement may have been cut off mid-result), so the helpers refuse from now on.
    pub(crate) raw: bool,
    /// The limit [`Conn::with_statement_timeout`] gave the next helper statement.
    pub(crate) next_timeout: Option<Duration>,
}

impl Conn {
    /// Runs the next helper statement under `limit` instead of the pool's statement
    /// timeout (`DB_STATEMENT_TIMEOUT`), longer or shorter; `Duration::ZERO` runs it
    /// without one. Applies to one statement, then the pool's limit holds again:
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut db_async::AsyncConn) -> Result<(), db_budget::DbError> {
    /// use std::time::Duration;
    /// let rows: Vec<(u64,)> = conn
    ///     .with_statement_timeout(Duration::from_secs(60))
    ///     .fetch_all("SELECT id FROM events WHERE day < CURDATE()", db_async::args![])
    ///     .await?;
    /// # let _ = rows; Ok(()) }
    /// ```
    ///
    /// On MariaDB the statement is sent as `SET STATEMENT max_statement_time = N FOR
    /// …` (prepared like the statement itself; the session keeps its limit). On MySQL
    /// it gets a `MAX_EXECUTION_TIME` hint, which only a `SELECT` takes: other
    /// statements keep the session's limit there, and the client's backstop follows
    /// `limit`. Transaction statements (`BEGIN`, `COMMIT`, …) run as they are.
    pub fn with_statement_timeout(&mut self, limit: Duration) -> &mut Self {
        self.state.next_timeout = Some(limit);
        self
    }

    /// The server's dialect and the limit set on this session when it opened.
    fn limits(&self) -> StatementLimits {
        self.slot
            .as_ref()
            .expect("a checked-out connection has a slot")
            .limits
    }

    fn raw_conn(&mut self) -> &mut MySqlConnection {
        &mut self
            .slot
            .as_mut()
            .expect("a checked-out connection has a slot")
            .conn
    }

    /// Before each statement: refuse on a cut-off connection, settle an abandoned
    /// transaction, then mark busy.
    async fn prepare(
        &mut self,
        site: &'static Location<'static>,
    ) -> Result<&mut MySqlConnection, DbError> {
        if self.state.busy || self.state.raw {
            return Err(DbError::Interrupted);
        }
        if self.state.tx_abandoned {
            // Bounded like a statement under the session's limit: a frozen server
            // cannot hold the caller here (a `ROLLBACK` cut off stays `busy`).
            let backstop = self.limits().backstop(self.limits().session);
            self.state.busy = true;
            let rollback = self.raw_conn().execute("ROLLBACK");
            let r = match backstop {
                None => rollback.await,
                Some(wait) => match tokio::time::timeout(wait, rollback).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(DbError::StatementTimeout {
                            limit: self.limits().session,
                            site,
                            stopped_by: StoppedBy::Client,
                            cause: None,
                        });
                    }
                },
            };
            self.state.busy = false;
            if let Err(e) = r {
                self.state.broken |= breaks_connection(&e);
                return Err(from_sqlx(e));
            }
            self.state.tx_open = false;
            self.state.tx_abandoned = false;
        }
        self.state.busy = true;
        Ok(self.raw_conn())
    }

    /// After each statement: clear busy, track transaction and session state, record
    /// timing, map the error.
    fn finish<T>(
        &mut self,
        sql: &str,
        effects: sql::Effects,
        (started, limit): (Instant, Duration),
        site: &'static Location<'static>,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, DbError> {
        self.state.busy = false;
        match (effects.tx, &result) {
            (Some(TxControl::Begin), Ok(_)) => self.state.tx_open = true,
            (Some(TxControl::End), Ok(_)) => {
                self.state.tx_open = false;
                self.state.tx_abandoned = false;
            }
            _ => {}
        }
        // Conservative: a failed `LOCK TABLES` changed nothing, but closing it costs
        // one reconnect, and a miss would hand the next caller a dirty session.
        self.state.session_dirty |= effects.changes_session;
        self.state.broken |= effects.ends_session;
        self.recorder.record_query(sql, started.elapsed(), site);
        result.map_err(|e| {
            self.state.broken |= breaks_connection(&e);
            classify(from_sqlx(e), limit, site)
        })
    }

    /// A helper's statement: its arguments encoded, then [`Conn::run`] with the SQL
    /// text and arguments handed to `op`.
    /// The statement goes out under the limit [`Conn::with_statement_timeout`] asked
    /// for, if any (its text then carries the limit; the caller's text is what is
    /// classified and logged).
    async fn run_with<T>(
        &mut self,
        sql: SqlStr,
        args: Args,
        site: &'static Location<'static>,
        op: impl AsyncFnOnce(&mut MySqlConnection, SqlStr, MySqlArguments) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbError> {
        // Taken first: an override is for the next statement, even one that fails
        // before it is sent (its arguments do not encode).
        let overridden = self.state.next_timeout.take();
        let arguments = args.into_arguments()?;
        let limits = self.limits();
        let limit = overridden.unwrap_or(limits.session);
        let sent = match limits.statement(sql.as_str(), limit) {
            Cow::Borrowed(_) => sql.clone(),
            Cow::Owned(limited) => AssertSqlSafe(limited).into_sql_str(),
        };
        self.run_limited(sql.as_str(), limit, site, async move |conn| {
            op(conn, sent, arguments).await
        })
        .await
    }

    /// [`Conn::run_limited`] under the session's limit.
    pub(crate) async fn run<T>(
        &mut self,
        sql: &str,
        site: &'static Location<'static>,
        op: impl AsyncFnOnce(&mut MySqlConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbError> {
        let limit = self.limits().session;
        self.run_limited(sql, limit, site, op).await
    }

    /// The one core of every statement: prepare, run `op` (given up on after `limit`
    /// plus the margin: the backstop), finish.
    async fn run_limited<T>(
        &mut self,
        sql: &str,
        limit: Duration,
        site: &'static Location<'static>,
        op: impl AsyncFnOnce(&mut MySqlConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbError> {
        let effects = sql::effects(sql);
        self.prepare(site).await?;
        if effects.tx == Some(TxControl::Begin) && self.state.tx_open {
            // MariaDB would commit the open transaction implicitly: a dropped
            // `Transaction` could then no longer roll back what it wrote.
            self.state.busy = false;
            return Err(DbError::query(
                None,
                Some("25000".to_owned()),
                "a transaction is already open on this connection",
            ));
        }
        let _in_statement = self.statement.enter();
        let started = Instant::now();
        let r = match self.limits().backstop(limit) {
            None => op(self.raw_conn()).await,
            Some(wait) => {
                let slot = self
                    .slot
                    .as_mut()
                    .expect("a checked-out connection has a slot");
                match slot.backstop.run(started + wait, op(&mut slot.conn)).await {
                    Some(r) => r,
                    None => {
                        // The server did not answer in time: the statement's future was
                        // dropped mid-exchange. `busy` stays set, so this connection
                        // refuses every later statement and is shut on return, unread.
                        self.recorder.record_query(sql, started.elapsed(), site);
                        return Err(DbError::StatementTimeout {
                            limit,
                            site,
                            stopped_by: StoppedBy::Client,
                            cause: None,
                        });
                    }
                }
            }
        };
        self.finish(sql, effects, (started, limit), site, r)
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
        self.run_with(sql.into_sql_str(), args, site, async |conn, sql, args| {
            // sqlx returns after the first row and leaves the rest of the result
            // unread: the server would keep the statement open (and its metadata
            // lock) while the connection sits idle. Read it to the end here.
            let row = sqlx::query_as_with::<MySql, T, _>(sql, args)
                .fetch_optional(&mut *conn)
                .await?;
            conn.flush().await?;
            Ok(row)
        })
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
        self.run_with(sql.into_sql_str(), args, site, async |conn, sql, args| {
            sqlx::query_as_with::<MySql, T, _>(sql, args)
                .fetch_all(conn)
                .await
        })
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
        self.run_with(sql.into_sql_str(), args, site, async |conn, sql, args| {
            let rows = sqlx::query_with::<MySql, _>(sql, args)
                .fetch_all(conn)
                .await?;
            rows.iter().map(to_dict).collect()
        })
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
        self.run_with(sql.into_sql_str(), args, site, async |conn, sql, args| {
            let done = sqlx::query_with::<MySql, _>(sql, args)
                .execute(conn)
                .await?;
            Ok(ExecResult {
                rows_affected: done.rows_affected(),
                last_insert_id: Some(done.last_insert_id()).filter(|id| *id != 0),
            })
        })
    }

    /// The underlying sqlx connection, for what the helpers do not cover (streams,
    /// `sqlx::query!` macros, migrations).
    ///
    /// A transaction abandoned earlier on this connection is rolled back first. The
    /// pool cannot see what runs on the raw connection (session settings, locks, a
    /// stream left half-read or cut off), so from then on this checkout's helpers
    /// refuse ([`DbError::Interrupted`]; `raw` itself may be called again), and the
    /// pool closes the connection when it is returned instead of pooling it: use the
    /// helpers on hot paths.
    ///
    /// # Errors
    ///
    /// [`DbError::Interrupted`] when an earlier statement on this connection was cut
    /// off; the rollback's errors as [`DbError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe up to the point it returns (a cut-off rollback marks the connection
    /// interrupted). What you then run on the raw connection is outside the helpers'
    /// cancellation tracking.
    pub async fn raw(&mut self) -> Result<&mut MySqlConnection, DbError> {
        if !self.state.raw {
            self.prepare(Location::caller()).await?;
            self.state.busy = false;
        } else if self.state.busy {
            return Err(DbError::Interrupted);
        }
        self.state.raw = true;
        self.state.session_dirty = true;
        Ok(self.raw_conn())
    }
}
