//! Lock-free counters behind the snapshot (one set per side).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

/// Why a physical connection was closed. Used as the `reason` label of
/// `db_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseReason {
    /// Idle longer than `DB_IDLE_TIMEOUT`.
    IdleTimeout,
    /// Older than `DB_MAX_LIFETIME`.
    MaxLifetime,
    /// Given back so that the other side could use the unit (I2).
    Yielded,
    /// Failed validation, or an I/O error showed it dead.
    Broken,
    /// Its user was cancelled or panicked mid-query: the protocol state is unknown.
    Cancelled,
    /// The pool was closed.
    PoolClosed,
    /// Its holder changed session state the pool cannot reset (`SET`, `LOCK TABLES`,
    /// `GET_LOCK`, user variables, temporary tables, raw use): the next holder must not
    /// inherit it.
    SessionState,
    /// Opened before an eviction (`Budget::evict`: a password rotation, a primary
    /// switch): closed instead of reused.
    Evicted,
}

impl CloseReason {
    /// Every reason, in a fixed order (for metrics output).
    pub const ALL: [CloseReason; 8] = [
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::Yielded,
        CloseReason::Broken,
        CloseReason::Cancelled,
        CloseReason::PoolClosed,
        CloseReason::SessionState,
        CloseReason::Evicted,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Yielded => "yielded",
            CloseReason::Broken => "broken",
            CloseReason::Cancelled => "cancelled",
            CloseReason::PoolClosed => "pool_closed",
            CloseReason::SessionState => "session_state",
            CloseReason::Evicted => "evicted",
        }
    }

    /// Whether the graceful close of a connection for this reason waits for the server
    /// to end the session before its unit is reused ([`Unit::quits`](crate::Unit::quits)):
    /// the pool's own closes (a hand-over, a lifetime, an idle timeout), which a
    /// connection pooled or returned meanwhile can see through.
    ///
    /// Not an eviction: it is an operator's action (after a failover the closed
    /// sessions are another server's), and the reaps its closes would start borrow idle
    /// connections while the eviction sweeps them, so some would escape it. Under load
    /// its reconnects can be counted beside the evicted sessions for a moment; the
    /// reserve covers that.
    ///
    /// Not a session-state close: a module that dirties its session on every request
    /// closes every connection it returns, so none would be left to look, and each unit
    /// would wait out the deadline. Such a module reconnects per request (MIGRATION.md
    /// says why not to), and its closes keep the server's lag; the reserve between the
    /// budget and `max_connections` covers them.
    pub fn awaits_server_count(self) -> bool {
        matches!(
            self,
            CloseReason::Yielded | CloseReason::MaxLifetime | CloseReason::IdleTimeout
        )
    }

    fn index(self) -> usize {
        CloseReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

/// Upper bounds (inclusive) of the acquire-latency histogram buckets, in microseconds.
/// The last bucket is `+Inf`.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// A fixed-bucket histogram of durations; recording is one relaxed add.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// How many durations were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    pub(crate) fn read(&self) -> crate::snapshot::HistogramSnapshot {
        crate::snapshot::HistogramSnapshot {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// Counters for one side. Pools update the gauges (`active`, `idle`, `waiting`);
/// the budget updates `held` and `budget_waiting` itself.
#[derive(Debug, Default)]
pub(crate) struct SideStats {
    /// Budget units this side holds (= its physical connections, open or opening).
    pub(crate) held: AtomicU32,
    /// Callers of this side blocked in the budget's queue.
    pub(crate) budget_waiting: AtomicU32,
    pub(crate) active: AtomicU32,
    pub(crate) idle: AtomicU32,
    pub(crate) waiting: AtomicU32,
    pub(crate) opened: AtomicU64,
    pub(crate) closed: [AtomicU64; CloseReason::ALL.len()],
    pub(crate) timeouts: AtomicU64,
    /// Callers refused at once because `DB_MAX_WAITERS` already waited.
    pub(crate) shed: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) acquire: Histogram,
    pub(crate) queries: Histogram,
    pub(crate) slow_queries: AtomicU64,
    /// When this side's last connect attempt failed (`statement::ticks_now`); `0` once
    /// one succeeded (`cause.rs` reads it).
    pub(crate) connect_failed_at: AtomicU64,
}

impl SideStats {
    pub(crate) fn count_closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }
}

/// Increments a gauge and decrements it again on drop, so that early returns,
/// `?`, panics and cancellation cannot leave it raised.
#[must_use = "the gauge goes back down when this guard is dropped"]
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicU32);

impl<'a> GaugeGuard<'a> {
    pub(crate) fn new(gauge: &'a AtomicU32) -> Self {
        // SeqCst: a waiter's gauge is what wakes the share controller
        // (`Shares::demand_rose`).
        gauge.fetch_add(1, SeqCst);
        GaugeGuard(gauge)
    }

    /// A guard for a gauge the caller has already raised.
    pub(crate) fn counted(gauge: &'a AtomicU32) -> Self {
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
