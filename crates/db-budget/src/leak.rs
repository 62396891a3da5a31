//! Suspected leaks: checkouts held longer than `DB_LEAK_THRESHOLD`, reported with the
//! call site that took them.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::budget::Inner;
use crate::error::HumanDuration;
use crate::side::Side;

#[derive(Debug)]
struct Checkout {
    side: Side,
    site: &'static Location<'static>,
    since: Instant,
    warned: bool,
}

/// The live checkouts of one budget. A background thread scans them a few times per
/// threshold; registering and deregistering is one short lock each.
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

    /// Warns once about each checkout older than the threshold; returns how many were
    /// new suspects per side.
    fn scan(&self) -> [u64; 2] {
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

/// Starts the scanner thread; it ends on its own once the budget is dropped.
pub(crate) fn spawn_scanner(inner: Weak<Inner>, threshold: Duration) {
    let tick = (threshold / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let spawned = std::thread::Builder::new()
        .name("db-budget-leaks".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                let Some(inner) = inner.upgrade() else { return };
                let found = inner.leaks.scan();
                for side in Side::ALL {
                    inner
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

/// One checked-out connection as the budget sees it: counts the side's `active` gauge
/// and takes part in leak detection. Dropping it ends the checkout.
#[must_use = "the checkout ends when this ticket is dropped"]
#[derive(Debug)]
pub struct CheckoutTicket {
    inner: Arc<Inner>,
    id: u64,
    side: Side,
}

impl CheckoutTicket {
    pub(crate) fn new(inner: Arc<Inner>, side: Side, site: &'static Location<'static>) -> Self {
        let id = inner.leaks.next_id.fetch_add(1, Relaxed);
        inner.stats(side).active.fetch_add(1, Relaxed);
        inner.leaks.lock().insert(
            id,
            Checkout {
                side,
                site,
                since: Instant::now(),
                warned: false,
            },
        );
        CheckoutTicket { inner, id, side }
    }
}

impl Drop for CheckoutTicket {
    fn drop(&mut self) {
        let removed = self.inner.leaks.lock().remove(&self.id);
        self.inner.stats(self.side).active.fetch_sub(1, Relaxed);
        if let Some(c) = removed.filter(|c| c.warned) {
            tracing::warn!(
                side = %c.side,
                call_site = %c.site,
                held = %HumanDuration(c.since.elapsed()),
                "database connection reported as a possible leak was returned",
            );
        }
    }
}
