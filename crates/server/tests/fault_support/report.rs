//! What the clients saw around one fault: the requests before, during and after it by
//! outcome, and the assertions the fault tests make on them.

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen::{Outcome, Recorder, Sample};

use super::{CONNECT_TIMEOUT, MARGIN, POOL_TIMEOUT};

/// Counts of one phase, by outcome.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests in the phase.
    pub requests: usize,
    /// By outcome label.
    pub outcomes: BTreeMap<String, usize>,
    /// The slowest request of the phase.
    pub max_latency: Duration,
}

impl Counts {
    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        *self.outcomes.entry(s.outcome.label()).or_default() += 1;
        self.max_latency = self.max_latency.max(s.took);
    }

    /// Requests that neither succeeded nor got an expected 409 (a retried grant whose
    /// first attempt committed unseen).
    pub fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(k, _)| !k.starts_with('2') && !matches!(k.as_str(), "101" | "409"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6} requests, max {:>6.0} ms: ",
            self.requests,
            self.max_latency.as_secs_f64() * 1e3
        )?;
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// What the clients saw around one fault.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The fault's name.
    pub name: &'static str,
    /// When the fault began and ended (the server back), on the samples' time base.
    pub fault: (Duration, Duration),
    /// Requests sent while the clients were still starting (not asserted on).
    pub ramp: Counts,
    /// Requests sent after the ramp and answered before the fault began.
    pub before: Counts,
    /// Requests in flight at some point of the fault.
    pub during: Counts,
    /// Requests sent after the fault ended.
    pub after: Counts,
    /// From the end of the fault to the last failed answer (zero if none came after).
    pub recovery: Duration,
    /// Failed requests, by outcome.
    pub failures: BTreeMap<String, usize>,
    /// The slowest failed request.
    pub max_failed_latency: Duration,
    /// The slowest request overall.
    pub max_latency: Duration,
    /// Requests slower than `slow` that succeeded, by route (statements that waited for
    /// a frozen server to answer).
    pub slow_successes: BTreeMap<String, usize>,
    /// The slowest failures: `(op, sent, took)`.
    pub slowest_failures: Vec<(String, Duration, Duration)>,
    /// The latest answer to a request sent during the fault.
    pub last_answer_of_fault: Duration,
    /// Failed requests of the blocking and of the async routes.
    pub failed_blocking: usize,
    /// See `failed_blocking`.
    pub failed_async: usize,
}

fn is_failure(o: &Outcome) -> bool {
    !o.is_success() && *o != Outcome::Status(409)
}

impl FaultReport {
    /// Sorts `samples` into ramp (sent before `steady`) / before / during / after the
    /// fault `[begin, end]`.
    pub fn new(
        name: &'static str,
        samples: &[Sample],
        steady: Duration,
        begin: Duration,
        end: Duration,
    ) -> Self {
        let slow = POOL_TIMEOUT + CONNECT_TIMEOUT + MARGIN;
        let mut r = FaultReport {
            slow_successes: BTreeMap::new(),
            slowest_failures: Vec::new(),
            last_answer_of_fault: Duration::ZERO,
            name,
            fault: (begin, end),
            ramp: Counts::default(),
            before: Counts::default(),
            during: Counts::default(),
            after: Counts::default(),
            recovery: Duration::ZERO,
            failures: BTreeMap::new(),
            max_failed_latency: Duration::ZERO,
            max_latency: Duration::ZERO,
            failed_blocking: 0,
            failed_async: 0,
        };
        for s in samples {
            if s.start < steady && s.end() < begin {
                r.ramp.add(s);
                continue;
            }
            if s.end() < begin {
                r.before.add(s);
            } else if s.start <= end {
                r.during.add(s);
                r.last_answer_of_fault = r.last_answer_of_fault.max(s.end());
            } else {
                r.after.add(s);
            }
            r.max_latency = r.max_latency.max(s.took);
            if s.outcome.is_success() && s.took > slow {
                *r.slow_successes.entry(format!("{:?}", s.op)).or_default() += 1;
            }
            if is_failure(&s.outcome) {
                *r.failures.entry(s.outcome.label()).or_default() += 1;
                r.max_failed_latency = r.max_failed_latency.max(s.took);
                if s.op.is_blocking() {
                    r.failed_blocking += 1;
                } else {
                    r.failed_async += 1;
                }
                r.recovery = r.recovery.max(s.end().saturating_sub(end));
                r.slowest_failures
                    .push((format!("{:?}", s.op), s.start, s.took));
            }
        }
        r.slowest_failures.sort_by_key(|f| std::cmp::Reverse(f.2));
        r.slowest_failures.truncate(5);
        r
    }

