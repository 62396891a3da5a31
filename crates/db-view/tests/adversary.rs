//! An outside adversary against the server's view: readings missed while the reader was
//! down, account names the process list treats differently from the reader, a server
//! that refuses every connect, a reconnect while the pools hold every other unit, and a
//! view dropped on a frozen server.
//!
//! Each test says in its name what must hold; those that fail today show a hole (the
//! report of branch `adv6` names the fix).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use db_budget::{Budget, DatabaseUrl, Side, Unit};
use db_view::{Explained, Reading, ServerView, ViewSettings};
use mariadb_harness::{Server, ServerOptions, fake};
use r2d2_mysql::mysql::{Conn, Opts, OptsBuilder};

const INTERVAL: Duration = Duration::from_millis(100);

fn settings() -> ViewSettings {
    ViewSettings::new(INTERVAL, Explained::Static { others: 0 })
}

/// An account of this test's own on `server`, allowed into `db` from every host and
/// through the socket (`'name'@'%'` and `'name'@'localhost'`, the same user name).
fn account(server: &Server, name: &str, db: &str) {
    server
        .sql(&format!(
            "CREATE USER '{name}'@'%' IDENTIFIED BY 'adv6-pw'; \
             CREATE USER '{name}'@'localhost' IDENTIFIED BY 'adv6-pw'; \
             GRANT ALL ON `{db}`.* TO '{name}'@'%'; \
             GRANT ALL ON `{db}`.* TO '{name}'@'localhost'"
        ))
        .expect("create the account");
}

/// `user`'s URL over TCP (`user` percent-encoded as a URL needs it).
fn tcp_url(server: &Server, user_in_url: &str, db: &str) -> DatabaseUrl {
    DatabaseUrl::parse(&format!(
        "mysql://{user_in_url}:adv6-pw@127.0.0.1:{}/{db}",
        server.port()
    ))
    .expect("url")
}

/// A connection of `user` over TCP that no budget knows of.
fn tcp_stray(server: &Server, user: &str, db: &str) -> Conn {
    Conn::new(
        OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(server.port())
            .user(Some(user))
            .pass(Some("adv6-pw"))
            .db_name(Some(db))
            .prefer_socket(false),
    )
    .expect("connect over TCP")
}

/// A connection of `user` through the server's unix socket (`'user'@'localhost'`).
fn socket_stray(server: &Server, user: &str, db: &str) -> Conn {
    Conn::new(
        OptsBuilder::new()
            .socket(Some(server.socket_path().to_string_lossy()))
            .user(Some(user))
            .pass(Some("adv6-pw"))
            .db_name(Some(db))
            .prefer_socket(false),
    )
    .expect("connect through the socket")
}

/// `user`'s connections, as root counts them.
fn connections_of(server: &Server, user: &str) -> u64 {
    server
        .sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ))
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
    let asked = SystemTime::now();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(r) = view.latest().filter(|r| r.taken_at >= asked && cond(r)) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn an_excess_that_came_back_while_the_reader_was_down_is_not_drift_at_its_first_reading() {
    // Arrange: the view logs in over TCP ('u'@'%'); a stray of the same user name comes
    // through the socket ('u'@'localhost'), so that locking the view's account keeps
    // the reader out while the strays come and go. The view sees the other host's rows
    // with PROCESS (as the harness's app account has it).
    let server = Server::shared();
    let db = server.create_database("adv6_gap").expect("db");
    let user = format!("vgap_{}", std::process::id());
    account(server, &user, &db);
    server
        .sql(&format!("GRANT PROCESS ON *.* TO '{user}'@'%'"))
        .expect("grant PROCESS");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view = ServerView::start(&budget, &tcp_url(server, &user, &db), settings()).expect("start");
    let first_stray = socket_stray(server, &user, &db);
    let seen = reading_where(&view, Duration::from_secs(10), |r| r.excess == 1);
    assert!(
        seen.is_some(),
        "an excess seen: {:#?} {:?}",
        view.latest(),
        view.status()
    );

    // Act: the reader is kept out (its account locked, its connection killed) ...
    server
        .sql(&format!(
            "ALTER USER '{user}'@'%' ACCOUNT LOCK; \
             SELECT CONCAT('KILL CONNECTION ', ID) INTO @k FROM information_schema.PROCESSLIST \
             WHERE USER = '{user}' AND HOST LIKE '127.0.0.1:%'; \
             EXECUTE IMMEDIATE @k"
        ))
        .expect("lock the view out");
    assert!(eventually(Duration::from_secs(10), || !view.status().up));
    // ... while the excess goes for longer than the lag, and a new one begins just
    // before the reader is let back in.
    drop(first_stray);
    assert!(eventually(Duration::from_secs(10), || connections_of(
        server, &user
    ) == 0));
    std::thread::sleep(settings().lag() * 2);
    let second_stray = socket_stray(server, &user, &db);
    server
        .sql(&format!("ALTER USER '{user}'@'%' ACCOUNT UNLOCK"))
        .expect("unlock");
    let back = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading back");
    let later = reading_where(&view, Duration::from_secs(10), |r| r.unexplained == 1);

    // Assert: the new excess has lasted no time at the first reading back; it is drift
    // only once it has lasted the lag.
    assert_eq!(back.excess, 1, "{back:#?}");
    assert_eq!(
        back.unexplained, 0,
        "an excess of no duration reported as drift, because the readings missed while \
         the reader was down count as if they had shown one: {back:#?}"
    );
    assert!(
        later.is_some(),
        "the new excess becomes drift once it lasts"
    );
    drop(second_stray);
}

