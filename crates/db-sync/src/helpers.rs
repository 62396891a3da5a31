//! The query helpers, in blocking form, named and shaped as on the async side so that
//! ported code reads the same.
//!
//! Every helper uses a prepared statement (`exec_*`): values travel as parameters and
//! are never spliced into the SQL. Every statement is timed into the budget's query
//! histogram and, when slower than `DB_SLOW_QUERY`, logged with its SQL text (never its
//! values) and the caller's file and line. A connection error dooms the connection: it
//! is closed, not pooled, when the guard is dropped.

use std::panic::Location;
use std::time::{Duration, Instant};

use db_budget::sql::{self, TxControl};
use db_budget::statement_timeout::classify;
use db_budget::{DbError, ExecResult, StoppedBy};
use r2d2_mysql::mysql::prelude::{FromRow, Queryable};
use r2d2_mysql::mysql::{self, Params, Row};

use crate::connection::{Slot, set_socket_timeouts};
use crate::dict::{DictRow, to_dict};
use crate::error::{decode_error, is_lost, map_error, row_shape};
use crate::guard::{SessionChange, SyncConn};
use crate::pool::SyncPool;
use crate::tx::Transaction;

impl SyncConn {
    /// The one row the statement returns, decoded into `T` (a tuple such as
    /// `(u64, String)`, or any `mysql::prelude::FromRow`). Further rows are read and
    /// dropped.
    ///
    /// ```no_run
    /// # fn demo(conn: &mut db_sync::SyncConn) -> Result<(), db_budget::DbError> {
    /// let (name, coins): (String, i64) =
    ///     conn.fetch_one("SELECT name, coins FROM players WHERE id = ?", (7,))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DbError::RowNotFound`] when there is no row; [`DbError::Decode`] when it does
    /// not convert; query and connection errors as [`DbError`].
    #[track_caller]
    pub fn fetch_one<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<T, DbError> {
        self.fetch_optional(sql, params)?
            .ok_or(DbError::RowNotFound)
    }

    /// The first row the statement returns, if any, decoded into `T`.
    ///
    /// # Errors
    ///
    /// As [`SyncConn::fetch_one`], without `RowNotFound`.
    #[track_caller]
    pub fn fetch_optional<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Option<T>, DbError> {
        let params = params.into();
        self.run(sql, Location::caller(), |c, sql| {
            let row: Option<Row> = c.exec_first(sql, params).map_err(map_error)?;
            row.map(decode::<T>).transpose()
        })
    }

    /// Every row the statement returns, decoded into `T`.
    ///
    /// # Errors
    ///
    /// [`DbError::Decode`] when a row does not convert; query and connection errors as
    /// [`DbError`].
    #[track_caller]
    pub fn fetch_all<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<T>, DbError> {
        let params = params.into();
        self.run(sql, Location::caller(), |c, sql| {
            let rows: Vec<Row> = c.exec(sql, params).map_err(map_error)?;
            rows.into_iter().map(decode::<T>).collect()
        })
    }

