//! Eighth adversarial round: `Unit::quits` (a unit whose connection closes gracefully
//! lingers until a reap saw the session gone or `QUIT_TEARDOWN`).
//! Attacked with load shapes `tests/late_count.rs` does not try: a budget of one, closes
//! for lifetime under saturation, a thinking caller whose
//! lifetime runs out while nobody waits, the hand-over latency with nothing to reap
//! over, and a loaded machine. The judge is the server (`Max_used_connections` beside
//! the held slots, refused logins) and the budget's own figures.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use db_async::AsyncPool;
use db_budget::{Budget, CloseReason, Side};
use db_sync::SyncPool;
use integration_tests::tight::{TightServer, assert_units_back};
use integration_tests::{budget, runtime};

/// A private server whose slots, but for `units`, are held by idle sessions, and both
/// pools on a budget of `units`.
struct Rig {
    tight: TightServer,
    rt: tokio::runtime::Runtime,
    budget: Budget,
    apool: Option<AsyncPool>,
    spool: Option<SyncPool>,
}

struct Outcome {
    max_used: u64,
    refused: u64,
    opened: u64,
    closed: Vec<(CloseReason, u64)>,
}

impl Rig {
    fn new(prefix: &str, units: u32, lifetime: Duration, idle: Duration) -> Rig {
        let mut tight = TightServer::start(prefix, units);
        let db = &tight.db;
        let rt = runtime();
        let budget = budget(units);
        let (apool, spool) = {
            let _enter = rt.enter();
            let apool = AsyncPool::builder(db.url.clone(), budget.clone())
                .pool_timeout(Duration::from_secs(10))
                .max_lifetime(lifetime)
                .idle_timeout(idle)
                .build();
            let spool = SyncPool::builder(db.url.clone(), budget.clone())
                .pool_timeout(Duration::from_secs(10))
                .max_lifetime(lifetime)
                .idle_timeout(idle)
                .build();
            (apool, spool)
        };
        tight.arm();
        Rig {
            tight,
            rt,
            budget,
            apool: Some(apool),
            spool: Some(spool),
        }
    }

    fn apool(&self) -> AsyncPool {
        self.apool.clone().unwrap()
    }

    fn spool(&self) -> SyncPool {
        self.spool.clone().unwrap()
    }

    /// Closes everything of ours, checks no unit is lost, then reads the server.
    fn finish(&mut self, prefix: &str) -> Outcome {
        let snap = self.budget.snapshot();
        let opened = snap.async_side.opened_total + snap.sync_side.opened_total;
        let mut closed: Vec<(CloseReason, u64)> = Vec::new();
        for s in [&snap.async_side, &snap.sync_side] {
            for &(r, n) in &s.closed_total {
                if n == 0 {
                    continue;
                }
                match closed.iter_mut().find(|(c, _)| *c == r) {
                    Some(e) => e.1 += n,
                    None => closed.push((r, n)),
                }
            }
        }
        drop(self.apool.take());
        drop(self.spool.take());
        assert_units_back(prefix, &self.budget);
        let out = Outcome {
            max_used: self.tight.max_used_of_ours(),
            refused: self.tight.refused(),
            opened,
            closed,
        };
        self.tight.release();
        println!(
            "{prefix}: budget {}, {} connects, closes {:?}, Max_used_connections {} of ours, \
             {} refused",
            self.budget.capacity(),
            out.opened,
            out.closed,
            out.max_used,
            out.refused
        );
        out
    }
}