#[test]
fn an_account_whose_name_holds_an_at_sign_counts_its_own_connections_and_their_drift() {
    // Arrange: a user name with an '@' (MariaDB allows any character in a quoted name).
    let server = Server::shared();
    let db = server.create_database("adv6_at").expect("db");
    let user = format!("ops@team_{}", std::process::id());
    account(server, &user, &db);
    let url = tcp_url(server, &user.replace('@', "%40"), &db);
    let budget = Budget::new(4, Duration::from_secs(30));
    let view = ServerView::start(&budget, &url, settings()).expect("start");

    // Act
    let first = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");
    let stray = tcp_stray(server, &user, &db);
    let drifting = reading_where(&view, Duration::from_secs(10), |r| r.unexplained == 1);
    drop(stray);

    // Assert
    assert_eq!(first.account, user, "{first:#?}");
    assert_eq!(first.account_connections, 1, "its own reader: {first:#?}");
    assert!(
        drifting.is_some(),
        "a stray of the account was never reported as drift"
    );
}

#[test]
fn an_account_whose_name_differs_only_in_case_is_not_counted_as_the_apps() {
    // Arrange: the view's account sees every account's rows (PROCESS, as the harness's
    // app account has); another account has the same name in capitals.
    let server = Server::shared();
    let db = server.create_database("adv6_case").expect("db");
    let user = format!("vcase_{}", std::process::id());
    let other = user.to_uppercase();
    account(server, &user, &db);
    account(server, &other, &db);
    server
        .sql(&format!("GRANT PROCESS ON *.* TO '{user}'@'%'"))
        .expect("grant PROCESS");
    let budget = Budget::new(4, Duration::from_secs(30));
    let view = ServerView::start(&budget, &tcp_url(server, &user, &db), settings()).expect("start");
    reading_where(&view, Duration::from_secs(10), |_| true).expect("a first reading");

    // Act: two connections of the other account, for three lags.
    let others: Vec<Conn> = (0..2).map(|_| tcp_stray(server, &other, &db)).collect();
    let lag = settings().lag();
    let wrong = reading_where(&view, lag * 3, |r| {
        r.account_connections != 1 || r.excess > 0 || r.unexplained > 0
    });
    let last = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");
    drop(others);

    // Assert: the app's account holds one connection (the reader's); the other account
    // has its own row.
    assert_eq!(wrong, None, "the other account was taken for the app's");
    let row = |name: &str| {
        last.by_account
            .iter()
            .filter(|a| a.user == name)
            .map(|a| a.connections)
            .sum::<u64>()
    };
    assert_eq!((row(&user), row(&other)), (1, 2), "{last:#?}");
}

/// A unit and its connection, as a pool holds them: the connection closes first.
struct Held {
    _conn: Conn,
    _unit: Unit,
}

fn held(budget: &Budget, opts: &Opts) -> Option<Held> {
    let unit = budget.try_acquire(Side::Sync)?;
    let conn = Conn::new(OptsBuilder::from_opts(opts.clone()).prefer_socket(false)).ok()?;
    Some(Held {
        _conn: conn,
        _unit: unit,
    })
}