    /// The one row the statement returns, as a [`DictRow`] (column name → JSON value,
    /// in column order; see [`DictRow`] for the value mapping).
    ///
    /// # Errors
    ///
    /// [`DbError::RowNotFound`] when there is no row; query and connection errors as
    /// [`DbError`].
    #[track_caller]
    pub fn fetch_dict_one(
        &mut self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<DictRow, DbError> {
        let params = params.into();
        self.run(sql, Location::caller(), |c, sql| {
            let row: Option<Row> = c.exec_first(sql, params).map_err(map_error)?;
            row.map(to_dict).ok_or(DbError::RowNotFound)
        })
    }

    /// Every row the statement returns, as [`DictRow`]s.
    ///
    /// # Errors
    ///
    /// Query and connection errors as [`DbError`].
    #[track_caller]
    pub fn fetch_dict_all(
        &mut self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<DictRow>, DbError> {
        let params = params.into();
        self.run(sql, Location::caller(), |c, sql| {
            let rows: Vec<Row> = c.exec(sql, params).map_err(map_error)?;
            Ok(rows.into_iter().map(to_dict).collect())
        })
    }

    /// Runs a statement that returns no rows (`INSERT`, `UPDATE`, `DELETE`, DDL) and
    /// reports rows affected and the `AUTO_INCREMENT` id it generated (`None` when 0).
    ///
    /// `BEGIN` / `START TRANSACTION` / `COMMIT` / `ROLLBACK` without parameters run as
    /// plain text statements (not every server prepares them), and the guard notes that
    /// a transaction is open until it ends; prefer [`SyncConn::transaction`].
    ///
    /// # Errors
    ///
    /// Query and connection errors as [`DbError`].
    #[track_caller]
    pub fn execute(&mut self, sql: &str, params: impl Into<Params>) -> Result<ExecResult, DbError> {
        let params = params.into();
        let control = sql::tx_control(sql).filter(|_| matches!(params, Params::Empty));
        let done = self.run(sql, Location::caller(), |c, sql| {
            match control {
                Some(_) => c.query_drop(sql),
                None => c.exec_drop(sql, params),
            }
            .map_err(map_error)?;
            Ok(ExecResult {
                rows_affected: c.affected_rows(),
                last_insert_id: Some(c.last_insert_id()).filter(|id| *id != 0),
            })
        })?;
        Ok(done)
    }

    /// Runs one statement on the raw connection: under the limit
    /// [`SyncConn::with_statement_timeout`] asked for, if any (`f` gets the text to
    /// send, which then carries it, and the socket's read timeout follows it); times
    /// it, maps its error, dooms the connection when the error says it is lost.
    fn run<R>(
        &mut self,
        sql: &str,
        site: &'static Location<'static>,
        f: impl FnOnce(&mut mysql::Conn, &str) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        // Taken first: an override is for the next statement, even one refused before
        // it is sent.
        let overridden = self.next_timeout.take();
        let effects = sql::effects(sql);
        if self.tx_open && effects.tx == Some(TxControl::Begin) {
            // The server would commit the open transaction implicitly.
            return Err(DbError::query(
                None,
                Some("25000".to_owned()),
                "a transaction is already open on this connection",
            ));
        }
        let _in_statement = self.enter_statement();
        let p = self.pooled();
        let limits = p.state().statement_limits();
        let limit = overridden.unwrap_or(limits.session);
        let sent = limits.statement(sql, limit);
        let started = Instant::now();
        let result = match overridden {
            None => f(&mut p.conn, &sent),
            Some(_) => with_read_timeout(p, limits.backstop(limit), |c| f(c, &sent)),
        };
        // One clock read for both (the limit on or off, a statement reads it once).
        let took = started.elapsed();
        p.state().recorder.record_query(sql, took, site);
        // The socket's timeout is the backstop: a lost connection after it passed is
        // a server that stopped answering (the driver reports the expired read as an
        // I/O or codec error, `EAGAIN`).
        let waited_out = limits.backstop(limit).is_some_and(|wait| took >= wait);
        let result = result.map_err(|e| match e {
            e if waited_out && is_lost(&e) => DbError::StatementTimeout {
                limit,
                site,
                stopped_by: StoppedBy::Client,
                cause: None,
            },
            e => classify(e, limit, site),
        });
        let gave_up = matches!(
            &result,
            Err(DbError::StatementTimeout {
                stopped_by: StoppedBy::Client,
                ..
            })
        );
        if gave_up {
            p.doom_cut_off();
        } else if result.as_ref().is_err_and(is_lost) {
            p.doom_lost();
        }
        if effects.ends_session {
            p.doom_lost(); // `COMMIT RELEASE`: the server closes the session
        }
        // The same classifier as the async side's, so the two cannot disagree.
        match (effects.tx, &result) {
            (Some(TxControl::Begin), Ok(_)) => self.tx_open = true,
            (Some(TxControl::End), Ok(_)) => self.tx_open = false,
            _ => {}
        }
        if effects.changes_session {
            self.session = self.session.max(if effects.changes_database {
                SessionChange::Database
            } else {
                SessionChange::Resettable
            });
        }
        result
    }

    pub(crate) fn control(
        &mut self,
        sql: &'static str,
        site: &'static Location<'static>,
    ) -> Result<(), DbError> {
        self.run(sql, site, |c, sql| c.query_drop(sql).map_err(map_error))
    }

    /// `ROLLBACK` with the pool-housekeeping bound (the connect timeout, see
    /// `connection.rs`) instead of the statement bound.
    pub(crate) fn rollback_bounded(&mut self, site: &Location<'_>) -> Result<(), DbError> {
        let p = self.pooled();
        let started = Instant::now();
        let result = p
            .housekeeping(|c| c.query_drop("ROLLBACK"))
            .map_err(map_error);
        p.state()
            .recorder
            .record_query("ROLLBACK", started.elapsed(), site);
        if let Err(e) = &result
            && is_lost(e)
        {
            p.doom_lost();
        }
        result
    }
}

/// One-statement conveniences: check out a connection, run one helper, return the
/// connection. Each costs a checkout; use a [`SyncConn`] for several statements.
impl SyncPool {
    /// [`SyncPool::get`] then [`SyncConn::fetch_one`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn fetch_one<T: FromRow>(
        &self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<T, DbError> {
        self.get()?.fetch_one(sql, params)
    }

    /// [`SyncPool::get`] then [`SyncConn::fetch_optional`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn fetch_optional<T: FromRow>(
        &self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Option<T>, DbError> {
        self.get()?.fetch_optional(sql, params)
    }

    /// [`SyncPool::get`] then [`SyncConn::fetch_all`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn fetch_all<T: FromRow>(
        &self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<T>, DbError> {
        self.get()?.fetch_all(sql, params)
    }

    /// [`SyncPool::get`] then [`SyncConn::fetch_dict_one`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn fetch_dict_one(&self, sql: &str, params: impl Into<Params>) -> Result<DictRow, DbError> {
        self.get()?.fetch_dict_one(sql, params)
    }

    /// [`SyncPool::get`] then [`SyncConn::fetch_dict_all`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn fetch_dict_all(
        &self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<DictRow>, DbError> {
        self.get()?.fetch_dict_all(sql, params)
    }

    /// [`SyncPool::get`] then [`SyncConn::execute`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn execute(&self, sql: &str, params: impl Into<Params>) -> Result<ExecResult, DbError> {
        self.get()?.execute(sql, params)
    }

