//! The original outage, reproduced and fixed in one test: connect-per-call workers that
//! leak their connection on an error path exhaust a server with `max_connections=20`
//! (ERROR 1040); the same workload through the budget (`MAX_CONNECTIONS=15`) gets none.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use db_budget::{Budget, Config, DbError};
use db_sync::SyncPool;
use integration_tests::{Server, ServerOptions, TestDb, eventually, init_tracing};
use r2d2_mysql::mysql::{self, prelude::Queryable};

const WORKERS: usize = 60;
const CALLS: usize = 40;

/// What each call does: mostly a good query, every fourth a bad one (the error path).
fn statement(worker: usize, call: usize) -> &'static str {
    if (worker + call).is_multiple_of(4) {
        "SELECT v FROM no_such_table"
    } else {
        "SELECT COUNT(*) FROM items"
    }
}

#[derive(Default, Debug)]
struct Outcome {
    ok: AtomicU64,
    deliberate: AtomicU64,
    too_many: AtomicU64,
    other: AtomicU64,
}

/// The legacy `get_database_connection()`: a brand-new connection per call, closed
/// only on the happy path (Python without `finally`).
fn legacy(server: &Server, db: &TestDb, outcome: &Outcome) {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(server.port())
        .user(Some(mariadb_harness::APP_USER))
        .pass(Some(mariadb_harness::APP_PASSWORD))
        .db_name(Some(db.name.clone()))
        .prefer_socket(false);
    let leaked = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (opts, leaked) = (opts.clone(), leaked.clone());
            s.spawn(move || {
                for c in 0..CALLS {
                    let mut conn = match mysql::Conn::new(opts.clone()) {
                        Ok(conn) => conn,
                        Err(mysql::Error::MySqlError(e)) if e.code == 1040 => {
                            outcome.too_many.fetch_add(1, Relaxed);
                            continue;
                        }
                        Err(_) => {
                            outcome.other.fetch_add(1, Relaxed);
                            continue;
                        }
                    };
                    match conn.query_first::<i64, _>(statement(w, c)) {
                        Ok(_) => {
                            outcome.ok.fetch_add(1, Relaxed);
                            drop(conn);
                        }
                        Err(_) => {
                            outcome.deliberate.fetch_add(1, Relaxed);
                            leaked.lock().unwrap().push(conn); // never closed
                        }
                    }
                }
            });
        }
    });
    let leaked = leaked.lock().unwrap().len();
    println!("legacy: {outcome:?}, {leaked} connections leaked");
}

/// The same workload through the budgeted blocking pool; `?` drops the guard.
fn budgeted(pool: &SyncPool, outcome: &Outcome) {
    fn call(pool: &SyncPool, sql: &'static str) -> Result<Option<i64>, DbError> {
        let mut conn = pool.get()?;
        conn.fetch_optional(sql, ())
    }
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            s.spawn(move || {
                for c in 0..CALLS {
                    match call(pool, statement(w, c)) {
                        Ok(_) => outcome.ok.fetch_add(1, Relaxed),
                        Err(e) if e.code() == Some(1146) => {
                            outcome.deliberate.fetch_add(1, Relaxed)
                        }
                        Err(e) => {
                            eprintln!("budgeted call failed: {e}");
                            if e.to_string().contains("1040") {
                                outcome.too_many.fetch_add(1, Relaxed)
                            } else {
                                outcome.other.fetch_add(1, Relaxed)
                            }
                        }
                    };
                }
            });
        }
    });
    println!("budgeted: {outcome:?}");
}

#[test]
fn connect_per_call_with_leaks_hits_1040_and_the_budget_does_not() {
    // Arrange
    init_tracing();
    let server = Server::start(ServerOptions {
        max_connections: 20,
        ..Default::default()
    })
    .expect("private server with max_connections=20");
    let db = TestDb::create(&server, "outage");
    db.admin(
        &server,
        "CREATE TABLE items (id INT PRIMARY KEY); INSERT INTO items VALUES (1), (2)",
    );

    // Act 1: the legacy pattern.
    let before = Outcome::default();
    legacy(&server, &db, &before);
    assert!(
        eventually(Duration::from_secs(10), || server
            .global_status("Threads_connected")
            .is_ok_and(|n| n <= 1)),
        "leaked connections were not closed"
    );

    // Act 2: the budget, configured as in production.
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(server.app_url(&db.name)),
        "MAX_CONNECTIONS" => Some("15".into()),
        _ => None,
    })
    .unwrap();
    let budget = Budget::from_config(&config);
    let pool = SyncPool::from_config(&config, budget.clone()).unwrap();
    let after = Outcome::default();
    budgeted(&pool, &after);

    // Assert
    assert!(
        before.too_many.load(Relaxed) > 0,
        "the legacy pattern reproduces ERROR 1040"
    );
    assert_eq!(
        after.too_many.load(Relaxed),
        0,
        "no 1040 through the budget"
    );
    assert_eq!(
        after.other.load(Relaxed),
        0,
        "no other failures through the budget"
    );
    let expected_deliberate = (0..WORKERS)
        .flat_map(|w| (0..CALLS).map(move |c| (w, c)))
        .filter(|(w, c)| (w + c).is_multiple_of(4))
        .count() as u64;
    assert_eq!(after.deliberate.load(Relaxed), expected_deliberate);
    assert_eq!(
        after.ok.load(Relaxed) + after.deliberate.load(Relaxed),
        (WORKERS * CALLS) as u64
    );
    assert!(budget.snapshot().sync_side.held <= 15);
    let max_used = server.global_status("Max_used_connections").unwrap();
    println!("server Max_used_connections over both runs: {max_used}");
}
