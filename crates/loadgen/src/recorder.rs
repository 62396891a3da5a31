//! Everything the clients saw: samples or windows, grants, unsure attempts, failures and
//! surprises, behind one mutex (never held across an `.await`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::latencies::Window;
use crate::record::{Grant, Op, Outcome, Sample, Unsure};

#[derive(Debug, Default)]
struct Records {
    samples: Vec<Sample>,
    window: Window,
    grants: Vec<Grant>,
    unsure: Vec<Unsure>,
    surprises: Vec<String>,
    failures: Vec<String>,
    error_codes: BTreeMap<(u16, String), usize>,
}

/// Everything the clients saw.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    keep_samples: bool,
    records: Mutex<Records>,
}

impl Recorder {
    pub(crate) fn new(keep_samples: bool) -> Recorder {
        Recorder {
            started: Instant::now(),
            keep_samples,
            records: Mutex::new(Records::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time base of every [`Sample`].
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Now, on the samples' time base.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn record(&self, op: Op, sent: Instant, outcome: Outcome) {
        let took = sent.elapsed();
        let mut r = self.lock();
        r.window.requests += 1;
        *r.window.outcomes.entry(outcome.clone()).or_default() += 1;
        r.window.latencies.record(took);
        if self.keep_samples {
            r.samples.push(Sample {
                start: sent.duration_since(self.started),
                took,
                op,
                outcome,
            });
        }
    }

    pub(crate) fn grant(&self, grant: Grant) {
        if self.keep_samples {
            self.lock().grants.push(grant);
        }
    }

    pub(crate) fn unsure(&self, unsure: Unsure) {
        if self.keep_samples {
            self.lock().unsure.push(unsure);
        }
    }

    /// Keeps the first 20 failed requests (5xx, broken, timed out) with what they got.
    pub(crate) fn failure(&self, what: impl FnOnce() -> String) {
        let mut r = self.lock();
        if r.failures.len() < 20 {
            let at = self.started.elapsed().as_secs_f64();
            r.failures.push(format!("at {at:.1} s: {}", what()));
        }
    }

    /// Counts one 5xx answer by status and its body's `error` code.
    pub(crate) fn error_code(&self, status: u16, code: &str) {
        let mut r = self.lock();
        *r.error_codes.entry((status, code.to_owned())).or_default() += 1;
    }

    pub(crate) fn surprise(&self, what: String) {
        let mut r = self.lock();
        if r.surprises.len() < 1000 {
            r.surprises.push(what);
        }
    }

    /// The counts since the last call (the soak's windows).
    pub fn take_window(&self) -> Window {
        std::mem::take(&mut self.lock().window)
    }

    /// Every sample so far (with `keep_samples`).
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().samples.clone()
    }

    /// Grants confirmed so far (with `keep_samples`).
    pub fn grants(&self) -> Vec<Grant> {
        self.lock().grants.clone()
    }

    /// Unsure grant attempts so far (with `keep_samples`).
    pub fn unsure_attempts(&self) -> Vec<Unsure> {
        self.lock().unsure.clone()
    }

    /// The first 20 failed requests (5xx, broken connection, timeout), described.
    pub fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// The 5xx answers so far by `(status, error code)`, HTTP and WebSocket together
    /// (a 5xx without an `{error, message}` body is a surprise instead).
    pub fn error_codes(&self) -> BTreeMap<(u16, String), usize> {
        self.lock().error_codes.clone()
    }

    /// Unexpected answers (at most 1000 kept).
    pub fn surprises(&self) -> Vec<String> {
        self.lock().surprises.clone()
    }
}
