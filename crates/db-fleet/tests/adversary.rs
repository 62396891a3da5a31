//! An outside adversary's tests of the lease protocol: several budgets in one process
//! stand in for instances, and the server's own process list (sampled every few
//! milliseconds by a root connection, counting the app account's sessions in this
//! test's database) judges the claim that the fleet never holds more than its budget
//! outside the documented window.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use db_budget::Budget;
use db_fleet::{Fleet, FleetSettings};
use db_sync::SyncPool;
use mariadb_harness::{APP_USER, Server};
use r2d2_mysql::mysql::prelude::Queryable;
use r2d2_mysql::mysql::{Conn, Opts};
use support::{Member, eventually, fleet, member};

/// Samples the server's count of the app account's sessions in `db` every 2 ms.
struct Sampler {
    most: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(server: &Server, db: &str) -> Sampler {
        let mut conn = Conn::new(Opts::from_url(&server.root_url(db)).expect("root url"))
            .expect("root connection");
        let (most, stop) = (
            Arc::new(AtomicU32::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{APP_USER}' AND DB = '{db}'"
        );
        let thread = {
            let (most, stop) = (most.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let n: Option<u32> = conn.query_first(&sql).expect("process list");
                    most.fetch_max(n.unwrap_or(0), Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Sampler {
            most,
            stop,
            thread: Some(thread),
        }
    }

    /// The most counted since the last call.
    fn take_most(&self) -> u32 {
        self.most.swap(0, Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `callers` threads on `pool`, each holding a connection for `hold`, until `stop`.
/// With `burst`, each caller works for `burst` then rests for `burst`.
fn load(
    pool: &SyncPool,
    callers: usize,
    hold: Duration,
    burst: Option<Duration>,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<u32>> {
    (0..callers)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                let mut phase = Instant::now();
                while !stop.load(Relaxed) {
                    if let Some(b) = burst
                        && phase.elapsed() >= b
                    {
                        std::thread::sleep(b);
                        phase = Instant::now();
                    }
                    if let Ok(mut c) = pool.get() {
                        let _ = c.execute(&format!("DO SLEEP({})", hold.as_secs_f64()), ());
                        drop(c);
                        done += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                done
            })
        })
        .collect()
}

fn join_all(workers: Vec<JoinHandle<u32>>) -> u32 {
    workers.into_iter().map(|w| w.join().unwrap()).sum()
}

fn control_sessions(server: &Server, db: &str, settings: &FleetSettings) -> Vec<String> {
    // The control connections: those holding lease or want locks.
    let cols: Vec<String> = (0..settings.pool())
        .map(|k| format!("IS_USED_LOCK('{db}.lease.{k}')"))
        .chain((0..settings.instances).map(|k| format!("IS_USED_LOCK('{db}.want.{k}')")))
        .collect();
    let out = server
        .sql(&format!("SELECT {}", cols.join(", ")))
        .unwrap_or_default();
    let mut ids: Vec<String> = out
        .split_whitespace()
        .filter(|v| *v != "NULL")
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

// ---------------------------------------------------------------------------------
// F1: over-allocation
// ---------------------------------------------------------------------------------

#[test]
fn a_member_whose_fleet_is_dropped_under_load_does_not_keep_its_leased_units() {
    // Arrange: a holds the whole pool of 6 under load (fleet budget 10, 2 × floor 2).
    let (server, url, db) = fleet("adv_drop");
    let settings = FleetSettings::new(10, 2, 2, &db);
    let mut a = member(&url, &settings);
    let stop = Arc::new(AtomicBool::new(false));
    let a_load = load(&a.pool, 12, Duration::from_millis(20), None, &stop);
    assert!(eventually(Duration::from_secs(5), || a
        .fleet()
        .snapshot()
        .leased
        == 6));

    // Act: a's Fleet is dropped while its pool keeps serving (a shutdown out of order, a
    // panic unwinding a task that owned it); b then leases the freed slots.
    drop(a.fleet.take());
    let b = member(&url, &settings);
    let b_load = load(&b.pool, 12, Duration::from_millis(20), None, &stop);
    let b_leased = eventually(Duration::from_secs(5), || b.fleet().snapshot().leased >= 6);
    // Well past any window: three seconds to settle, then three sampled.
    std::thread::sleep(Duration::from_secs(3));
    let sampler = Sampler::start(server, &db);
    std::thread::sleep(Duration::from_secs(3));
    let most = sampler.take_most();
    let a_usable = a.budget.usable();
    stop.store(true, Relaxed);
    join_all(a_load);
    join_all(b_load);

    // Assert: without a lease, a is back at its floor, and the fleet within its budget.
    assert!(b_leased, "b: {:?}", b.fleet().snapshot());
    assert!(
        a_usable <= settings.floor,
        "a holds no lease yet may use {a_usable} units (floor {})",
        settings.floor
    );
    assert!(
        most <= 10,
        "the server counted {most} connections for a fleet budget of 10, 3 s after the drop"
    );
}

#[test]
fn three_members_joining_at_once_with_bursty_load_never_exceed_the_fleet_budget() {
    // Arrange: fleet budget 12, three instances with a floor of 2: a pool of 6. All
    // join at the same instant, and their callers come in bursts (give-back racing new
    // demand: a lease going idle is returned just as the next burst wants it).
    let (server, url, db) = fleet("adv_burst");
    let settings = FleetSettings::new(12, 3, 2, &db);
    let sampler = Sampler::start(server, &db);
    let members: Vec<Member> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| member(&url, &settings)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stop = Arc::new(AtomicBool::new(false));

    // Act: staggered bursts on each member for 8 s.
    let workers: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let burst = Duration::from_millis(300 + 250 * i as u64);
            load(&m.pool, 10, Duration::from_millis(5), Some(burst), &stop)
        })
        .collect();
    let mut leased_seen = [0u32; 3];
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for (seen, m) in leased_seen.iter_mut().zip(&members) {
            *seen = (*seen).max(m.fleet().snapshot().leased);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Relaxed);
    let done: u32 = workers.into_iter().map(join_all).sum();
    let most = sampler.take_most();

    // Assert
    assert!(done > 0);
    assert!(
        leased_seen.iter().any(|&l| l > 0),
        "leases moved: {leased_seen:?}"
    );
    assert!(
        most <= 12,
        "the server counted {most} connections for a fleet budget of 12"
    );
}

// ---------------------------------------------------------------------------------
// F2: a lost control connection, repeatedly
// ---------------------------------------------------------------------------------

#[test]
fn a_member_whose_control_connection_is_killed_again_and_again_leaks_no_unit_and_owes_nothing_after()
 {
    // Arrange: a and b compete for a pool of 6 (fleet budget 10, 2 × floor 2).
    let (server, url, db) = fleet("adv_rekill");
    let settings = FleetSettings::new(10, 2, 2, &db);
    let a = member(&url, &settings);
    let b = member(&url, &settings);
    let stop = Arc::new(AtomicBool::new(false));
    let a_load = load(&a.pool, 10, Duration::from_millis(20), None, &stop);
    let b_load = load(&b.pool, 4, Duration::from_millis(20), None, &stop);
    assert!(eventually(Duration::from_secs(5), || a
        .fleet()
        .snapshot()
        .leased
        >= 1));

    // Act: every 400 ms for 4 s, KILL whichever control sessions hold locks now.
    let mut kills = 0;
    for _ in 0..10 {
        for id in control_sessions(server, &db, &settings) {
            if server.sql(&format!("KILL CONNECTION {id}")).is_ok() {
                kills += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    // Then leave them be: the window must close and stay closed.
    let settled = eventually(Duration::from_secs(10), || {
        let (sa, sb) = (a.fleet().snapshot(), b.fleet().snapshot());
        sa.connected && sb.connected && sa.owed == 0 && sb.owed == 0
    });
    std::thread::sleep(Duration::from_secs(1));
    let sampler = Sampler::start(server, &db);
    std::thread::sleep(Duration::from_secs(3));
    let most = sampler.take_most();
    let under_load: Vec<(u32, u32)> = [&a, &b]
        .iter()
        .map(|m| (m.budget.usable(), m.fleet().snapshot().leased))
        .collect();
    stop.store(true, Relaxed);
    join_all(a_load);
    join_all(b_load);
    a.pool.close();
    b.pool.close();

    // Assert: back in step, nothing owed, nothing leaked, and after the load every
    // lease comes home and no unit stays in use.
    assert!(kills >= 5, "the kills took: {kills}");
    assert!(
        settled,
        "a: {:?} b: {:?}",
        a.fleet().snapshot(),
        b.fleet().snapshot()
    );
    assert!(most <= 10, "the server counted {most} for a budget of 10");
    for (usable, leased) in under_load {
        assert!(
            usable <= settings.floor - 1 + leased,
            "usable {usable} with {leased} leases"
        );
    }
    for m in [&a, &b] {
        let back = eventually(Duration::from_secs(5), || {
            m.budget.in_use() == 0 && m.fleet().snapshot().leased == 0
        });
        assert!(
            back,
            "in use {}, {:?}",
            m.budget.in_use(),
            m.fleet().snapshot()
        );
        assert_eq!(m.budget.owed(), 0);
        assert_eq!(m.budget.withheld(), settings.pool() + 1);
        assert_eq!(m.budget.withheld() + m.budget.usable(), m.budget.capacity());
    }
}

// ---------------------------------------------------------------------------------
// F3: fairness
// ---------------------------------------------------------------------------------

#[test]
fn a_member_whose_callers_wait_gets_a_part_within_about_a_second_while_another_holds_the_whole_pool()
 {
    // Arrange: a holds the whole pool of 8 under heavy load (fleet budget 12, 2 × 2).
    let (_server, url, db) = fleet("adv_fair");
    let settings = FleetSettings::new(12, 2, 2, &db);
    let a = member(&url, &settings);
    let stop = Arc::new(AtomicBool::new(false));
    let a_load = load(&a.pool, 30, Duration::from_millis(50), None, &stop);
    assert!(eventually(Duration::from_secs(5), || a
        .fleet()
        .snapshot()
        .leased
        == 8));
    let b = member(&url, &settings);

    // Act: b's callers start waiting.
    let started = Instant::now();
    let b_load = load(&b.pool, 8, Duration::from_millis(50), None, &stop);
    let got_part = eventually(Duration::from_millis(1500), || {
        b.fleet().snapshot().leased >= 2
    });
    let took = started.elapsed();
    let got_half = eventually(Duration::from_secs(3), || b.fleet().snapshot().leased >= 4);
    stop.store(true, Relaxed);
    join_all(a_load);
    join_all(b_load);

    // Assert
    assert!(
        got_part,
        "b after {took:?}: {:?}; a: {:?}",
        b.fleet().snapshot(),
        a.fleet().snapshot()
    );
    assert!(
        got_half,
        "b: {:?}; a: {:?}",
        b.fleet().snapshot(),
        a.fleet().snapshot()
    );
}

// ---------------------------------------------------------------------------------
// F4: Budget API misuse
// ---------------------------------------------------------------------------------

#[test]
fn joining_a_fleet_with_a_budget_whose_units_are_in_use_is_refused() {
    // Arrange: a budget of the right capacity with one unit in use (a pool built before
    // joining, as the docs forbid).
    let (_server, url, db) = fleet("adv_join_used");
    let settings = FleetSettings::new(10, 2, 2, &db);
    let budget = Budget::new(settings.capacity(), Duration::from_secs(30));
    let unit = budget
        .try_acquire(db_budget::Side::Sync)
        .expect("a free unit");

    // Act
    let joined = Fleet::join(&budget, &url, settings.clone());

    // Assert: the docs promise FleetError::Budget unless none is in use.
    let refused = matches!(joined, Err(db_fleet::FleetError::Budget { in_use: 1, .. }));
    drop(joined);
    drop(unit);
    assert!(refused, "join accepted a budget with a unit in use");
}

#[test]
fn granting_more_than_is_withheld_panics_and_changes_nothing() {
    // Arrange
    let b = Budget::new(4, Duration::from_secs(30));
    assert_eq!(b.withhold(2), 2);

    // Act
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.grant(3)));

    // Assert
    assert!(r.is_err());
    assert_eq!((b.withheld(), b.usable(), b.available()), (2, 2, 2));
}

#[test]
fn reclaiming_with_nothing_owed_takes_nothing_and_withholding_while_owed_keeps_the_count() {
    // Arrange: one unit in use, one owed.
    let b = Budget::new(4, Duration::from_secs(30));
    let held = b.try_acquire(db_budget::Side::Sync).expect("unit");
    assert_eq!(b.reclaim(Instant::now() + Duration::from_millis(50)), 0);

    // Act: owe one, then withhold two more by hand while it is owed.
    b.owe(1);
    let by_hand = b.withhold(2);
    // `reclaim` returns what is still owed: the one free unit paid the debt.
    let still_owed = b.reclaim(Instant::now() + Duration::from_millis(50));
    drop(held);

    // Assert: 2 by hand + 1 reclaimed, all withheld; the in-use one came free.
    assert_eq!(by_hand, 2);
    assert_eq!(still_owed, 0);
    assert_eq!(b.owed(), 0);
    assert_eq!((b.withheld(), b.usable(), b.in_use()), (3, 1, 0));
}
