//! Configuration: every bad value of every variable fails naming the variable and the
//! accepted form; the password never appears in any error, log line or `Debug` output.

use std::time::Duration;

use db_async::AsyncPool;
use db_budget::{Config, DatabaseUrl, DbError, VARIABLES};
use db_sync::SyncPool;
use integration_tests::reuse::fresh;
use integration_tests::{Server, TestDb, budget, captured_logs, runtime, sync_pool};

fn config(pairs: &[(&str, &str)]) -> Result<Config, db_budget::ConfigError> {
    Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn every_bad_value_of_every_variable_fails_naming_the_variable() {
    let bad_urls = [
        "",
        "   ",
        "localhost:3306",
        "postgres://app:pw@localhost/game",
        "mysql://app:pw@localhost",
        "mysql://:pw@localhost/game",
        "mysql://app:pw@localhost:0x1/game",
        "mysql://app:pw@localhost/game?ssl=true",
    ];
    let bad_counts = ["", "0", "-1", "many", "2.5", "10001"];
    let bad_durations = ["", "0ms", "-1s", "ten", "5", "5 parsecs", "2.5s", "25h"];
    // `0` turns these off; the rest of their bad values are the same.
    let bad_durations_or_off = [
        "",
        "0 parsecs",
        "-1s",
        "ten",
        "5",
        "5 parsecs",
        "2.5s",
        "25h",
    ];
    let mut checked = 0;
    for var in VARIABLES {
        let bad: &[&str] = match var.name {
            "DATABASE_URL" => &bad_urls,
            "MAX_CONNECTIONS" => &bad_counts,
            "DB_MAX_WAITERS" => &["", "-1", "many", "2.5", "1000001"],
            "DB_HANDOVER" => &["", "Eager", "lazy", "damped,eager"],
            "DB_BULKHEADS" => &["retention", "a=5..4", "a=1..21", "A=1..2", "a=1..2,a=1..2"],
            _ if var.accepts == db_budget::ACCEPTS_DURATION_OR_OFF => &bad_durations_or_off,
            _ => &bad_durations,
        };
        for value in bad {
            let err = config(&[(var.name, value)]).unwrap_err();
            assert_eq!(err.variable(), var.name, "{value:?}");
            let msg = err.to_string();
            assert!(msg.contains(var.name) && msg.contains(var.accepts), "{msg}");
            checked += 1;
        }
        // The documented default is accepted when written out.
        if var.default != "none" {
            assert!(config(&[(var.name, var.default)]).is_ok(), "{}", var.name);
        }
    }
    assert_eq!(checked, 8 + 6 + 8 * 8 + 5 + 4 + 5);
}

#[test]
fn a_password_never_appears_in_errors_logs_or_debug_output() {
    // Arrange: the right server, a wrong password.
    const PASSWORD: &str = "hunter2-wrong-pw";
    let logs = captured_logs();
    let server = Server::shared();
    let db = TestDb::create(server, "secrets");
    let raw = format!(
        "mysql://app:{PASSWORD}@127.0.0.1:{}/{}",
        server.port(),
        db.name
    );
    let config = config(&[("DATABASE_URL", &raw), ("DB_POOL_TIMEOUT", "500ms")]).unwrap();
    let url: &DatabaseUrl = config.database_url.as_ref().unwrap();
    let budget = budget(2);
    let rt = runtime();

    // Act: both pools try to connect and fail.
    let (async_err, apool_debug) = rt.block_on(async {
        let pool = AsyncPool::from_config(&config, budget.clone()).unwrap();
        (
            pool.acquire().await.map(|_| ()).unwrap_err(),
            format!("{pool:?}"),
        )
    });
    let spool = SyncPool::from_config(&config, budget.clone()).unwrap();
    let sync_err = spool.get().map(|_| ()).unwrap_err();
    // A badly formed URL is reported without its password, too.
    let parse_err = DatabaseUrl::parse(&format!("mysql://app:{PASSWORD}@host")).unwrap_err();

    // Assert
    assert!(
        matches!(async_err, DbError::Connect { .. }),
        "{async_err:?}"
    );
    assert!(
        matches!(
            sync_err,
            DbError::PoolTimeout { .. } | DbError::Connect { .. }
        ),
        "{sync_err:?}"
    );
    let mut outputs = vec![
        format!("{config:?}"),
        format!("{url} {url:?}"),
        apool_debug,
        format!("{spool:?}"),
        format!("{parse_err} {parse_err:?}"),
    ];
    for err in [&async_err, &sync_err] {
        outputs.push(format!("{err} {err:?} {err:#?}"));
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            outputs.push(format!("{s} {s:?}"));
            source = s.source();
        }
    }
    std::thread::sleep(Duration::from_millis(300)); // let r2d2's connect thread log its retries
    outputs.push(logs.text());
    for out in &outputs {
        assert!(!out.contains(PASSWORD), "password leaked into: {out}");
    }
    assert!(
        outputs.iter().any(|o| o.contains("Access denied")),
        "the cause is still reported"
    );
    assert!(format!("{url}").contains(":***@"));
}

#[test]
fn the_blocking_connection_s_debug_through_deref_shows_no_password() {
    let (_server, db) = fresh("adv_s_debug");
    let budget = budget(1);
    let pool = sync_pool(&db.url, &budget);
    let conn = pool.get().unwrap();
    let password = db.url.password().unwrap().to_owned();
    let shown = format!("{:?} / {:?}", conn, &*conn);
    assert!(
        !shown.contains(&password),
        "Debug shows the password: {shown}"
    );
}
