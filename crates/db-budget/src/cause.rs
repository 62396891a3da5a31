//! Why callers wait: one of four causes (sqlx #2276 lists the same four), decided from
//! what the budget knows at that moment, for the pool-timeout error and the live page.
//!
//! # The rule
//!
//! From one copy of the live checkouts (`leak.rs`, taken under its short lock) and the
//! side's last connect attempt:
//!
//! - *leaked*: checkouts held longer than `DB_LEAK_THRESHOLD` and not inside a
//!   statement now (a guard kept while nothing runs on it);
//! - *slow*: checkouts inside a statement that has run longer than `DB_SLOW_QUERY`
//!   (`statement.rs` marks them);
//!
//! the cause is, in this order of precedence:
//!
//! 1. [`WaitCause::FailingConnects`] when the side's last connect attempt failed, less
//!    than [`RECENT_CONNECT_FAILURE`] ago (a success clears it). First, because a
//!    connect is only attempted on a free unit: the budget had room the caller could
//!    not use, and no holder giving anything back would help.
//! 2. [`WaitCause::LeakedHolders`] when leaked and slow checkouts together hold most
//!    units of the budget (more than half of what the pools may use) and the leaked
//!    ones are at least as many. Leaks win a tie: nothing bounds a leaked hold, while
//!    every statement ends within `DB_STATEMENT_TIMEOUT`.
//! 3. [`WaitCause::SlowStatements`] when they hold most units and the slow ones are
//!    more.
//! 4. [`WaitCause::Backlog`] otherwise: the holders are busy as usual and more callers
//!    want connections than the budget has.

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::holders::{Holder, longest};
use crate::shared::Shared;
use crate::side::Side;
use crate::statement::{ago, ticks_now};

/// How recent a side's failed connect must be to count as the cause (see the module
/// docs): several connect timeouts' worth, so that a server that refuses or hangs is
/// seen between two attempts.
pub const RECENT_CONNECT_FAILURE: Duration = Duration::from_secs(10);

/// Why callers wait for a connection; see the module docs of `cause.rs` for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitCause {
    /// More callers than units; the holders are not stuck. Fix: fewer or shorter
    /// checkouts, a larger budget (within the server's limit), or shed load.
    Backlog,
    /// Most units are held by checkouts older than `DB_LEAK_THRESHOLD` on which no
    /// statement runs. Fix: the code at the holders' call sites keeps its guard.
    LeakedHolders,
    /// The side's connects fail (refused, "too many connections", handshake timeouts).
    /// Fix: the database server (its log, `max_connections`, the network).
    FailingConnects,
    /// Most units are held by checkouts inside statements slower than `DB_SLOW_QUERY`.
    /// Fix: those statements (the slow-statement list, the log).
    SlowStatements,
}

impl WaitCause {
    /// The JSON and label form: `backlog`, `leaked_holders`, `failing_connects`,
    /// `slow_statements`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitCause::Backlog => "backlog",
            WaitCause::LeakedHolders => "leaked_holders",
            WaitCause::FailingConnects => "failing_connects",
            WaitCause::SlowStatements => "slow_statements",
        }
    }
}

impl fmt::Display for WaitCause {
    /// `backlog`, `leaked holders`, `failing connects`, `slow statements`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitCause::Backlog => "backlog",
            WaitCause::LeakedHolders => "leaked holders",
            WaitCause::FailingConnects => "failing connects",
            WaitCause::SlowStatements => "slow statements",
        })
    }
}

/// What the rule reads, counted from one copy of the live checkouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Evidence {
    /// Units the pools may use now (the snapshot's `capacity`).
    pub(crate) capacity: u32,
    /// Checkouts held longer than the leak threshold, no statement running on them.
    pub(crate) leaked: u32,
    /// Checkouts inside a statement that has run longer than the slow threshold.
    pub(crate) slow: u32,
    /// How long ago the side's last connect attempt failed; `None` when it succeeded.
    pub(crate) connect_failed: Option<Duration>,
}

/// The rule of the module docs.
pub(crate) fn classify(e: &Evidence) -> WaitCause {
    if e.connect_failed
        .is_some_and(|ago| ago < RECENT_CONNECT_FAILURE)
    {
        return WaitCause::FailingConnects;
    }
    let stuck = u64::from(e.leaked) + u64::from(e.slow);
    if stuck > 0 && 2 * stuck > u64::from(e.capacity) {
        return if e.leaked >= e.slow {
            WaitCause::LeakedHolders
        } else {
            WaitCause::SlowStatements
        };
    }
    WaitCause::Backlog
}

/// One live checkout as copied out of the leak tracker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveCheckout {
    pub(crate) site: &'static Location<'static>,
    /// When it was checked out.
    pub(crate) since: Instant,
    /// When its running statement started (`statement::ticks_now`), `0` for none.
    pub(crate) statement_since: u64,
}

/// The live checkouts at one moment: what the cause and the holder lists are made of.
#[derive(Debug)]
pub(crate) struct Reading {
    live: Vec<LiveCheckout>,
    now: Instant,
    ticks: u64,
}

