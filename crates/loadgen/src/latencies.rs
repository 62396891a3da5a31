//! Latency histograms and the per-window counts of the soak.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::record::Outcome;

/// Latencies in logarithmic buckets (about 5 % wide), from 10 µs to 100 s.
#[derive(Debug, Clone)]
pub struct Latencies {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

const GROWTH: f64 = 1.05;
const FIRST_US: f64 = 10.0;
const BUCKETS: usize = 330; // 10 µs × 1.05^330 ≈ 100 s

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            buckets: vec![0; BUCKETS + 1],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Latencies {
    /// Adds one latency.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let i = if us <= FIRST_US {
            0
        } else {
            ((us / FIRST_US).ln() / GROWTH.ln()).ceil() as usize
        };
        self.buckets[i.min(BUCKETS)] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    /// Adds every latency `other` recorded (windows of several loads, summed).
    pub fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The slowest.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The upper bound of the bucket holding quantile `q` (within 5 %), capped at the
    /// maximum seen; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = Duration::from_secs_f64(FIRST_US * GROWTH.powi(i as i32) / 1e6);
                return bound.min(self.max);
            }
        }
        self.max
    }
}

/// Counts of one stretch of time (the soak's 10-second windows).
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Requests answered (or failed) in the window.
    pub requests: u64,
    /// Of those, by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Their latencies.
    pub latencies: Latencies,
}

impl Window {
    /// Adds `other`'s counts to this window's (the same stretch of time, another load).
    pub fn merge(&mut self, other: &Window) {
        self.requests += other.requests;
        for (outcome, n) in &other.outcomes {
            *self.outcomes.entry(outcome.clone()).or_default() += n;
        }
        self.latencies.merge(&other.latencies);
    }

    /// Requests that did not get a 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !o.is_success())
            .map(|(_, n)| n)
            .sum()
    }

    /// 5xx answers, transport failures and timeouts.
    pub fn server_errors(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !matches!(o, Outcome::Status(..=499)))
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Latencies, Window};
    use crate::record::Outcome;

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth_and_capped_at_the_maximum() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile(0.5), Duration::ZERO);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count(), 100);
        assert_eq!(l.max(), Duration::from_millis(100));
        let p50 = l.quantile(0.5).as_secs_f64() * 1e3;
        assert!((50.0..=50.0 * 1.05).contains(&p50), "p50 {p50} ms");
        assert_eq!(l.quantile(1.0), Duration::from_millis(100));
    }

    #[test]
    fn merged_windows_count_as_one() {
        let mut a = Window::default();
        let mut b = Window::default();
        for ms in 1..=50 {
            a.requests += 1;
            *a.outcomes.entry(Outcome::Status(200)).or_default() += 1;
            a.latencies.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            b.requests += 1;
            *b.outcomes.entry(Outcome::Status(503)).or_default() += 1;
            b.latencies.record(Duration::from_millis(ms));
        }

        a.merge(&b);

        assert_eq!(a.requests, 100);
        assert_eq!(a.outcomes[&Outcome::Status(200)], 50);
        assert_eq!(a.outcomes[&Outcome::Status(503)], 50);
        assert_eq!(a.latencies.count(), 100);
        assert_eq!(a.latencies.max(), Duration::from_millis(100));
        let p50 = a.latencies.quantile(0.5).as_secs_f64() * 1e3;
        assert!((50.0..=50.0 * 1.05).contains(&p50), "p50 {p50} ms");
        let p90 = a.latencies.quantile(0.9).as_secs_f64() * 1e3;
        assert!((90.0..=90.0 * 1.05).contains(&p90), "p90 {p90} ms");
    }

    #[test]
    fn a_window_counts_non_2xx_and_server_errors_apart() {
        let mut w = Window::default();
        for (outcome, n) in [
            (Outcome::Status(200), 5),
            (Outcome::Status(101), 1),
            (Outcome::Status(409), 2),
            (Outcome::Status(503), 3),
            (Outcome::Transport, 1),
            (Outcome::Timeout, 1),
        ] {
            w.outcomes.insert(outcome, n);
        }
        assert_eq!(w.non_2xx(), 7);
        assert_eq!(w.server_errors(), 5);
    }
}
