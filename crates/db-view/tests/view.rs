//! The server's view against a real, private MariaDB: the reader's own unit, the
//! figures against the server's, drift against connections the budget cannot explain,
//! and a restart.

use std::time::{Duration, Instant};

use db_budget::{Budget, DatabaseUrl, Side};
use db_view::{Explained, Reading, ServerView, ViewError, ViewSettings};
use mariadb_harness::{Server, ServerOptions};
use r2d2_mysql::mysql::{Conn, Opts, OptsBuilder};

const INTERVAL: Duration = Duration::from_millis(100);

fn database(server: &Server, prefix: &str) -> (DatabaseUrl, String) {
    let db = server.create_database(prefix).expect("create database");
    let url = DatabaseUrl::parse(&server.app_url(&db)).expect("url");
    (url, db)
}

fn settings(explained: Explained) -> ViewSettings {
    ViewSettings::new(INTERVAL, explained)
}

/// A connection of the app's account that no budget knows of.
fn stray(server: &Server, db: &str) -> Conn {
    let opts = Opts::from_url(&server.app_url(db)).expect("opts");
    // Over TCP only (the driver would otherwise reconnect to the socket file).
    Conn::new(OptsBuilder::from_opts(opts).prefer_socket(false)).expect("connect")
}

/// The app account's connections, as root counts them.
fn app_connections(server: &Server) -> u64 {
    server
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        .expect("count")
        .trim()
        .parse()
        .expect("a number")
}

/// The first reading taken after now for which `cond` holds, within `within`.
fn reading_where(
    view: &ServerView,
    within: Duration,
    mut cond: impl FnMut(&Reading) -> bool,
) -> Option<Reading> {
    let asked = std::time::SystemTime::now();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(r) = view.latest().filter(|r| r.taken_at >= asked && cond(r)) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn the_readers_connection_counts_in_the_budget_and_its_unit_comes_back_when_it_stops() {
    // Arrange
    let server = Server::shared();
    let (url, _db) = database(server, "view_unit");
    let budget = Budget::new(4, Duration::from_secs(30));

    // Act
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 0 })).expect("start");
    let reading = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");

    // Assert: one connection, inside the budget; none once stopped.
    assert_eq!(budget.usable(), 3);
    assert_eq!(reading.account_connections, 1, "{reading:#?}");
    assert_eq!(app_connections(server), 1);
    drop(view);
    assert_eq!(budget.usable(), 4);
    assert_eq!(budget.withheld(), 0);
    assert!(eventually(Duration::from_secs(5), || app_connections(
        server
    ) == 0));
}

#[test]
fn a_budget_with_no_free_unit_refuses_to_start_the_view_and_keeps_nothing() {
    // Arrange: the only unit is taken.
    let server = Server::shared();
    let (url, _db) = database(server, "view_full");
    let budget = Budget::new(1, Duration::from_secs(30));
    let held = budget.try_acquire(Side::Async).expect("the unit");

    // Act
    let refused = ServerView::start(&budget, &url, settings(Explained::Static { others: 0 }));

    // Assert
    assert!(
        matches!(
            refused,
            Err(ViewError::NoUnit {
                capacity: 1,
                taken: 1
            })
        ),
        "{refused:?}"
    );
    assert_eq!(budget.withheld(), 0);
    drop(held);
    assert_eq!(budget.available(), 1);
}

#[test]
fn a_reading_agrees_with_what_the_server_reports_to_root() {
    // Arrange
    let server = Server::shared();
    let (url, _db) = database(server, "view_figures");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 0 })).expect("start");

    // Act
    let r = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");

    // Assert
    assert_eq!(r.max_connections, u64::from(server.max_connections()));
    assert_eq!(r.max_user_connections, 0);
    assert_eq!(r.account, "app");
    let max_used = server.global_status("Max_used_connections").unwrap();
    assert!(
        r.max_used_connections <= max_used && r.max_used_connections >= 1,
        "{r:#?}"
    );
    let connections = server.global_status("Connections").unwrap();
    assert!(
        r.connections_total >= 1 && r.connections_total <= connections,
        "{r:#?}"
    );
    assert!(r.threads_connected >= r.account_connections, "{r:#?}");
    assert_eq!(r.others, r.threads_connected - r.account_connections);
    let app = r
        .by_account
        .iter()
        .find(|a| a.user == "app")
        .expect("app's row");
    assert_eq!(app.host, "127.0.0.1", "the port is cut off: {r:#?}");
    assert_eq!(r.process, 1, "the reader's own connection: {r:#?}");
    assert_eq!(view.status().failures_total, 0);
    assert!(view.status().up);

    // And reading costs no connects: ten more readings, the server's Connections
    // counter (as the view reads it, so no other client connects meanwhile) unmoved.
    let base = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");
    let reads = view.status().reads_total;
    let later = reading_where(&view, Duration::from_secs(10), |_| {
        view.status().reads_total >= reads + 10
    })
    .expect("ten more readings");
    assert_eq!(
        later.connections_total, base.connections_total,
        "{later:#?}"
    );
}

