//! One reading of the server's view: its limits, its counters and its process list.

use std::time::SystemTime;

use r2d2_mysql::mysql::prelude::Queryable;
use r2d2_mysql::mysql::{self, Conn};
use serde::Serialize;

/// At most this many (account, host) rows are kept; the rest are added up in one row
/// with an empty user and host, so that a server with thousands of clients cannot make
/// `/metrics` unbounded.
pub const MAX_ROWS: usize = 20;

/// What the server said at one moment, and what the budget said around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// When the reading was taken.
    #[serde(with = "unix_seconds")]
    pub taken_at: SystemTime,
    /// `@@global.max_connections`.
    pub max_connections: u64,
    /// `@@session.max_user_connections`: this account's own limit when it has one, else
    /// the server's; 0 = no limit.
    pub max_user_connections: u64,
    /// Status `Threads_connected`: every client connection, all accounts.
    pub threads_connected: u64,
    /// Status `Max_used_connections`: the most at once since the server started.
    pub max_used_connections: u64,
    /// Status `Aborted_connects`: failed connection attempts since the server started.
    pub aborted_connects: u64,
    /// Status `Connections`: connection attempts since the server started (its rate is
    /// the connects per second that churn shows up in).
    pub connections_total: u64,
    /// This application's account (the user name it logs in with).
    pub account: String,
    /// The account's connections, all hosts, from the process list (this reader's own
    /// included).
    pub account_connections: u64,
    /// Connections of other accounts: `Threads_connected` less the account's.
    pub others: u64,
    /// This process's connections: the budget's units in use (the larger of before and
    /// after the process list was read) plus this reader's own and a fleet's control
    /// connection ([`ViewSettings::beside`](crate::ViewSettings)).
    pub process: u64,
    /// Connections the budgets explain (see [`Explained`](crate::Explained)).
    pub explained: u64,
    /// The account's connections above `explained` in this reading (not yet drift).
    pub excess: u64,
    /// The excess that has lasted the lag: drift (see [`Drift`](crate::Drift)).
    pub unexplained: u64,
    /// The process list by account and host, most connections first ([`MAX_ROWS`]).
    /// Without the `PROCESS` privilege the server lists this account's connections
    /// only; the others are then in [`Reading::others`] alone.
    pub by_account: Vec<AccountHost>,
}

/// Connections of one account from one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountHost {
    /// The user name (empty in the row that adds up the rest).
    pub user: String,
    /// The client host, without its port.
    pub host: String,
    /// Connections.
    pub connections: u64,
}

/// What the server reports, before reconciliation with the budget.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Raw {
    pub max_connections: u64,
    pub max_user_connections: u64,
    pub threads_connected: u64,
    pub max_used_connections: u64,
    pub aborted_connects: u64,
    pub connections_total: u64,
    pub account: String,
    pub by_account: Vec<AccountHost>,
}

// The host column is `host:port` for TCP clients (IPv6 hosts have colons of their own,
// so the port is what follows the last one) and `localhost` for the socket.
// User names are grouped exactly: the column's collation ignores case, and `App` is not
// `app`.
const PROCESS_LIST: &str = "SELECT CONVERT(IFNULL(USER, '') USING utf8mb4) COLLATE utf8mb4_bin, \
     IF(IFNULL(HOST, '') LIKE '%:%', \
        LEFT(HOST, LENGTH(HOST) - LOCATE(':', REVERSE(HOST))), IFNULL(HOST, '')), \
     COUNT(*) \
     FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Daemon' \
     GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2";

const STATUS: &str = "SELECT UPPER(VARIABLE_NAME), CAST(VARIABLE_VALUE AS UNSIGNED) \
     FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN \
     ('THREADS_CONNECTED', 'MAX_USED_CONNECTIONS', 'ABORTED_CONNECTS', 'CONNECTIONS')";

/// Reads the server's view on `conn` (three statements, none needing a privilege).
pub(crate) fn read(conn: &mut Conn) -> Result<Raw, mysql::Error> {
    let (max_connections, max_user_connections, account): (u64, u64, String) = conn
        .query_first(
            "SELECT CAST(@@global.max_connections AS UNSIGNED), \
             CAST(@@session.max_user_connections AS UNSIGNED), \
             LEFT(USER(), LENGTH(USER()) - LOCATE('@', REVERSE(USER())))",
        )?
        .unwrap_or_default();
    let mut raw = Raw {
        max_connections,
        max_user_connections,
        threads_connected: 0,
        max_used_connections: 0,
        aborted_connects: 0,
        connections_total: 0,
        account,
        by_account: Vec::new(),
    };
    for (name, value) in conn.query::<(String, u64), _>(STATUS)? {
        match name.as_str() {
            "THREADS_CONNECTED" => raw.threads_connected = value,
            "MAX_USED_CONNECTIONS" => raw.max_used_connections = value,
            "ABORTED_CONNECTS" => raw.aborted_connects = value,
            "CONNECTIONS" => raw.connections_total = value,
            _ => {}
        }
    }
    let rows = conn.query::<(String, String, u64), _>(PROCESS_LIST)?;
    raw.by_account = rows
        .into_iter()
        .map(|(user, host, connections)| AccountHost {
            user,
            host,
            connections,
        })
        .collect();
    Ok(raw)
}

impl Raw {
    /// The account's connections in the process list.
    pub(crate) fn account_connections(&self) -> u64 {
        self.by_account
            .iter()
            .filter(|r| r.user == self.account)
            .map(|r| r.connections)
            .sum()
    }
}

/// Keeps the first [`MAX_ROWS`] − 1 rows and adds up the rest in one.
pub(crate) fn bounded(mut rows: Vec<AccountHost>) -> Vec<AccountHost> {
    if rows.len() <= MAX_ROWS {
        return rows;
    }
    let rest: u64 = rows.drain(MAX_ROWS - 1..).map(|r| r.connections).sum();
    rows.push(AccountHost {
        user: String::new(),
        host: String::new(),
        connections: rest,
    });
    rows
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub(super) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        s.serialize_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, connections: u64) -> AccountHost {
        AccountHost {
            user: user.into(),
            host: "h".into(),
            connections,
        }
    }

    #[test]
    fn more_rows_than_the_bound_are_added_up_in_the_last() {
        let rows: Vec<_> = (0..30).map(|i| row(&format!("u{i}"), 1)).collect();
        let kept = bounded(rows);
        assert_eq!(kept.len(), MAX_ROWS);
        assert_eq!(kept.last().map(|r| r.connections), Some(11));
        assert_eq!(kept.iter().map(|r| r.connections).sum::<u64>(), 30);
    }
}