impl Reading {
    /// The `n` longest holders, grouped by call site.
    pub(crate) fn holders(&self, n: usize) -> Vec<Holder> {
        longest(&self.live, self.now, n)
    }

    /// Counts the leaked and the slow checkouts.
    fn count(&self, leak_threshold: Duration, slow_threshold: Duration) -> (u32, u32) {
        let (mut leaked, mut slow) = (0, 0);
        for c in &self.live {
            match ago(c.statement_since, self.ticks) {
                Some(running) if running >= slow_threshold => slow += 1,
                Some(_) => {}
                None if self.now.saturating_duration_since(c.since) >= leak_threshold => {
                    leaked += 1;
                }
                None => {}
            }
        }
        (leaked, slow)
    }
}

impl Shared {
    /// Copies the live checkouts (the leak tracker's lock is held only for the copy).
    pub(crate) fn read_checkouts(&self) -> Reading {
        let now = Instant::now();
        let ticks = ticks_now();
        Reading {
            live: self.leaks.live(),
            now,
            ticks,
        }
    }

    /// Why callers of `side` wait (`None`: of either side, the failed connect of either
    /// counting), by the rule of the module docs.
    pub(crate) fn wait_cause(&self, reading: &Reading, side: Option<Side>) -> WaitCause {
        use std::sync::atomic::Ordering::Relaxed;
        let slow_threshold = Duration::from_nanos(self.slow_query_nanos.load(Relaxed));
        let (leaked, slow) = reading.count(self.leaks.threshold, slow_threshold);
        let sides: &[Side] = match &side {
            Some(side) => std::slice::from_ref(side),
            None => &Side::ALL,
        };
        let connect_failed = sides
            .iter()
            .filter_map(|s| {
                ago(
                    self.stats(*s).connect_failed_at.load(Relaxed),
                    reading.ticks,
                )
            })
            .min();
        classify(&Evidence {
            capacity: self.usable(),
            leaked,
            slow,
            connect_failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(capacity: u32, leaked: u32, slow: u32) -> Evidence {
        Evidence {
            capacity,
            leaked,
            slow,
            connect_failed: None,
        }
    }

    #[test]
    fn a_recent_failed_connect_comes_first_even_with_every_unit_stuck() {
        let e = Evidence {
            connect_failed: Some(Duration::from_secs(9)),
            ..evidence(4, 4, 0)
        };
        assert_eq!(classify(&e), WaitCause::FailingConnects);
        let old = Evidence {
            connect_failed: Some(RECENT_CONNECT_FAILURE),
            ..e
        };
        assert_eq!(classify(&old), WaitCause::LeakedHolders, "too old to count");
    }

    #[test]
    fn stuck_holders_count_only_when_they_hold_most_of_the_budget() {
        assert_eq!(
            classify(&evidence(4, 2, 0)),
            WaitCause::Backlog,
            "half is not most"
        );
        assert_eq!(classify(&evidence(4, 3, 0)), WaitCause::LeakedHolders);
        assert_eq!(classify(&evidence(4, 0, 3)), WaitCause::SlowStatements);
        assert_eq!(classify(&evidence(1, 0, 1)), WaitCause::SlowStatements);
        assert_eq!(classify(&evidence(4, 0, 0)), WaitCause::Backlog);
    }

    #[test]
    fn leaked_and_slow_holders_add_up_and_the_larger_names_the_cause_leaks_winning_a_tie() {
        assert_eq!(classify(&evidence(5, 1, 2)), WaitCause::SlowStatements);
        assert_eq!(classify(&evidence(5, 2, 1)), WaitCause::LeakedHolders);
        assert_eq!(classify(&evidence(3, 1, 1)), WaitCause::LeakedHolders);
    }

    #[test]
    fn a_reading_counts_idle_old_holders_as_leaked_and_long_statements_as_slow() {
        let now = Instant::now();
        let ticks = ticks_now() + 10_000_000;
        let site = Location::caller();
        let at = |held_s: u64, stmt_ms: Option<u64>| LiveCheckout {
            site,
            since: now - Duration::from_secs(held_s),
            statement_since: stmt_ms.map_or(0, |ms| ticks - ms * 1000),
        };
        let reading = Reading {
            live: vec![
                at(40, None),      // leaked
                at(40, Some(5)),   // old, but a short statement runs: neither
                at(1, Some(300)),  // slow
                at(40, Some(300)), // slow, not leaked: the statement holds it
                at(1, None),       // young and idle: neither
            ],
            now,
            ticks,
        };
        let counted = reading.count(Duration::from_secs(30), Duration::from_millis(200));
        assert_eq!(counted, (1, 2));
    }

    #[test]
    fn causes_read_as_words_and_serialise_as_snake_case() {
        assert_eq!(WaitCause::LeakedHolders.to_string(), "leaked holders");
        assert_eq!(
            serde_json::to_value(WaitCause::FailingConnects).unwrap(),
            "failing_connects"
        );
        for c in [
            WaitCause::Backlog,
            WaitCause::LeakedHolders,
            WaitCause::FailingConnects,
            WaitCause::SlowStatements,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
