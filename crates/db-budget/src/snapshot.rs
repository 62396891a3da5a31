//! A point-in-time view of the budget, for errors, metrics and the live page.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::side::Side;
use crate::stats::{CloseReason, LATENCY_BUCKETS_US, SideStats};

/// The budget's state as read at one moment.
///
/// # Consistency
///
/// Every figure is an atomic read and was exact when it was read, but the figures are
/// read one after another without a lock (so that reading never slows the pools). Under
/// load they need not add up: a connection on its way back to the pool may be counted
/// in neither `active` nor `idle` for a few microseconds. `in_use` is read from the
/// budget's own semaphore and is the authoritative count of physical connections
/// (open or being opened).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Physical connections allowed now, both sides together: `MAX_CONNECTIONS` (or the
    /// capacity set at run time, once the units owed are back), or in a fleet the floor
    /// plus the units leased.
    pub capacity: u32,
    /// Units taken, i.e. physical connections open or being opened.
    pub in_use: u32,
    /// Units of the budget withheld from the pools: not leased to this process by its
    /// fleet, or the server view's connection; 0 otherwise. The units between a capacity
    /// set at run time (`Budget::set_capacity`) and the limit are not counted here.
    pub withheld: u32,
    /// Units in use for sessions the client gave up on (a statement cancelled or cut
    /// off), kept until the server has ended them (`linger.rs`), counted in `in_use`
    /// and by their side; and, for a few milliseconds each, units of connections the
    /// pools closed themselves, until the server has ended the session
    /// ([`Unit::quits`](crate::Unit::quits)), counted in `in_use` only.
    pub lingering: u32,
    /// Units that lingered for a cut-off session, since start.
    pub lingered_total: u64,
    /// The async side (`db-async`).
    #[serde(rename = "async")]
    pub async_side: SideSnapshot,
    /// The blocking side (`db-sync`).
    #[serde(rename = "sync")]
    pub sync_side: SideSnapshot,
    /// Each module's bulkhead (`DB_BULKHEADS`), in configuration order.
    pub bulkheads: Vec<crate::bulkhead::BulkheadSnapshot>,
    /// Why callers wait, while any caller waits (at a side or a bulkhead), else `None`
    /// (`cause.rs` has the rule).
    pub wait_cause: Option<crate::cause::WaitCause>,
    /// The longest current holders by call site, longest first (at most
    /// [`Snapshot::HOLDERS`]).
    pub holders: Vec<crate::holders::Holder>,
    /// Statements slower than `DB_SLOW_QUERY` by SQL text, most frequent first (at
    /// most `slow::LISTED`, 20); empty in a [`DbError`](crate::DbError)'s snapshot.
    pub slow_statements: Vec<crate::slow::SlowStatement>,
}

impl Snapshot {
    /// How many holders a snapshot lists.
    pub const HOLDERS: usize = 5;

    /// `true` while a caller waits for a connection, at a side or at a bulkhead.
    pub fn callers_wait(&self) -> bool {
        self.async_side.waiting + self.sync_side.waiting > 0
            || self.bulkheads.iter().any(|b| b.waiting > 0)
    }

    /// The figures of one side.
    pub fn side(&self, side: Side) -> &SideSnapshot {
        match side {
            Side::Async => &self.async_side,
            Side::Sync => &self.sync_side,
        }
    }
}

/// One side's figures. Gauges are current values; `_total` fields count since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideSnapshot {
    /// Budget units this side holds: its physical connections, open or being opened (not
    /// one the pool is closing to quit, nor its lingering unit: the side gave it up).
    pub held: u32,
    /// The units this side may keep against the other side's waiters (`HandOver`).
    /// The two shares add up to the capacity, except while both sides are quiet: then
    /// both are 0 (whichever wakes first may take everything).
    pub share: u32,
    /// Connections checked out by callers.
    pub active: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub waiting: u32,
    /// Connections opened since start.
    pub opened_total: u64,
    /// Connections closed since start, by reason.
    pub closed_total: Vec<(CloseReason, u64)>,
    /// Callers that gave up after the pool timeout.
    pub acquire_timeouts_total: u64,
    /// Callers refused at once because `DB_MAX_WAITERS` callers already waited.
    pub acquire_shed_total: u64,
    /// Checkouts held longer than the leak threshold.
    pub leaks_suspected_total: u64,
    /// How long callers waited for a connection.
    pub acquire_latency: HistogramSnapshot,
    /// How long statements took (through the crates' helpers).
    pub query_latency: HistogramSnapshot,
    /// Statements slower than `DB_SLOW_QUERY`.
    pub slow_queries_total: u64,
}