/// `callers` async tasks and `callers` blocking threads, each looping checkout, a
/// `SELECT 1`, return, then `think` (zero: none), until `stop`. Returns the statements.
fn saturate(
    rig: &Rig,
    async_callers: usize,
    sync_callers: usize,
    think: Duration,
    stop: &Arc<AtomicBool>,
) -> impl FnOnce() -> u64 + use<> {
    let count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..async_callers)
        .map(|_| {
            let (apool, stop, count) = (rig.apool(), stop.clone(), count.clone());
            rig.rt.spawn(async move {
                while !stop.load(Relaxed) {
                    let mut c = apool.acquire().await.expect("async checkout");
                    c.execute("SELECT 1", db_async::args![])
                        .await
                        .expect("async select");
                    drop(c);
                    count.fetch_add(1, Relaxed);
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..sync_callers)
        .map(|_| {
            let (spool, stop, count) = (rig.spool(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let mut c = spool.get().expect("blocking checkout");
                    c.execute("SELECT 1", ()).expect("blocking select");
                    drop(c);
                    count.fetch_add(1, Relaxed);
                    if !think.is_zero() {
                        std::thread::sleep(think);
                    }
                }
            })
        })
        .collect();
    let handle = rig.rt.handle().clone();
    move || {
        for t in threads {
            t.join().expect("blocking caller");
        }
        handle.block_on(async {
            for t in tasks {
                t.await.expect("async caller");
            }
        });
        count.load(Relaxed)
    }
}

const LONG: Duration = Duration::from_secs(600);

/// The server never counted more than the budget and refused nobody. With a budget of
/// one no other connection can see a closed session go, so the 20 ms deadline decides,
/// not the server (the stated gap): on a loaded machine (another test beside it, or any other load)
/// a teardown can outlast it now and then. There the bound is at most the one closing
/// session beside the budget, and at most 2 refused logins (before `Unit::quits` always
/// lingered: 25-65 refused in the lone caller's 5 s).
fn assert_within_budget(prefix: &str, units: u32, out: &Outcome) {
    let (most, refusals) = if units == 1 {
        (2, 2)
    } else {
        (units as u64, 0)
    };
    assert!(
        out.max_used <= most && out.refused <= refusals,
        "{prefix}: the server counted {} of ours for a budget of {units} and refused {} \
         logins ({} connects, closes {:?})",
        out.max_used,
        out.refused,
        out.opened,
        out.closed
    );
}

/// Budget 1 and 2, both sides saturated (no think time), lifetime 15 ms: every few
/// requests a connection closes for its lifetime while callers of both sides wait.
/// With one unit no connection can reap: only the 20 ms deadline stands between the
/// close and the next connect.
fn short_lifetime_saturated(units: u32) {
    let prefix = format!("adv8_life_sat{units}");
    let mut rig = Rig::new(&prefix, units, Duration::from_millis(15), LONG);
    let stop = Arc::new(AtomicBool::new(false));
    let join = saturate(&rig, 4, 4, Duration::ZERO, &stop);
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Relaxed);
    let statements = join();
    let out = rig.finish(&prefix);
    println!("{prefix}: {statements} statements");
    let lifetimes: u64 = out
        .closed
        .iter()
        .filter(|(r, _)| *r == CloseReason::MaxLifetime)
        .map(|(_, n)| n)
        .sum();
    assert!(
        lifetimes >= 20 && statements > 0,
        "too few lifetime closes: {lifetimes}"
    );
    assert_within_budget(&prefix, units, &out);
}

#[test]
fn budget_one_saturated_with_a_short_lifetime_stays_within_the_budget_but_for_its_deadline() {
    short_lifetime_saturated(1);
}

#[test]
fn budget_two_saturated_with_a_short_lifetime_stays_within_the_budget() {
    short_lifetime_saturated(2);
}

/// A single blocking caller on a budget of one, lifetime 1 ms: every return closes its
/// connection for its lifetime while nobody waits (the caller itself is returning), and
/// the same caller's next checkout connects right after (think time `think`): a unit
/// that came back at once (as it did when only waiters made it linger) would connect
/// into the server's teardown of the session just closed.
fn lone_thinker(prefix: &str, side: Side, think: Duration) {
    let units = 1;
    let mut rig = Rig::new(prefix, units, Duration::from_millis(1), LONG);
    let stop = Arc::new(AtomicBool::new(false));
    let (a, s) = match side {
        Side::Async => (1, 0),
        Side::Sync => (0, 1),
    };
    let join = saturate(&rig, a, s, think, &stop);
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Relaxed);
    let statements = join();
    let out = rig.finish(prefix);
    println!("{prefix}: {statements} statements");
    assert!(out.opened >= 100, "too few reconnects: {}", out.opened);
    assert_within_budget(prefix, units, &out);
}

#[test]
fn a_lone_blocking_caller_whose_lifetime_ends_at_every_return_stays_within_budget_one() {
    lone_thinker("adv8_lone_sync", Side::Sync, Duration::ZERO);
}

