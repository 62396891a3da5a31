//! The reader thread: one connection, a reading every interval, reconnecting after a
//! failure at the next interval (never sooner, so a failing server sees at most one
//! connection attempt per interval from it).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError};
use std::time::{Instant, SystemTime};

use db_budget::{Budget, DatabaseUrl};
use r2d2_mysql::mysql::prelude::Queryable;
use r2d2_mysql::mysql::{Conn, OptsBuilder};

use crate::drift::Drift;
use crate::reading::{self, Reading};
use crate::{Shared, ViewSettings};

pub(crate) fn run(
    budget: Budget,
    url: DatabaseUrl,
    settings: ViewSettings,
    shared: Arc<Shared>,
    stop: Receiver<()>,
) {
    let mut conn: Option<Conn> = None;
    let mut drift = Drift::new(settings.lag());
    loop {
        if conn.is_none() {
            conn = connect(&url, &settings);
        }
        match conn
            .as_mut()
            .map(|c| read(c, &budget, &settings, &mut drift))
        {
            Some(Ok(r)) => {
                shared.reads.fetch_add(1, Relaxed);
                shared.up.store(true, Relaxed);
                *shared.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "db-view: reading the server's view failed; reconnecting at the next interval");
                // Closed now; the next connection waits for the next interval.
                conn = None;
                // Nothing is known of the time without readings: an excess must last
                // the lag again, from the next reading.
                drift = Drift::new(settings.lag());
                shared.failures.fetch_add(1, Relaxed);
                shared.up.store(false, Relaxed);
            }
            None => {
                drift = Drift::new(settings.lag());
                shared.failures.fetch_add(1, Relaxed);
                shared.up.store(false, Relaxed);
            }
        }
        match stop.recv_timeout(settings.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

fn read(
    conn: &mut Conn,
    budget: &Budget,
    settings: &ViewSettings,
    drift: &mut Drift,
) -> Result<Reading, r2d2_mysql::mysql::Error> {
    let before = budget.in_use();
    let raw = reading::read(conn)?;
    let after = budget.in_use();
    let at = Instant::now();
    // The budget's units, plus this reader's own connection and those beside it (a
    // fleet's control connection).
    let process = u64::from(before.max(after)) + 1 + u64::from(settings.beside);
    let explained = u64::from(
        settings
            .explained
            .count(u32::try_from(process).unwrap_or(u32::MAX)),
    );
    let account_connections = raw.account_connections();
    let excess = account_connections.saturating_sub(explained);
    let unexplained = drift.observe(at, u32::try_from(excess).unwrap_or(u32::MAX));
    Ok(Reading {
        taken_at: SystemTime::now(),
        max_connections: raw.max_connections,
        max_user_connections: raw.max_user_connections,
        threads_connected: raw.threads_connected,
        max_used_connections: raw.max_used_connections,
        aborted_connects: raw.aborted_connects,
        connections_total: raw.connections_total,
        others: raw.threads_connected.saturating_sub(account_connections),
        account_connections,
        process,
        explained,
        excess,
        unexplained: u64::from(unexplained),
        account: raw.account,
        by_account: reading::bounded(raw.by_account),
    })
}

fn connect(url: &DatabaseUrl, settings: &ViewSettings) -> Option<Conn> {
    let timeout = settings.timeout;
    let opts = OptsBuilder::new()
        .user(Some(url.user()))
        .pass(url.password())
        .db_name(Some(url.database()))
        // One socket per connection: the driver would otherwise open a second one to
        // the server's socket file when it finds one.
        .prefer_socket(false)
        .tcp_connect_timeout(Some(timeout))
        .read_timeout(Some(timeout))
        .write_timeout(Some(timeout));
    let opts = match url.socket() {
        Some(path) => opts.socket(Some(path.to_string_lossy())),
        None => opts.ip_or_hostname(Some(url.host())).tcp_port(url.port()),
    };
    match Conn::new(opts) {
        Ok(mut conn) => {
            // The server stops a reading that runs long, before the socket timeout.
            let limit = format!(
                "SET SESSION max_statement_time = {:.3}",
                timeout.as_secs_f64() / 2.0
            );
            match conn.query_drop(limit) {
                Ok(()) => Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "db-view: cannot set up the reader's session");
                    None
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "db-view: cannot open the reader's connection; retrying at the next interval");
            None
        }
    }
}
