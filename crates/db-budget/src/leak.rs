//! Suspected leaks: checkouts held longer than `DB_LEAK_THRESHOLD`, reported with the
//! call site that took them.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::cause::LiveCheckout;
use crate::error::HumanDuration;
use crate::side::Side;
use crate::statement::StatementMark;

#[derive(Debug)]
struct Checkout {
    side: Side,
    site: &'static Location<'static>,
    since: Instant,
    warned: bool,
    /// Set while a statement runs on it (shared with its ticket).
    statement: StatementMark,
}

/// The live checkouts of one budget. A background thread scans them a few times per
/// threshold (see `Shared::new`); registering and deregistering is one short lock each.
#[derive(Debug)]
pub(crate) struct LeakTracker {
    pub(crate) threshold: Duration,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Checkout>>,
}

impl LeakTracker {
    pub(crate) fn new(threshold: Duration) -> Self {
        LeakTracker {
            threshold,
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Checkout>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts watching a checkout of `side` taken at `site`, whose statements set
    /// `statement`; returns its id.
    pub(crate) fn register(
        &self,
        side: Side,
        site: &'static Location<'static>,
        statement: StatementMark,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Relaxed);
        let checkout = Checkout {
            side,
            site,
            since: Instant::now(),
            warned: false,
            statement,
        };
        self.lock().insert(id, checkout);
        id
    }

    /// Stops watching checkout `id`; one that was reported as a possible leak is
    /// reported again as returned.
    pub(crate) fn deregister(&self, id: u64) {
        let removed = self.lock().remove(&id);
        if let Some(c) = removed.filter(|c| c.warned) {
            tracing::warn!(
                side = %c.side,
                call_site = %c.site,
                held = %HumanDuration(c.since.elapsed()),
                "database connection reported as a possible leak was returned",
            );
        }
    }

    /// A copy of every live checkout, for the holder lists and the wait cause
    /// (`cause.rs`): the lock is held for the copy and nothing else.
    pub(crate) fn live(&self) -> Vec<LiveCheckout> {
        let live = self.lock();
        live.values()
            .map(|c| LiveCheckout {
                site: c.site,
                since: c.since,
                statement_since: c.statement.started(),
            })
            .collect()
    }

    /// Warns once about each checkout older than the threshold; returns how many were
    /// new suspects per side.
    pub(crate) fn scan(&self) -> [u64; 2] {
        let mut found = [0; 2];
        let now = Instant::now();
        let mut live = self.lock();
        for c in live.values_mut() {
            let held = now - c.since;
            if !c.warned && held >= self.threshold {
                c.warned = true;
                found[c.side.index()] += 1;
                tracing::warn!(
                    side = %c.side,
                    call_site = %c.site,
                    held = %HumanDuration(held),
                    "database connection held longer than DB_LEAK_THRESHOLD ({}); possible leak",
                    HumanDuration(self.threshold),
                );
            }
        }
        found
    }
}
