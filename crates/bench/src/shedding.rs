//! Load shedding under overload, for section 7 of BENCHMARKS.md: ten times more callers
//! than the budget has connections, each statement 10 ms, with and without
//! `DB_MAX_WAITERS`.
//!
//! sync-usage: infrastructure (benchmarks db-sync itself; goes when db-sync goes, not ported module by module).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use db_async::{AsyncPool, args};
use db_budget::{Budget, DatabaseUrl, DbError};
use db_sync::SyncPool;

use crate::handover::BUDGET;

/// Callers per side: together ten times the budget.
pub const CALLERS: usize = 5 * BUDGET as usize;
/// Each statement holds its connection this long.
const STATEMENT: &str = "SELECT SLEEP(0.01)";
/// A shed caller waits this long before it asks again (what `Retry-After` asks of a
/// client, shortened to keep the load on).
const BACKOFF: Duration = Duration::from_millis(5);
/// The limit of the shedding run, per side.
pub const MAX_WAITERS: u32 = BUDGET;

/// One run: `limit` waiters per side (`None`: no limit).
pub struct ShedRun {
    pub limit: Option<u32>,
    pub secs: f64,
    pub admitted: u64,
    /// p50 / p99 of an admitted request (acquire + statement), µs.
    pub admitted_us: (u64, u64),
    pub shed: u64,
    /// p50 / p99 of the time to a shed error, µs.
    pub shed_us: (u64, u64),
    pub other_errors: u64,
}

#[derive(Default)]
struct Seen {
    admitted: Vec<u32>,
    shed: Vec<u32>,
    other_errors: u64,
}

impl Seen {
    fn record(&mut self, started: Instant, result: Result<(), DbError>) {
        let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        match result {
            Ok(()) => self.admitted.push(us),
            Err(DbError::Shed { .. }) => self.shed.push(us),
            Err(_) => self.other_errors += 1,
        }
    }

    fn merge(&mut self, other: Seen) {
        self.admitted.extend(other.admitted);
        self.shed.extend(other.shed);
        self.other_errors += other.other_errors;
    }
}

fn quantiles(mut v: Vec<u32>) -> (u64, u64) {
    v.sort_unstable();
    let pick = |q: usize| {
        v.get((v.len().max(1) - 1) * q / 100)
            .map_or(0, |x| u64::from(*x))
    };
    (pick(50), pick(99))
}

/// Runs the overload for `length` with `limit` waiters per side.
pub fn run(
    rt: &tokio::runtime::Runtime,
    url: &DatabaseUrl,
    limit: Option<u32>,
    length: Duration,
) -> ShedRun {
    let _enter = rt.enter();
    let budget = Budget::new(BUDGET, Duration::from_secs(30));
    budget.set_max_waiters(limit);
    let apool = AsyncPool::builder(url.clone(), budget.clone()).build();
    let spool = SyncPool::builder(url.clone(), budget).build();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (spool, stop) = (spool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                while !stop.load(Relaxed) {
                    let started = Instant::now();
                    let result = spool
                        .get()
                        .and_then(|mut c| c.execute(STATEMENT, ()).map(drop));
                    let shed = matches!(result, Err(DbError::Shed { .. }));
                    seen.record(started, result);
                    if shed {
                        std::thread::sleep(BACKOFF);
                    }
                }
                seen
            })
        })
        .collect();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (apool, stop) = (apool.clone(), stop.clone());
            rt.spawn(async move {
                let mut seen = Seen::default();
                while !stop.load(Relaxed) {
                    let started = Instant::now();
                    let result = match apool.acquire().await {
                        Ok(mut c) => c.execute(STATEMENT, args![]).await.map(drop),
                        Err(e) => Err(e),
                    };
                    let shed = matches!(result, Err(DbError::Shed { .. }));
                    seen.record(started, result);
                    if shed {
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
                seen
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(length);
    stop.store(true, Relaxed);
    let mut seen = Seen::default();
    for t in threads {
        seen.merge(t.join().unwrap_or_default());
    }
    rt.block_on(async {
        for t in tasks {
            seen.merge(t.await.unwrap_or_default());
        }
    });
    let secs = started.elapsed().as_secs_f64();
    rt.block_on(apool.close());
    spool.close();
    ShedRun {
        limit,
        secs,
        admitted: seen.admitted.len() as u64,
        shed: seen.shed.len() as u64,
        other_errors: seen.other_errors,
        admitted_us: quantiles(seen.admitted),
        shed_us: quantiles(seen.shed),
    }
}