/// The same lone caller on the async side. With one unit no other connection can see
/// the closed session go, so each reconnect waits out `QUIT_TEARDOWN` (20 ms), the
/// stated price of a budget of one; before `Unit::quits` a reconnect cost one connect,
/// ~1-3 ms, and the server counted the closed session beside the new one (the blocking
/// caller above: 1,500-2,100 connects in 5 s, dozens refused). Asserted: the 20 ms
/// deadline bounds the wait, not the 1 s one of a cut-off session: at most 100 ms a
/// reconnect on average, with room for a loaded machine (measured here: about 23 ms).
#[test]
fn a_lone_async_caller_on_a_budget_of_one_waits_no_longer_than_the_teardown_deadline_per_reconnect()
{
    let prefix = "adv8_lone_async";
    let units = 1;
    let mut rig = Rig::new(prefix, units, Duration::from_millis(1), LONG);
    let stop = Arc::new(AtomicBool::new(false));
    let join = saturate(&rig, 1, 0, Duration::ZERO, &stop);
    let secs = 5;
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Relaxed);
    let statements = join();
    let out = rig.finish(prefix);
    println!(
        "{prefix}: {statements} statements, {:.1} ms a reconnect",
        secs as f64 * 1000.0 / out.opened as f64
    );
    assert_within_budget(prefix, units, &out);
    assert!(
        out.opened >= secs * 1000 / 100,
        "one async caller alone on a budget of one reconnected only {} times in {secs} s \
         ({statements} statements): each reconnect waited ~{} ms, beyond the 20 ms deadline",
        out.opened,
        secs * 1000 / out.opened.max(1)
    );
}

/// Blocking side only, budget 2, 6 threads with no think time (callers always wait),
/// lifetime 10 ms: closes for lifetime while blocking callers wait, reaped over the
/// other blocking connection on its return.
#[test]
fn blocking_side_only_saturated_with_a_short_lifetime_stays_within_the_budget() {
    let prefix = "adv8_sync_life";
    let units = 2;
    let mut rig = Rig::new(prefix, units, Duration::from_millis(10), LONG);
    let stop = Arc::new(AtomicBool::new(false));
    let join = saturate(&rig, 0, 6, Duration::ZERO, &stop);
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Relaxed);
    let statements = join();
    let out = rig.finish(prefix);
    println!("{prefix}: {statements} statements");
    assert!(out.opened >= 50, "too few reconnects: {}", out.opened);
    assert_within_budget(prefix, units, &out);
}

