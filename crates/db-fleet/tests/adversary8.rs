//! An outside adversary's tests of the fleet's lease policy against a real, private
//! MariaDB: several budgets in one process stand in for instances, as in `leases.rs`
//! and `adversary.rs`. Tests that fail on purpose say which claim they break.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use db_fleet::FleetSettings;
use db_sync::SyncPool;
use support::{Member, eventually, fleet, member};

/// `callers` threads on `pool`, each holding a connection for `hold`, until `stop`.
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

fn leased(m: &Member) -> u32 {
    m.fleet().snapshot().leased
}

// ---------------------------------------------------------------------------------
// Claim 4: no starvation
// ---------------------------------------------------------------------------------

#[test]
fn a_third_instance_whose_callers_wait_gets_a_lease_while_two_others_split_the_pool() {
    // Arrange: fleet budget 10, 3 instances with a floor of 2: a pool of 4. a and b are
    // hot and end up with 2 leases each (their part of 4 over two).
    let (_server, url, db) = fleet("adv8_starve");
    let settings = FleetSettings::new(10, 3, 2, &db);
    let stop = Arc::new(AtomicBool::new(false));
    let hold = Duration::from_millis(30);
    let a = member(&url, &settings);
    let mut workers = load(&a.pool, 12, hold, &stop);
    assert!(eventually(Duration::from_secs(5), || leased(&a) == 4));
    let b = member(&url, &settings);
    workers.extend(load(&b.pool, 12, hold, &stop));
    let split = eventually(Duration::from_secs(5), || {
        leased(&a) == 2 && leased(&b) == 2
    });

    // Act: c's callers wait as much as theirs, for 6 s.
    let c = member(&url, &settings);
    workers.extend(load(&c.pool, 12, hold, &stop));
    let c_got_one = eventually(Duration::from_secs(6), || leased(&c) >= 1);
    let seen = [&a, &b, &c].map(|m| m.fleet().snapshot());
    let c_usable = c.budget.usable();
    stop.store(true, Relaxed);
    for w in workers {
        let _ = w.join();
    }

    // Assert: claim 4 — an instance whose callers wait gets its part within a bounded
    // time while the others keep wanting. The part rounded up (⌈4/3⌉ = 2) is what a and
    // b hold already, so neither ever gives c one.
    assert!(split, "a and b did not split the pool first");
    assert!(
        c_got_one,
        "c's callers waited 6 s and it got no lease (it serves on {c_usable} unit): a {:?}, b {:?}, c {:?}",
        seen[0], seen[1], seen[2]
    );
}
