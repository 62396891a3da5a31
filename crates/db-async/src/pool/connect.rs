//! Opening a connection: the one place db-async connects, after a unit was taken.

use std::time::{Duration, Instant};

use db_budget::{DbError, TimeoutPhase, Unit};
use sqlx::{Connection, MySqlConnection};

use super::Shared;
use crate::error::is_connection_limit;
use crate::slot::Slot;

impl Shared {
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
            let attempt = MySqlConnection::connect_with(&self.connect_options);
            match tokio::time::timeout_at(attempt_deadline.into(), attempt).await {
                Ok(Ok(conn)) => {
                    self.recorder.record_opened();
                    return Ok(Slot {
                        conn,
                        opened_at: Instant::now(),
                        unit,
                    });
                }
                Ok(Err(e)) if is_connection_limit(&e) => {
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
                Ok(Err(e)) => return Err(DbError::Connect { cause: e.into() }),
                Err(_) => {
                    return Err(self.recorder.timeout_error(TimeoutPhase::Connect, started));
                }
            }
        }
    }
}
