//! The lease protocol against a real, private MariaDB: several budgets in one process
//! stand in for the instances of a fleet, each with a blocking pool and its control
//! connection. The server's own count of the app account's connections is the judge.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use db_fleet::FleetSettings;
use db_sync::SyncPool;
use mariadb_harness::{APP_USER, Server};
use support::{Member, eventually, fleet, member};

/// The server's count of the app account's connections.
fn app_connections(server: &Server) -> u32 {
    server
        .sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{APP_USER}'"
        ))
        .expect("process list")
        .trim()
        .parse()
        .expect("a count")
}

/// `callers` threads on `pool`, each holding a connection for `hold` (a statement
/// that waits without CPU), then pausing 1 ms, until `stop`.
fn load(
    pool: &SyncPool,
    callers: usize,
    hold: Duration,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<u32>> {
    (0..callers)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while !stop.load(Relaxed) {
                    let mut c = pool.get().expect("checkout");
                    c.execute(&format!("DO SLEEP({})", hold.as_secs_f64()), ())
                        .expect("statement");
                    drop(c);
                    done += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                done
            })
        })
        .collect()
}

#[test]
fn a_busy_member_leases_the_whole_pool_and_gives_it_back_once_idle() {
    // Arrange: fleet budget 10, up to 2 instances with a floor of 2 each: a pool of 6.
    let (_server, url, name) = fleet("fleet_alone");
    let settings = FleetSettings::new(10, 2, 2, &name);
    let m = member(&url, &settings);
    assert_eq!(
        m.budget.usable(),
        1,
        "the floor, less the control connection"
    );

    // Act: 12 callers keep the pool busy.
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&m.pool, 12, Duration::from_millis(20), &stop);
    let leased_all = eventually(Duration::from_secs(5), || m.fleet().snapshot().leased == 6);
    let usable_busy = m.budget.usable();
    stop.store(true, Relaxed);
    let done: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();

    // Assert: the whole pool while busy; all of it back once idle for a second.
    assert!(leased_all, "{:?}", m.fleet().snapshot());
    assert_eq!(usable_busy, 7);
    assert!(done > 0);
    assert!(
        eventually(Duration::from_secs(5), || m.fleet().snapshot().leased == 0),
        "{:?}",
        m.fleet().snapshot()
    );
    assert_eq!(m.budget.usable(), 1);
}

#[test]
fn members_competing_for_the_pool_never_hold_more_than_the_fleet_budget_and_each_gets_a_part() {
    // Arrange: fleet budget 12, three instances with a floor of 2: a pool of 6.
    let (server, url, name) = fleet("fleet_compete");
    let settings = FleetSettings::new(12, 3, 2, &name);
    let members: Vec<Member> = (0..3).map(|_| member(&url, &settings)).collect();
    let stop = Arc::new(AtomicBool::new(false));

    // Act: each member's callers want more than the whole pool; the server's count of
    // the account's connections is sampled throughout.
    let workers: Vec<_> = members
        .iter()
        .map(|m| load(&m.pool, 8, Duration::from_millis(10), &stop))
        .collect();
    let mut most = 0;
    let mut leased_seen = [0u32; 3];
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        most = most.max(app_connections(server));
        for (seen, m) in leased_seen.iter_mut().zip(&members) {
            *seen = (*seen).max(m.fleet().snapshot().leased);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let parts: Vec<u32> = members
        .iter()
        .map(|m| m.fleet().snapshot().leased)
        .collect();
    stop.store(true, Relaxed);
    for w in workers {
        for t in w {
            t.join().unwrap();
        }
    }

    // Assert: never above the fleet budget; at the end the pool is shared out.
    assert!(
        most <= 12,
        "the server counted {most} connections for a fleet budget of 12"
    );
    assert!(
        leased_seen.iter().all(|&l| l >= 1),
        "every member leased: {leased_seen:?}"
    );
    assert!(
        parts.iter().all(|&p| p <= 3),
        "no member holds more than its part (2 of 6, rounded up, plus the one in flight): {parts:?}"
    );
}

#[test]
fn a_member_whose_control_connection_is_killed_frees_its_leases_at_once_and_drops_to_its_floor() {
    // Arrange: member a holds the whole pool under load; member b waits to start.
    let (server, url, name) = fleet("fleet_killed");
    let settings = FleetSettings::new(10, 2, 2, &name);
    let a = member(&url, &settings);
    let stop = Arc::new(AtomicBool::new(false));
    let a_load = load(&a.pool, 10, Duration::from_millis(20), &stop);
    assert!(eventually(Duration::from_secs(5), || a
        .fleet()
        .snapshot()
        .leased
        == 6));
    let b = member(&url, &settings);

    // Act: the server ends a's control session (as when the link to the database is
    // cut); then b's callers want more than its floor.
    let holder = server
        .sql(&format!("SELECT IS_USED_LOCK('{name}.lease.0')"))
        .expect("holder");
    server
        .sql(&format!("KILL CONNECTION {}", holder.trim()))
        .expect("kill the control connection");
    let b_load = load(&b.pool, 10, Duration::from_millis(20), &stop);
    let b_leased = eventually(Duration::from_secs(5), || b.fleet().snapshot().leased >= 3);
    // The window (the crate docs): until a has taken back what it leased, the fleet may
    // hold more than its budget. It must close, and stay closed.
    let a_at_floor = eventually(Duration::from_secs(10), || {
        let s = a.fleet().snapshot();
        s.lost_total == 1 && s.owed == 0
    });
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        most = most.max(app_connections(server));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Relaxed);
    for t in a_load.into_iter().chain(b_load) {
        t.join().unwrap();
    }

    // Assert: the server freed a's leases at once and b leased them; a dropped to its
    // floor (it owes nothing), then the fleet stayed within its budget.
    assert!(b_leased, "b: {:?}", b.fleet().snapshot());
    assert!(a_at_floor, "a: {:?}", a.fleet().snapshot());
    assert!(
        most <= 10,
        "the server counted {most} for a fleet budget of 10 after the window"
    );
    let a_now = a.fleet().snapshot();
    assert!(
        a.budget.usable() <= 1 + a_now.leased,
        "a uses no unit it has no lease for: usable {}, {a_now:?}",
        a.budget.usable()
    );
}