#[test]
fn connections_of_the_account_that_no_budget_holds_become_drift_once_they_last_and_go_with_them() {
    // Arrange
    let server = Server::shared();
    let (url, db) = database(server, "view_drift");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 0 })).expect("start");

    // Act: three connections of the account, outside any budget.
    let strays: Vec<Conn> = (0..3).map(|_| stray(server, &db)).collect();
    // The connections open one by one: the drift reaches 3 once all three have lasted.
    let drifting = reading_where(&view, Duration::from_secs(10), |r| r.unexplained == 3);
    drop(strays);
    let settled = reading_where(&view, Duration::from_secs(10), |r| r.unexplained == 0);

    // Assert
    let drifting = drifting.expect("drift reported");
    assert_eq!(drifting.unexplained, 3, "{drifting:#?}");
    assert_eq!(drifting.excess, 3);
    assert_eq!(drifting.account_connections, 4);
    assert_eq!(drifting.explained, 1);
    assert!(settled.is_some(), "the drift went with the connections");
}

#[test]
fn connections_the_budget_holds_are_never_drift() {
    // Arrange: three units held, each with its connection (as a pool holds them).
    let server = Server::shared();
    let (url, db) = database(server, "view_held");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 0 })).expect("start");
    let held: Vec<_> = (0..3)
        .map(|_| {
            let unit = budget.try_acquire(Side::Sync).expect("a unit");
            (unit, stray(server, &db))
        })
        .collect();

    // Act: readings over three lags.
    let lag = settings(Explained::Static { others: 0 }).lag();
    let seen = reading_where(&view, lag * 3, |r| r.excess > 0 || r.unexplained > 0);
    let last = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");

    // Assert
    assert_eq!(seen, None, "an excess was reported for held units");
    assert_eq!(last.account_connections, 4, "{last:#?}");
    assert_eq!(last.process, 4);
    drop(held);
}

#[test]
fn another_instances_budget_explains_its_connections_and_no_more() {
    // Arrange: another instance may hold 2.
    let server = Server::shared();
    let (url, db) = database(server, "view_others");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 2 })).expect("start");
    let lag = settings(Explained::Static { others: 2 }).lag();

    // Act: two connections elsewhere, then a third.
    let mut strays: Vec<Conn> = (0..2).map(|_| stray(server, &db)).collect();
    let within = reading_where(&view, lag * 3, |r| r.excess > 0);
    strays.push(stray(server, &db));
    let over = reading_where(&view, Duration::from_secs(10), |r| r.unexplained > 0);

    // Assert
    assert_eq!(within, None);
    assert_eq!(over.expect("drift").unexplained, 1);
}

#[test]
fn an_accounts_own_connection_limit_is_what_the_view_reports() {
    // Arrange: an account created WITH MAX_USER_CONNECTIONS 5.
    let server = Server::shared();
    let db = server.create_database("view_capped").expect("db");
    let user = format!("viewcap_{}", std::process::id());
    server
        .sql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'capped-secret' WITH MAX_USER_CONNECTIONS 5; \
             GRANT ALL ON `{db}`.* TO '{user}'@'%'"
        ))
        .expect("create the account");
    let url = DatabaseUrl::parse(&format!(
        "mysql://{user}:capped-secret@127.0.0.1:{}/{db}",
        server.port()
    ))
    .expect("url");
    let budget = Budget::new(4, Duration::from_secs(30));

    // Act
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 0 })).expect("start");
    let r = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");

    // Assert
    assert_eq!(r.max_user_connections, 5);
    assert_eq!(r.account, user);
    assert_eq!(r.account_connections, 1);
}

#[test]
fn the_view_goes_down_while_the_server_is_stopped_and_reads_again_after_a_restart() {
    // Arrange: a server of this test's own.
    let server = Server::start(ServerOptions::default()).expect("start a server");
    let (url, _db) = database(&server, "view_restart");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view =
        ServerView::start(&budget, &url, settings(Explained::Static { others: 0 })).expect("start");
    reading_where(&view, Duration::from_secs(10), |_| true).expect("a first reading");

    // Act
    server.stop().expect("stop");
    let went_down = eventually(Duration::from_secs(20), || !view.status().up);
    server.restart_after_stop().expect("restart");
    let after = reading_where(&view, Duration::from_secs(30), |_| true);

    // Assert: down, then up on a new connection; the unit stayed withheld throughout.
    assert!(went_down, "{:?}", view.status());
    let after = after.expect("a reading after the restart");
    assert!(view.status().up);
    assert!(view.status().failures_total >= 1);
    assert_eq!(after.account_connections, 1, "{after:#?}");
    assert_eq!(budget.withheld(), 1);
}