    /// [`SyncPool::get`] then [`SyncConn::transaction`].
    ///
    /// # Errors
    ///
    /// As those two.
    #[track_caller]
    pub fn transaction<R>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        self.get()?.transaction(f)
    }
}

/// Runs `f` with the socket's read and write timeout at `wait` (the max lifetime for
/// `None`: no limit), then restores the pool's statement bound. A connection whose
/// timeouts cannot be set is lost.
fn with_read_timeout<R>(
    p: &mut Slot,
    wait: Option<Duration>,
    f: impl FnOnce(&mut mysql::Conn) -> Result<R, DbError>,
) -> Result<R, DbError> {
    let wait = wait.unwrap_or(p.state().settings.max_lifetime);
    if let Err(e) = set_socket_timeouts(&p.conn, wait) {
        return Err(map_error(mysql::Error::IoError(e)));
    }
    let result = f(&mut p.conn);
    if let Err(e) = set_socket_timeouts(&p.conn, p.state().io_timeout) {
        tracing::warn!(error = %e, "db-sync: cannot restore the socket timeouts; closing the connection");
        p.doom_lost();
    }
    result
}

fn decode<T: FromRow>(row: Row) -> Result<T, DbError> {
    T::from_row_opt(row).map_err(|mysql::FromRowError(row)| {
        decode_error(&row_shape(&row), std::any::type_name::<T>())
    })
}
