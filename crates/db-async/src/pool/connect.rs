//! Opening a connection: the one place db-async connects, after a unit was taken.

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_budget::linger::{self, Session};
use db_budget::{DbError, ServerFlavor, StatementLimits, TimeoutPhase, Unit};
use sqlx::{Connection, Executor, MySqlConnection, Row};

use super::Shared;
use crate::error::is_connection_limit;
use crate::slot::Slot;

impl Shared {
    /// [`Shared::connect`] in a task of its own, for a caller that may give up midway
    /// (its acquire dropped at an await point). Dropped inline, the half-open socket
    /// would close while the server still counts its session (it counts from the
    /// accept, and until its thread has torn down), and the unit would go straight to
    /// the next connect: one more than the budget on the server, ERROR 1040 with every
    /// slot in use. So the connect runs to its end whatever the caller does, and a
    /// connection nobody waits for any more is pooled (to the next caller, or idle).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the connect running; its connection
    /// joins the pool, and its unit stays with it.
    pub(super) async fn connect_detached(
        self: &Arc<Self>,
        unit: Unit,
        started: Instant,
        deadline: Instant,
    ) -> Result<Slot, DbError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.connect(unit, started, deadline).await;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(self);
        drop(runtime.spawn(async move {
            let opened = shared.connect(unit, started, deadline).await;
            if let Err(Ok(slot)) = tx.send(opened) {
                // The caller gave up meanwhile.
                shared.pool_or_reap(slot);
            }
        }));
        // The task dropped unrun (its runtime shutting down) dropped its unit too.
        rx.await.unwrap_or(Err(DbError::Closed))
    }

    /// Opens a connection paid for by `unit`. "Too many connections" is retried while
    /// holding the unit, until the deadline (the server may still count sockets this
    /// process has closed: ARCHITECTURE.md, "Server-side lag"), and is then a pool timeout in phase `Connect`.
    pub(super) async fn connect(
        &self,
        unit: Unit,
        started: Instant,
        deadline: Instant,
    ) -> Result<Slot, DbError> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let now = Instant::now();
            let attempt_deadline = deadline.min(now + self.settings.connect_timeout);
            // Read before the connect: one under way during an eviction counts as older.
            let generation = self.budget.generation();
            let attempt = async {
                let mut conn = MySqlConnection::connect_with(&self.connect_options).await?;
                // On an error `conn` drops here, without a farewell: its socket closes
                // before `unit` returns.
                let session = self.start_session(&mut conn).await?;
                Ok::<_, sqlx::Error>((conn, session))
            };
            match tokio::time::timeout_at(attempt_deadline.into(), attempt).await {
                Ok(Ok((conn, (limits, session)))) => {
                    self.recorder.record_opened();
                    let now = Instant::now();
                    let jitter = self.settings.lifetime_jitter();
                    return Ok(Slot {
                        conn,
                        opened_at: now.checked_sub(jitter).unwrap_or(now),
                        pinged_at: None,
                        limits,
                        generation,
                        session,
                        backstop: Default::default(),
                        unit,
                    });
                }
                Ok(Err(e)) if is_connection_limit(&e) => {
                    self.recorder.record_connect_failed();
                    if Instant::now() + backoff < deadline {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(100));
                        continue;
                    }
                    // Refused until the deadline: a pool timeout (counted, with the
                    // budget's state), as on the blocking side; the cause is logged here.
                    tracing::warn!(
                        last_connect_error = %e,
                        "db-async: timed out; the server kept refusing connections",
                    );
                    return Err(self.recorder.timeout_error(TimeoutPhase::Connect, started));
                }
                Ok(Err(e)) => {
                    self.recorder.record_connect_failed();
                    return Err(DbError::Connect { cause: e.into() });
                }
                Err(_) => {
                    // The connect timeout, not the caller's deadline, cut it short.
                    if attempt_deadline < deadline {
                        self.recorder.record_connect_failed();
                    }
                    return Err(self.recorder.timeout_error(TimeoutPhase::Connect, started));
                }
            }
        }
    }

    /// Readies a new session, inside the connect's deadline: learns the server's
    /// dialect (the pool's first connect asks, later ones reuse the answer), the
    /// session's id and its server's start (kept for a cut-off statement's unit, which
    /// lingers until the server has ended the session: `db_budget::linger`; a server
    /// started since the last connect makes the budget forget the old one's sessions)
    /// and, when the pool has a statement timeout, sets it on the session once (the hot
    /// path then pays nothing for it): two round trips per connect, one more on the
    /// first. Text protocol: nothing is prepared.
    async fn start_session(
        &self,
        conn: &mut MySqlConnection,
    ) -> Result<(StatementLimits, Session), sqlx::Error> {
        let flavor = match self.flavor.get() {
            Some(known) => *known,
            None => {
                let row = conn.fetch_one(ServerFlavor::VERSION_QUERY).await?;
                let version: String = row.try_get(0)?;
                *self
                    .flavor
                    .get_or_init(|| ServerFlavor::from_version(&version))
            }
        };
        let row = conn.fetch_one(linger::session_query(flavor)).await?;
        let uptime: String = row.try_get(1)?;
        let uptime = uptime
            .trim()
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let session = Session::new(row.try_get::<u64, _>(0)?, uptime);
        self.budget.saw_server(session);
        let limits = self.settings.statement_limits(flavor);
        if !limits.session.is_zero() {
            let set = limits.flavor.session_statement(limits.session);
            conn.execute(sqlx::AssertSqlSafe(set)).await?;
        }
        Ok((limits, session))
    }
}