impl SideSnapshot {
    pub(crate) fn read(s: &SideStats, share: u32) -> SideSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        SideSnapshot {
            held: s.held.load(Relaxed),
            share,
            active: s.active.load(Relaxed),
            idle: s.idle.load(Relaxed),
            waiting: s.waiting.load(Relaxed),
            opened_total: s.opened.load(Relaxed),
            closed_total: CloseReason::ALL
                .iter()
                .zip(&s.closed)
                .map(|(r, c)| (*r, c.load(Relaxed)))
                .collect(),
            acquire_timeouts_total: s.timeouts.load(Relaxed),
            acquire_shed_total: s.shed.load(Relaxed),
            leaks_suspected_total: s.leaks.load(Relaxed),
            acquire_latency: s.acquire.read(),
            query_latency: s.queries.read(),
            slow_queries_total: s.slow_queries.load(Relaxed),
        }
    }

    /// Connections closed since start, all reasons together.
    pub fn closed_sum(&self) -> u64 {
        self.closed_total.iter().map(|(_, n)| n).sum()
    }
}

/// Bucket counts of a latency histogram; bucket `i` counts samples at most
/// [`LATENCY_BUCKETS_US`]`[i]` microseconds (and above the previous bound), the last
/// bucket everything slower.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// Per-bucket counts (not cumulative), `LATENCY_BUCKETS_US.len() + 1` of them.
    pub counts: Vec<u64>,
    /// Sum of all samples, in microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0.0..=1.0), or `None` when
    /// there are no samples. A sample in the last (unbounded) bucket reports the last
    /// finite bound.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = LATENCY_BUCKETS_US
                    .get(i)
                    .or(LATENCY_BUCKETS_US.last())
                    .copied()
                    .unwrap_or(0);
                return Some(Duration::from_micros(bound));
            }
        }
        None
    }
}

impl fmt::Display for Snapshot {
    /// `budget 20/20 in use (async: 14 active, 2 idle, 37 waiting; sync: 4 active, 0 idle, 3 waiting)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "budget {}/{} in use (", self.in_use, self.capacity)?;
        for (i, side) in Side::ALL.into_iter().enumerate() {
            let s = self.side(side);
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{side}: {} active, {} idle, {} waiting",
                s.active, s.idle, s.waiting
            )?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(active: u32, idle: u32, waiting: u32) -> SideSnapshot {
        SideSnapshot {
            held: active + idle,
            share: 1,
            active,
            idle,
            waiting,
            opened_total: 0,
            closed_total: vec![],
            acquire_timeouts_total: 0,
            acquire_shed_total: 0,
            leaks_suspected_total: 0,
            acquire_latency: empty(),
            query_latency: empty(),
            slow_queries_total: 0,
        }
    }

    fn empty() -> HistogramSnapshot {
        HistogramSnapshot {
            counts: vec![0; LATENCY_BUCKETS_US.len() + 1],
            sum_us: 0,
        }
    }

    #[test]
    fn display_reads_like_the_hikari_style_message() {
        let s = Snapshot {
            capacity: 20,
            in_use: 20,
            withheld: 0,
            lingering: 0,
            lingered_total: 0,
            async_side: side(14, 2, 37),
            sync_side: side(4, 0, 3),
            bulkheads: vec![],
            wait_cause: Some(crate::WaitCause::Backlog),
            holders: vec![],
            slow_statements: vec![],
        };
        assert_eq!(
            s.to_string(),
            "budget 20/20 in use (async: 14 active, 2 idle, 37 waiting; sync: 4 active, 0 idle, 3 waiting)"
        );
    }

    #[test]
    fn quantile_reports_the_bucket_upper_bound() {
        let h = crate::stats::Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(40));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let snap = h.read();
        assert_eq!(snap.count(), 100);
        assert_eq!(
            snap.quantile_upper_bound(0.5),
            Some(Duration::from_micros(50))
        );
        assert_eq!(
            snap.quantile_upper_bound(0.99),
            Some(Duration::from_millis(5))
        );
        assert_eq!(snap.quantile_upper_bound(1.0), Some(Duration::from_secs(5)));
        assert_eq!(
            crate::stats::Histogram::default()
                .read()
                .quantile_upper_bound(0.99),
            None
        );
    }
}
