//! Reconciling the server's count with the budgets: what they explain, and drift.
//!
//! The server counts the connections of this application's account; the budgets say
//! how many there may be. Two readings can disagree for a moment without anything being
//! wrong: a connection opened just after the budget was sampled, or one closed just
//! before that the server still counts for a few milliseconds (ARCHITECTURE.md,
//! "Server-side lag"). So the budget is sampled before and after the process list and
//! the larger figure is used, and an excess counts as **drift** only when every reading
//! has shown one for at least the lag.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many of the account's connections the budgets explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Explained {
    /// Without a fleet budget: this process's connections, plus every other instance
    /// at its full `MAX_CONNECTIONS` (`DB_INSTANCES − 1` of them).
    Static {
        /// The other instances' budgets together.
        others: u32,
    },
    /// With a fleet budget (`DB_FLEET_BUDGET`): the fleet's, which includes this
    /// process, whatever the split.
    Fleet {
        /// The fleet budget.
        budget: u32,
    },
}

impl Explained {
    /// The connections explained when this process has `own` open.
    pub fn count(self, own: u32) -> u32 {
        match self {
            Explained::Static { others } => own.saturating_add(others),
            Explained::Fleet { budget } => budget,
        }
    }
}

/// Tracks the excess of the server's count over what the budgets explain, reading by
/// reading, and reports it only once it has lasted [`Drift::lag`].
#[derive(Debug, Clone)]
pub struct Drift {
    lag: Duration,
    /// The readings since the excess began (empty without one), oldest first, pruned to
    /// the last one at or before the start of the lag window and those after it.
    window: VecDeque<(Instant, u32)>,
}

impl Drift {
    /// A tracker that reports an excess once it has lasted `lag`.
    pub fn new(lag: Duration) -> Drift {
        Drift {
            lag,
            window: VecDeque::new(),
        }
    }

    /// How long an excess must last before it is drift.
    pub fn lag(&self) -> Duration {
        self.lag
    }

    /// Records a reading taken `at` with `excess` connections unexplained, and returns
    /// the drift: once every reading has shown an excess for at least the lag, the
    /// smallest excess over the last lag (what has lasted that long); else 0.
    pub fn observe(&mut self, at: Instant, excess: u32) -> u32 {
        if excess == 0 {
            self.window.clear();
            return 0;
        }
        self.window.push_back((at, excess));
        let start = at.checked_sub(self.lag);
        // Keep one reading at or before the window's start: it covers the time up to
        // the next one.
        while let (Some(start), Some(&(second, _))) = (start, self.window.get(1)) {
            if second > start {
                break;
            }
            self.window.pop_front();
        }
        let lasted = match (start, self.window.front()) {
            (Some(start), Some(&(first, _))) => first <= start,
            _ => false,
        };
        if lasted {
            self.window.iter().map(|&(_, e)| e).min().unwrap_or(0)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(2);

    #[test]
    fn an_excess_is_drift_only_once_it_has_lasted_the_lag() {
        let t0 = Instant::now();
        let mut d = Drift::new(LAG);
        assert_eq!(d.observe(t0, 3), 0);
        assert_eq!(d.observe(t0 + Duration::from_secs(1), 3), 0);
        assert_eq!(d.observe(t0 + LAG, 3), 3);
    }

    #[test]
    fn one_reading_without_excess_starts_the_wait_again() {
        let t0 = Instant::now();
        let mut d = Drift::new(LAG);
        d.observe(t0, 2);
        d.observe(t0 + Duration::from_secs(1), 0);
        assert_eq!(d.observe(t0 + LAG, 2), 0);
        assert_eq!(d.observe(t0 + LAG * 2, 2), 2);
    }

    #[test]
    fn drift_is_the_smallest_excess_seen_while_it_lasted() {
        let t0 = Instant::now();
        let mut d = Drift::new(LAG);
        d.observe(t0, 5);
        d.observe(t0 + Duration::from_secs(1), 1);
        assert_eq!(d.observe(t0 + LAG, 4), 1);
    }

    #[test]
    fn an_excess_that_rises_is_drift_at_its_new_level_once_that_has_lasted() {
        let t0 = Instant::now();
        let mut d = Drift::new(LAG);
        d.observe(t0, 1);
        assert_eq!(d.observe(t0 + Duration::from_secs(1), 2), 0);
        assert_eq!(d.observe(t0 + LAG, 2), 1, "1 has lasted the lag, 2 not yet");
        assert_eq!(d.observe(t0 + Duration::from_secs(3), 2), 2);
        assert_eq!(d.observe(t0 + Duration::from_secs(4), 2), 2);
    }

    #[test]
    fn the_static_split_explains_this_process_and_every_other_instance_in_full() {
        assert_eq!(Explained::Static { others: 16 }.count(3), 19);
        assert_eq!(Explained::Fleet { budget: 30 }.count(3), 30);
    }
}