    /// Prints the figures (visible with `--no-capture`, and on failure).
    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "== {}: fault from {:.2} s to {:.2} s ({:.0} ms)",
            self.name,
            self.fault.0.as_secs_f64(),
            self.fault.1.as_secs_f64(),
            ms(self.fault.1 - self.fault.0)
        );
        eprintln!("   ramp:   {}", self.ramp);
        eprintln!("   before: {}", self.before);
        eprintln!("   during: {}", self.during);
        eprintln!("   after:  {}", self.after);
        eprintln!(
            "   failures {:?} (async routes {}, blocking routes {}); slowest failure {:.0} ms; slowest request {:.0} ms; last failure {:.0} ms after the fault ended",
            self.failures,
            self.failed_async,
            self.failed_blocking,
            ms(self.max_failed_latency),
            ms(self.max_latency),
            ms(self.recovery)
        );
        let slowest: Vec<String> = self
            .slowest_failures
            .iter()
            .map(|(op, sent, took)| {
                format!(
                    "{op} sent at {:.2} s took {:.0} ms",
                    sent.as_secs_f64(),
                    ms(*took)
                )
            })
            .collect();
        eprintln!("   slowest failures: {}", slowest.join("; "));
        if !self.slow_successes.is_empty() {
            eprintln!(
                "   succeeded after more than {:.0} ms (waiting for the server's answer): {:?}",
                ms(POOL_TIMEOUT + CONNECT_TIMEOUT + MARGIN),
                self.slow_successes
            );
        }
    }

    /// The steady state was clean: nothing failed before the fault.
    pub fn assert_clean_before(&self) {
        assert_eq!(
            self.before.failures(),
            0,
            "{}: failures before the fault: {}",
            self.name,
            self.before
        );
        assert!(
            self.before.requests > 0,
            "{}: no load before the fault",
            self.name
        );
    }

    /// Every failure was a 503 (no 500, no broken connection, no hang).
    pub fn assert_only_503(&self) {
        let others: Vec<_> = self.failures.keys().filter(|k| *k != "503").collect();
        assert!(
            others.is_empty(),
            "{}: failures other than 503: {:?}",
            self.name,
            self.failures
        );
    }

    /// Every failed request failed within `bound`.
    pub fn assert_failed_within(&self, bound: Duration) {
        assert!(
            self.max_failed_latency <= bound,
            "{}: a request took {:?} to fail (bound {bound:?})",
            self.name,
            self.max_failed_latency
        );
    }

    /// No failed answer came later than `bound` after the fault ended.
    pub fn assert_recovered_within(&self, bound: Duration) {
        assert!(
            self.recovery <= bound,
            "{}: failures until {:?} after the fault ended (bound {bound:?}); after: {}",
            self.name,
            self.recovery,
            self.after
        );
        assert!(
            self.after.requests > 0,
            "{}: no load after the fault",
            self.name
        );
    }
}

/// Asserts the load met no surprise (an answer the clients did not expect).
pub fn assert_no_surprises(recorder: &Recorder) {
    let surprises = recorder.surprises();
    assert!(
        surprises.is_empty(),
        "{} unexpected answers, e.g.:\n{}",
        surprises.len(),
        surprises
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
