//! One physical connection and the budget unit that pays for it.

use std::time::{Duration, Instant};

use db_budget::linger::Session;

use crate::backstop::Backstop;
use db_budget::{StatementLimits, Unit};
use sqlx::{Connection, MySqlConnection};

/// A live connection. Field order matters: `conn` drops (closing the socket) before
/// `unit` returns to the budget, so the budget never counts a unit free while its
/// socket is still open (invariant I1).
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) conn: MySqlConnection,
    /// When the connection opened, moved back by its lifetime jitter (0–5 % of
    /// `DB_MAX_LIFETIME`, `pool/connect.rs`): every age check then retires it that much
    /// earlier, so that connections opened together do not all reconnect together.
    pub(crate) opened_at: Instant,
    /// The last keepalive ping (`pool/keepalive.rs`), if any.
    pub(crate) pinged_at: Option<Instant>,
    /// The server's dialect and the statement limit set on this session when it
    /// opened (`pool/connect.rs`).
    pub(crate) limits: StatementLimits,
    /// The budget's eviction generation when its connect started (`Budget::evict`): an
    /// evicted connection is closed instead of pooled or handed out.
    pub(crate) generation: u64,
    /// The server's session (`CONNECTION_ID()` and the server's start, read at
    /// connect): what a cut-off connection's unit lingers for (`db_budget::linger`).
    pub(crate) session: Session,
    /// The client's backstop timer, kept across statements (`backstop.rs`).
    pub(crate) backstop: Backstop,
    pub(crate) unit: Unit,
}

/// How a connection leaves the pool for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Farewell {
    /// Send COM_QUIT, then close: the protocol state is known to be clean.
    Graceful,
    /// Shut the socket without a word: the stream may be mid-result (a cancelled
    /// query), where reading or writing could hang (sqlx #563).
    Hard,
}

impl Slot {
    /// Closes the connection, bounded by `limit`, and only then returns the unit.
    pub(crate) async fn close(self, how: Farewell, limit: Duration) {
        let (unit, _) = self.shut(how, limit).await;
        drop(unit);
    }

    /// Closes the connection, bounded by `limit`, and hands back its unit (still in
    /// use) and the session's id: for a connection shut mid-statement, whose unit
    /// lingers until the server has ended the session.
    pub(crate) async fn shut(self, how: Farewell, limit: Duration) -> (Unit, Session) {
        let Slot {
            conn,
            unit,
            session,
            ..
        } = self;
        let closing = async move {
            let _ = match how {
                Farewell::Graceful => conn.close().await,
                Farewell::Hard => conn.close_hard().await,
            };
        };
        // On timeout the close future, which owns the connection, is dropped here: the
        // socket is closed before the unit leaves.
        let _ = tokio::time::timeout(limit, closing).await;
        (unit, session)
    }
}
