//! I1: one budget per process behind the global functions: the environment's budget and
//! the program's own never coexist, even when they race (each round in a fresh child
//! process, since the globals are once per process).

use db_sync::SyncPool;
use integration_tests::budget;
use integration_tests::reuse::*;

#[test]
fn a_budget_built_after_the_environment_s_one_is_a_second_budget() {
    let (server, db) = fresh("adv_env_first");
    // SAFETY: first thing in this test process (nextest: one test per process).
    unsafe {
        std::env::set_var("DATABASE_URL", server.app_url(&db.name));
        std::env::set_var("MAX_CONNECTIONS", "1");
    }
    // A legacy module runs first: the shim builds the process-wide budget of 1.
    let legacy = db_sync::get_database_connection().expect("the shim from the environment");
    // Then the process builds its own budget (as a worker binary does): refused loudly,
    // never a second budget beside the environment's.
    let second = std::panic::catch_unwind(|| budget(1));
    drop(legacy);
    let payload = second.expect_err("building a second budget must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .expect("the panic says why");
    assert!(message.contains("two budgets"), "{message}");
    // The shim keeps its one budget.
    let again = db_sync::get_database_connection().map(drop);
    assert!(again.is_ok(), "the shim lost its budget: {again:?}");
    assert_eq!(
        app_connections(server),
        1,
        "the environment's budget keeps its pooled connection"
    );
}

/// One round in a fresh process (globals are once per process): a legacy thread's
/// first `db_budget::global()` races the program building and installing its own.
/// Prints `TWO` when both succeeded: two budgets behind the process-wide functions.
fn race_round() {
    // SAFETY: the child process's first action, before any other thread exists.
    unsafe {
        std::env::set_var("DATABASE_URL", "mysql://app:pw@127.0.0.1:1/game");
        std::env::set_var("MAX_CONNECTIONS", "7");
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let legacy = std::thread::spawn(move || {
        b.wait();
        db_budget::global().map(|(_, budget)| budget.capacity())
    });
    barrier.wait();
    // Building the program's own budget after the environment's panics (loudly
    // refused): one budget, so not `TWO`.
    let own = match std::panic::catch_unwind(|| budget(3)) {
        Ok(own) => own,
        Err(_) => {
            let legacy = legacy.join().unwrap();
            println!("ROUND legacy={legacy:?} own budget refused loudly: one");
            return;
        }
    };
    let config = db_budget::Config::from_env().unwrap();
    let installed = db_budget::install_global(config, own.clone());
    let legacy = legacy.join().unwrap();
    let two = installed.is_ok() && matches!(legacy, Ok(7));
    // Afterwards: uninstall; a process that built its own must never fall back.
    let after = installed
        .map(drop)
        .ok()
        .map(|()| db_budget::global().map(|(_, b)| b.capacity()));
    println!(
        "ROUND legacy={legacy:?} installed_then_global={after:?} {}",
        if two || matches!(after, Some(Ok(7))) {
            "TWO"
        } else {
            "one"
        }
    );
}

#[test]
fn the_environment_s_budget_and_an_installed_one_never_coexist() {
    if std::env::var_os("ADV_RACE_ROUND").is_some() {
        race_round();
        return;
    }
    assert_never_two_budgets(
        "the_environment_s_budget_and_an_installed_one_never_coexist",
        "ADV_RACE_ROUND",
    );
}

/// As [`race_round`], with the shim's own entry point: the legacy thread's
/// `db_sync::global()` (what `get_database_connection()` calls) races the program
/// installing its budget and blocking pool, as `server`'s `Application::build` does.
fn shim_race_round() {
    // SAFETY: the child process's first action, before any other thread exists.
    unsafe {
        std::env::set_var("DATABASE_URL", "mysql://app:pw@127.0.0.1:1/game");
        std::env::set_var("MAX_CONNECTIONS", "7");
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let legacy = std::thread::spawn(move || {
        b.wait();
        db_sync::global().map(|pool| pool.budget().capacity())
    });
    barrier.wait();
    // Building the program's own budget after the environment's panics (loudly
    // refused): one budget, so not `TWO`.
    let own = match std::panic::catch_unwind(|| budget(3)) {
        Ok(own) => own,
        Err(_) => {
            let legacy = legacy.join().unwrap();
            println!("ROUND legacy={legacy:?} own budget refused loudly: one");
            return;
        }
    };
    let config = db_budget::Config::from_env().unwrap();
    let url = config.database_url.clone().unwrap();
    let g1 = db_budget::install_global(config, own.clone());
    let g2 = db_sync::install_global(SyncPool::builder(url, own.clone()).build());
    let legacy = legacy.join().unwrap();
    // While the program's pool is installed, what does the shim hand out now?
    let shim_now = db_sync::global().map(|p| p.budget().capacity());
    let two = g1.is_ok() && g2.is_ok() && matches!(legacy, Ok(7));
    println!(
        "ROUND legacy={legacy:?} installed={} shim_now={shim_now:?} {}",
        g1.is_ok() && g2.is_ok(),
        if two { "TWO" } else { "one" }
    );
}

#[test]
fn the_shim_racing_the_program_s_install_never_builds_a_second_budget() {
    if std::env::var_os("ADV_SHIM_RACE_ROUND").is_some() {
        shim_race_round();
        return;
    }
    assert_never_two_budgets(
        "the_shim_racing_the_program_s_install_never_builds_a_second_budget",
        "ADV_SHIM_RACE_ROUND",
    );
}

/// Runs this binary's test `test` 150 times, each in a fresh process with `var` set so
/// that it plays one round, and asserts that enough rounds ran and none saw two budgets.
fn assert_never_two_budgets(test: &str, var: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut two = Vec::new();
    let mut rounds = 0;
    for _ in 0..150 {
        let out = std::process::Command::new(&exe)
            .args([test, "--exact", "--nocapture"])
            .env(var, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.starts_with("ROUND")) {
            rounds += 1;
            if line.ends_with("TWO") {
                two.push(line.to_owned());
            }
        }
    }
    assert!(rounds > 100, "only {rounds} rounds ran");
    assert!(
        two.is_empty(),
        "{} of {rounds} rounds had two budgets, e.g. {:?}",
        two.len(),
        two.first()
    );
}
