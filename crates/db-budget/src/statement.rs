//! Which checkouts are inside a statement now, and since when: what tells a holder
//! stuck in a slow statement from one that keeps an idle connection (`cause.rs`).
//!
//! Each checkout owns one [`StatementMark`], shared with its entry in the leak tracker.
//! A pool's statement helper holds an [`InStatement`] while the statement runs: setting
//! and clearing the mark is one relaxed store each, and nothing is locked.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Microseconds since this process's first reading, plus one: `0` stays free to mean
/// "none" in an atomic (a statement not running, a connect that did not fail).
pub(crate) fn ticks_now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// How long ago `ticks` (from [`ticks_now`]) was, `None` for `0`.
pub(crate) fn ago(ticks: u64, now: u64) -> Option<Duration> {
    (ticks != 0).then(|| Duration::from_micros(now.saturating_sub(ticks)))
}

/// One checkout's "in a statement since" clock: `0` while no statement runs.
///
/// A pool takes it from the checkout's ticket
/// ([`CheckoutTicket::statement_mark`](crate::CheckoutTicket::statement_mark)) and
/// calls [`StatementMark::enter`] around each statement it runs for the holder.
#[derive(Debug, Clone, Default)]
pub struct StatementMark(Arc<AtomicU64>);

impl StatementMark {
    /// Marks the checkout as inside a statement until the guard is dropped (on every
    /// path: return, `?`, panic, a future dropped mid-statement).
    pub fn enter(&self) -> InStatement {
        self.0.store(ticks_now(), Relaxed);
        InStatement(self.clone())
    }

    /// When the running statement started ([`ticks_now`]), `0` when none runs.
    pub(crate) fn started(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A statement running on a checkout; see [`StatementMark::enter`].
#[must_use = "the statement counts as finished when this guard is dropped"]
#[derive(Debug)]
pub struct InStatement(StatementMark);

impl Drop for InStatement {
    fn drop(&mut self) {
        (self.0).0.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_set_while_its_guard_lives_and_cleared_after() {
        let mark = StatementMark::default();
        assert_eq!(mark.started(), 0);
        let before = ticks_now();
        let guard = mark.enter();
        assert!(mark.started() >= before, "set to now");
        drop(guard);
        assert_eq!(mark.started(), 0);
    }

    #[test]
    fn ticks_are_never_zero_and_ago_reads_zero_as_none() {
        assert!(ticks_now() > 0, "even at the epoch");
        let now = 10_000_000;
        assert_eq!(ago(0, now), None);
        assert_eq!(ago(now - 1_500, now), Some(Duration::from_micros(1_500)));
        assert_eq!(
            ago(now + 10, now),
            Some(Duration::ZERO),
            "a later tick is now"
        );
    }
}