/// The late_count load (sides take turns every 60 ms, budget 4, 8 callers a side) on
/// a loaded machine: 3 threads spin on the 2 cores the whole time, so the server's
/// threads are preempted between leaving the process list and lowering the count.
#[test]
fn hand_overs_on_a_loaded_machine_stay_within_the_budget() {
    let prefix = "adv8_loaded";
    let units = 4;
    let mut rig = Rig::new(prefix, units, LONG, LONG);
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let start = Instant::now();
    let turn = Duration::from_millis(60);
    let turn_of = move |side: Side| {
        let odd = (start.elapsed().as_millis() / turn.as_millis()) % 2 == 1;
        odd == (side == Side::Sync)
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (apool, stop) = (rig.apool(), stop.clone());
            rig.rt.spawn(async move {
                while !stop.load(Relaxed) {
                    if !turn_of(Side::Async) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    let mut c = apool.acquire().await.expect("async checkout");
                    c.execute("SELECT 1", db_async::args![])
                        .await
                        .expect("async select");
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (spool, stop) = (rig.spool(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    if !turn_of(Side::Sync) {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    let mut c = spool.get().expect("blocking checkout");
                    c.execute("SELECT 1", ()).expect("blocking select");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Relaxed);
    for t in threads.into_iter().chain(hogs) {
        t.join().unwrap();
    }
    rig.rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let out = rig.finish(prefix);
    let yielded: u64 = out
        .closed
        .iter()
        .filter(|(r, _)| *r == CloseReason::Yielded)
        .map(|(_, n)| n)
        .sum();
    // The server's count first. This load is the stated gap's own condition (a server
    // thread preempted between leaving the process list and lowering the count, after a
    // reap saw it gone; ARCHITECTURE.md, "Closed connections linger"): seen once in
    // about ten runs, one session more than the budget and one refused login. So the
    // bound here is the gap's: at most one closing session beside the budget and two
    // refused logins (without lingering: a refusal every few hand-overs).
    assert!(
        out.max_used <= units as u64 + 1 && out.refused <= 2,
        "{prefix}: the server counted {} of ours for a budget of {units} and refused {} \
         logins ({} connects, closes {:?})",
        out.max_used,
        out.refused,
        out.opened,
        out.closed
    );
    assert!(yielded >= 10, "too few hand-overs: {yielded}");
}

/// Budget 1: the blocking side opened the one connection and then went idle (well past
/// the quiet time). An async caller then needs a connection: the blocking side's idle
/// connection is closed for it (Yielded) while it waits, so its unit lingers; with one
/// unit no connection is left to reap over, so only the 20 ms deadline frees it. The
/// issue's bound for a side that starts waiting while the other is idle: its first
/// unit within 50 ms (a timing: BENCHMARKS.md section 7 measures it, with a budget of 8).
/// Five hand-overs each way; their times are printed.
#[test]
fn with_a_budget_of_one_an_idle_side_hands_its_connection_over_by_the_teardown_deadline() {
    let prefix = "adv8_idle_one";
    let mut rig = Rig::new(prefix, 1, LONG, LONG);
    let (apool, spool) = (rig.apool(), rig.spool());
    let mut to_async = Vec::new();
    let mut to_sync = Vec::new();
    for _ in 0..5 {
        // The blocking side takes the unit, uses it, and idles.
        let mut c = spool.get().expect("blocking checkout");
        c.execute("SELECT 1", ()).expect("blocking select");
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let took = rig.rt.block_on(async {
            let mut c = apool.acquire().await.expect("async checkout");
            let took = t.elapsed();
            c.execute("SELECT 1", db_async::args![])
                .await
                .expect("async select");
            took
        });
        to_async.push(took);
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let c = spool.get().expect("blocking checkout");
        to_sync.push(t.elapsed());
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("{prefix}: hand-over to async {to_async:?}, to blocking {to_sync:?}");
    drop((apool, spool));
    let out = rig.finish(prefix);
    assert_within_budget(prefix, 1, &out);
    // The 50 ms goal is a timing, measured in BENCHMARKS.md section 7; here the bound
    // the design guarantees whatever the machine's load: the deadline (20 ms) frees the
    // unit, never the pool timeout (10 s) or the cut-off deadline (1 s).
    let worst = to_async.iter().chain(&to_sync).max().unwrap();
    assert!(
        *worst < Duration::from_secs(1),
        "a side that started waiting while the other was idle waited {worst:?} for its \
         first connection (to async {to_async:?}, to blocking {to_sync:?})"
    );
}

/// Budget 4, all four connections idle on the blocking side (well past the quiet
/// time); then four async callers need one each at the same moment. Each waiter has
/// an idle blocking connection closed for it (Yielded) while it waits, so every unit
/// lingers, and the reap needs an idle connection of the budget: the blocking side's
/// are all being closed, the async side has none yet. The first connection must not wait
/// out a timeout; its times are printed.
#[test]
fn four_async_callers_get_their_first_connection_from_an_idle_blocking_side_without_waiting_out_a_timeout()
 {
    let prefix = "adv8_idle_four";
    let units = 4;
    let mut rig = Rig::new(prefix, units, LONG, LONG);
    let (apool, spool) = (rig.apool(), rig.spool());
    let mut firsts = Vec::new();
    for _ in 0..5 {
        let barrier = Arc::new(std::sync::Barrier::new(units as usize));
        let fill: Vec<_> = (0..units)
            .map(|_| {
                let (spool, barrier) = (spool.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let c = spool.get().expect("blocking checkout");
                    barrier.wait();
                    drop(c);
                })
            })
            .collect();
        for t in fill {
            t.join().unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let first = rig.rt.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = (0..units)
                .map(|_| {
                    let apool = apool.clone();
                    tokio::spawn(async move {
                        let c = apool.acquire().await.expect("async checkout");
                        let took = started.elapsed();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        drop(c);
                        took
                    })
                })
                .collect();
            let mut first = Duration::MAX;
            for t in tasks {
                first = first.min(t.await.unwrap());
            }
            first
        });
        firsts.push(first);
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("{prefix}: first async connection after {firsts:?}");
    drop((apool, spool));
    let out = rig.finish(prefix);
    assert_within_budget(prefix, units, &out);
    // As above: the bound the design guarantees, not the benchmark's 50 ms.
    let worst = firsts.iter().max().unwrap();
    assert!(
        *worst < Duration::from_secs(1),
        "the async side waited {worst:?} for its first connection from an idle blocking \
         side ({firsts:?})"
    );
}