#[test]
fn a_server_that_refuses_every_connect_sees_at_most_one_attempt_per_interval() {
    // Arrange: every connect is answered with ERROR 1040.
    let full = fake::TooManyConnections::start().expect("a fake server");
    let url = DatabaseUrl::parse(&fake::url(full.port())).expect("url");
    let budget = Budget::new(3, Duration::from_secs(30));
    let interval = Duration::from_millis(300);
    let started = Instant::now();
    let view = ServerView::start(
        &budget,
        &url,
        ViewSettings::new(interval, Explained::Static { others: 0 }),
    )
    .expect("start");

    // Act: a few intervals of refusals.
    std::thread::sleep(interval * 4);
    let attempts = full.accepted();
    let elapsed = started.elapsed();
    let status = view.status();

    // Assert: one attempt at the start and at most one per interval after it (a late
    // reader makes fewer, never more); its unit stays withheld throughout.
    let allowed = u32::try_from(elapsed.as_millis() / interval.as_millis()).unwrap() + 1;
    assert!(attempts >= 1, "it tried");
    assert!(
        attempts <= allowed,
        "{attempts} connects in {elapsed:?} at an interval of {interval:?}"
    );
    assert!(!status.up);
    assert_eq!(u64::from(attempts), status.failures_total);
    assert_eq!(budget.withheld(), 1);
    drop(view);
    assert_eq!((budget.withheld(), budget.usable()), (0, 3));
}

#[test]
fn the_reader_reconnects_while_the_pools_hold_every_other_unit_without_the_process_exceeding_its_budget()
 {
    // Arrange: a budget of 3; once the reader is connected, the "pools" take every unit
    // they can get, each with its connection.
    let server = Server::shared();
    let db = server.create_database("adv6_reconnect").expect("db");
    let user = format!("vrec_{}", std::process::id());
    account(server, &user, &db);
    let opts = Opts::from_url(&format!(
        "mysql://{user}:adv6-pw@127.0.0.1:{}/{db}",
        server.port()
    ))
    .expect("opts");
    let budget = Budget::new(3, Duration::from_secs(30));
    let view = ServerView::start(&budget, &tcp_url(server, &user, &db), settings()).expect("start");
    reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");
    let reader_id: u64 = server
        .sql(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ))
        .expect("the reader's id")
        .trim()
        .parse()
        .expect("one id");
    let pools: Vec<Held> = std::iter::from_fn(|| held(&budget, &opts)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, user) = (stop.clone(), user.clone());
        std::thread::spawn(move || {
            let mut most = 0;
            while !stop.load(Relaxed) {
                most = most.max(connections_of(Server::shared(), &user));
            }
            most
        })
    };

    // Act: the reader's connection is killed; it reconnects on its withheld unit.
    let failures = view.status().failures_total;
    server
        .sql(&format!("KILL CONNECTION {reader_id}"))
        .expect("kill the reader");
    let back = eventually(Duration::from_secs(10), || {
        view.status().failures_total > failures && view.status().up
    });
    let after = reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");
    stop.store(true, Relaxed);
    let most = sampler.join().expect("sampler");

    // Assert
    assert_eq!(pools.len(), 2, "the pools had every unit but the reader's");
    assert!(back, "the reader came back: {:?}", view.status());
    assert_eq!(after.account_connections, 3, "{after:#?}");
    assert_eq!((after.process, after.unexplained), (3, 0), "{after:#?}");
    assert!(most <= 3, "the server counted {most} for a budget of 3");
    drop(pools);
}

#[test]
fn dropping_the_view_on_a_frozen_server_returns_and_leaves_no_unit_or_connection_behind() {
    // Arrange: a server of this test's own, frozen while the view reads it.
    let server = Box::leak(Box::new(
        Server::start(ServerOptions::default()).expect("a server"),
    ));
    let db = server.create_database("adv6_frozen").expect("db");
    let url = DatabaseUrl::parse(&server.app_url(&db)).expect("url");
    let budget = Budget::new(3, Duration::from_secs(30));
    let mut s = settings();
    s.timeout = Duration::from_secs(1);
    let view = ServerView::start(&budget, &url, s).expect("start");
    reading_where(&view, Duration::from_secs(10), |_| true).expect("a reading");
    server.freeze().expect("freeze");

    // Act: the view is dropped while the server does not answer.
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(view);
        let _ = done.send(());
    });
    let returned = dropped.recv_timeout(Duration::from_secs(20)).is_ok();
    server.resume().expect("thaw");

    // Assert
    assert!(returned, "dropping the view hung on a frozen server");
    assert_eq!((budget.withheld(), budget.usable()), (0, 3));
    assert!(
        eventually(Duration::from_secs(10), || connections_of(server, "app")
            == 0),
        "the reader's connection outlived the view"
    );
}
