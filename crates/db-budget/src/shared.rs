//! The state one budget shares with its handles, units, tickets and recorders.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::allocation::{Shares, spawn_allocator};
use crate::bulkhead::Bulkheads;
use crate::cause::Reading;
use crate::leak::LeakTracker;
use crate::linger::Lingering;
use crate::shrink::Shrinkers;
use crate::side::Side;
use crate::slow::SlowStatements;
use crate::snapshot::{SideSnapshot, Snapshot};
use crate::stats::SideStats;
use crate::suspend::Gate;

pub(crate) struct Shared {
    pub(crate) capacity: u32,
    /// One permit per unit: the authoritative count of physical connections.
    pub(crate) semaphore: Arc<Semaphore>,
    /// One waiter per side queues on `semaphore` at a time; the rest wait here. The
    /// semaphore serves first come, first served, so a unit that one side gives up for
    /// the other must meet the other side's waiter near the head of the queue, not a
    /// hundred waiters of its own side (which would take it back and reconnect, and the
    /// two sides would trade connections on every return).
    pub(crate) turns: [Semaphore; 2],
    sides: [SideStats; 2],
    /// The units each side may keep against the other side's waiters, and the policy
    /// that sets them (`allocation/`).
    pub(crate) shares: Shares,
    /// The pools asked for idle connections when the other side waits.
    pub(crate) shrinkers: Shrinkers,
    pub(crate) leaks: LeakTracker,
    /// Slow statements by SQL text (`slow.rs`).
    pub(crate) slow: SlowStatements,
    /// `DB_SLOW_QUERY` in nanoseconds (atomic so it can be set after sharing).
    pub(crate) slow_query_nanos: AtomicU64,
    /// `DB_MAX_WAITERS` per side; `u32::MAX` is no limit.
    pub(crate) max_waiters: AtomicU32,
    /// `DB_BULKHEADS`, set once before pools take module handles (none until then).
    pub(crate) bulkheads: OnceLock<Arc<Bulkheads>>,
    /// Units taken out of the semaphore until a fleet lease covers them (`withheld.rs`).
    pub(crate) withheld: AtomicU32,
    /// Units to take out of use as they come free (`withheld.rs`); while any are owed,
    /// returned connections are closed instead of pooled.
    pub(crate) owed: AtomicU32,
    /// The capacity last asked for (`resize.rs`); `capacity` until then.
    pub(crate) target: AtomicU32,
    /// Serialises resizes (`resize.rs`); only atomics are touched under it.
    pub(crate) resizing: Mutex<()>,
    /// The gate that suspends new checkouts (`suspend.rs`).
    pub(crate) gate: Gate,
    /// The eviction generation (`evict.rs`).
    pub(crate) generation: AtomicU64,
    /// Units kept for sessions the client gave up on (`linger.rs`).
    pub(crate) lingering: Lingering,
    /// Units that lingered, since start.
    pub(crate) lingered_total: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("capacity", &self.capacity)
            .field("available", &self.semaphore.available_permits())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The state of a budget of `capacity` units, with its leak scanner started.
    pub(crate) fn new(capacity: u32, leak_threshold: Duration) -> Arc<Shared> {
        let shared = Arc::new(Shared {
            capacity,
            semaphore: Arc::new(Semaphore::new(capacity as usize)),
            turns: [Semaphore::new(1), Semaphore::new(1)],
            sides: Default::default(),
            shares: Shares::new(capacity),
            shrinkers: Shrinkers::default(),
            leaks: LeakTracker::new(leak_threshold),
            slow: SlowStatements::default(),
            // `DB_SLOW_QUERY`'s default (`VARIABLES`); `Budget::from_config` sets the
            // configured one.
            slow_query_nanos: AtomicU64::new(200_000_000),
            // `DB_MAX_WAITERS`'s default: no limit.
            max_waiters: AtomicU32::new(u32::MAX),
            bulkheads: OnceLock::new(),
            withheld: AtomicU32::new(0),
            owed: AtomicU32::new(0),
            target: AtomicU32::new(capacity),
            resizing: Mutex::new(()),
            gate: Gate::default(),
            generation: AtomicU64::new(0),
            lingering: Lingering::default(),
            lingered_total: AtomicU64::new(0),
        });
        spawn_leak_scanner(Arc::downgrade(&shared), leak_threshold);
        spawn_allocator(Arc::downgrade(&shared), capacity);
        shared
    }

    pub(crate) fn stats(&self, side: Side) -> &SideStats {
        &self.sides[side.index()]
    }

    /// Units free right now.
    pub(crate) fn available(&self) -> u32 {
        self.semaphore.available_permits() as u32
    }

    /// Pays one owed unit (`withheld.rs`): `true` if one was owed, which now counts as
    /// withheld; the caller then keeps its permit out of the semaphore.
    pub(crate) fn pay_one_owed(&self) -> bool {
        let paid = self
            .owed
            .fetch_update(SeqCst, SeqCst, |o| o.checked_sub(1))
            .is_ok();
        if paid {
            self.withheld.fetch_add(1, SeqCst);
            self.follow_usable();
        }
        paid
    }

    /// Units withheld because the capacity was set below the limit (`resize.rs`): the
    /// difference less what is still owed. 0 for a budget never resized (a fleet
    /// member's, whose owed units are its leases').
    pub(crate) fn parked(&self) -> u32 {
        let headroom = self.capacity - self.target.load(SeqCst);
        headroom.saturating_sub(self.owed.load(SeqCst))
    }

    /// Units the pools may use now: the capacity less what is withheld.
    pub(crate) fn usable(&self) -> u32 {
        self.capacity - self.withheld.load(Relaxed)
    }

    /// After every change of what is withheld: the bulkheads' shared part follows the
    /// usable units, so that their floors stay whole (`Bulkheads::follow`).
    pub(crate) fn follow_usable(&self) {
        if let Some(b) = self.bulkheads.get() {
            b.follow(|| self.usable());
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.snapshot_with(&self.read_checkouts(), true)
    }

    /// The snapshot, its holders and wait cause from `reading`; its slow statements
    /// only `with_statements`.
    pub(crate) fn snapshot_with(&self, reading: &Reading, with_statements: bool) -> Snapshot {
        let usable = self.usable();
        let mut snap = Snapshot {
            capacity: usable,
            in_use: usable.saturating_sub(self.available()),
            withheld: (self.capacity - usable).saturating_sub(self.parked()),
            lingering: self.lingering.count(),
            lingered_total: self.lingered_total.load(Relaxed),
            async_side: SideSnapshot::read(self.stats(Side::Async), self.shares.of(Side::Async)),
            bulkheads: self
                .bulkheads
                .get()
                .map(|b| b.snapshot())
                .unwrap_or_default(),
            sync_side: SideSnapshot::read(self.stats(Side::Sync), self.shares.of(Side::Sync)),
            wait_cause: None,
            holders: reading.holders(Snapshot::HOLDERS),
            slow_statements: if with_statements {
                self.slow.top()
            } else {
                Vec::new()
            },
        };
        if snap.callers_wait() {
            snap.wait_cause = Some(self.wait_cause(reading, None));
        }
        snap
    }
}

/// Starts the leak scanner thread; it ends on its own once the budget is dropped.
fn spawn_leak_scanner(shared: Weak<Shared>, threshold: Duration) {
    let tick = (threshold / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let spawned = std::thread::Builder::new()
        .name("db-budget-leaks".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let found = shared.leaks.scan();
                for side in Side::ALL {
                    shared
                        .stats(side)
                        .leaks
                        .fetch_add(found[side.index()], Relaxed);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the leak scanner; leaks will not be reported");
    }
}
