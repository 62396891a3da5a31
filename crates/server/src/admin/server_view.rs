//! The database server's own view on `/metrics` (`db_server_*`), beside the budget's.
//!
//! Rendered from the last reading of [`db_view`]'s reader: a scrape never touches the
//! database. Without a reading yet (or with the view off) only `db_server_view_up` is
//! written, so that an alert on it can tell "not read" from "nothing to report".

use db_view::{Reading, ViewHandle};

use super::metrics::{header, sample, sample_labelled};

/// Appends the view's families to `o`.
pub(super) fn render(o: &mut String, view: &ViewHandle) {
    let status = view.status();
    header(
        o,
        "db_server_view_up",
        "gauge",
        "1 when the last reading of the database server's own view succeeded (DB_SERVER_VIEW_INTERVAL).",
    );
    sample(o, "db_server_view_up", &[], u8::from(status.up));
    header(
        o,
        "db_server_view_failures_total",
        "counter",
        "Failed attempts to read the database server's view (connect or read).",
    );
    sample(
        o,
        "db_server_view_failures_total",
        &[],
        status.failures_total,
    );
    if let Some(r) = view.latest() {
        reading(o, &r);
    }
}

fn reading(o: &mut String, r: &Reading) {
    type Figure = fn(&Reading) -> u64;
    let families: [(&str, &str, &str, Figure); 10] = [
        (
            "db_server_max_connections",
            "gauge",
            "The database server's max_connections.",
            |r| r.max_connections,
        ),
        (
            "db_server_max_user_connections",
            "gauge",
            "This account's max_user_connections (0: no limit).",
            |r| r.max_user_connections,
        ),
        (
            "db_server_threads_connected",
            "gauge",
            "Client connections the database server counts, every account (Threads_connected).",
            |r| r.threads_connected,
        ),
        (
            "db_server_max_used_connections",
            "gauge",
            "The most connections the database server has held at once since it started (Max_used_connections).",
            |r| r.max_used_connections,
        ),
        (
            "db_server_aborted_connects_total",
            "counter",
            "Failed connection attempts the database server counted since it started (Aborted_connects).",
            |r| r.aborted_connects,
        ),
        (
            "db_server_connections_total",
            "counter",
            "Connection attempts the database server counted since it started (Connections); its rate is connects per second.",
            |r| r.connections_total,
        ),
        (
            "db_server_account_connections",
            "gauge",
            "Connections of this application's account, every host, in the server's process list.",
            |r| r.account_connections,
        ),
        (
            "db_server_process_connections",
            "gauge",
            "This process's connections: budget units in use plus the view's own and a fleet's control connection.",
            |r| r.process,
        ),
        (
            "db_server_connections_explained",
            "gauge",
            "The account's connections the budgets explain (this process, and every other instance at its budget or the fleet budget).",
            |r| r.explained,
        ),
        (
            "db_server_connections_unexplained",
            "gauge",
            "The account's connections the budgets cannot explain, for longer than the view's lag: drift.",
            |r| r.unexplained,
        ),
    ];
    for (name, kind, help, figure) in families {
        header(o, name, kind, help);
        sample(o, name, &[], figure(r));
    }
    let name = "db_server_connections";
    header(
        o,
        name,
        "gauge",
        "Connections in the database server's process list by account and host (others' only with the PROCESS privilege; the rest added up with empty labels).",
    );
    for row in &r.by_account {
        sample_labelled(
            o,
            name,
            &[("user", &row.user), ("host", &row.host)],
            row.connections,
        );
    }
}
