//! [`RawConn`]: the driver's connection, as a checkout lends it out.

use std::ops::{Deref, DerefMut};

use r2d2_mysql::mysql;

/// The `mysql` crate's connection, for raw statements (`query_iter`, `exec_batch`, …):
/// it dereferences to [`mysql::Conn`], so every driver method works on it.
///
/// It exists for its `Debug`: `mysql::Conn`'s derived one prints the connection's
/// options, password included; this one shows the connection id only.
pub struct RawConn(mysql::Conn);

impl RawConn {
    pub(crate) fn wrap(conn: mysql::Conn) -> RawConn {
        RawConn(conn)
    }
}

impl Deref for RawConn {
    type Target = mysql::Conn;
    fn deref(&self) -> &mysql::Conn {
        &self.0
    }
}

impl DerefMut for RawConn {
    fn deref_mut(&mut self) -> &mut mysql::Conn {
        &mut self.0
    }
}

impl std::fmt::Debug for RawConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConn")
            .field("connection_id", &self.0.connection_id())
            .finish_non_exhaustive()
    }
}
