//! What a pool tells the budget about its side: connections opened and closed, waits,
//! statements (slow ones logged), the idle gauge, checkouts and timeouts.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::checkout::CheckoutTicket;
use crate::error::{DbError, HumanDuration, TimeoutPhase};
use crate::shared::Shared;
use crate::side::Side;
use crate::stats::{CloseReason, GaugeGuard};

/// How many holders a [`DbError::PoolTimeout`] names.
pub(crate) const TIMEOUT_HOLDERS: usize = 3;

/// One side's recording handle on a budget, held by that side's pool
/// ([`Budget::recorder`](crate::Budget::recorder)). Every figure it records appears in
/// the budget's [`Snapshot`](crate::Snapshot).
///
/// Recording is a few relaxed atomic adds; only a slow statement takes longer (it is
/// logged). `Recorder` is a cheap handle (`Arc`).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use db_budget::{Budget, CloseReason, Side};
///
/// let budget = Budget::new(2, Duration::from_secs(30));
/// let recorder = budget.recorder(Side::Sync);
/// recorder.record_opened();
/// recorder.record_closed(CloseReason::IdleTimeout);
/// let snap = budget.snapshot();
/// assert_eq!(snap.sync_side.opened_total, 1);
/// assert_eq!(snap.async_side.opened_total, 0);
/// ```
#[derive(Clone, Debug)]
pub struct Recorder {
    shared: Arc<Shared>,
    side: Side,
}

impl Recorder {
    pub(crate) fn new(shared: Arc<Shared>, side: Side) -> Recorder {
        Recorder { shared, side }
    }

    /// The side this recorder counts for.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Starts a checkout taken at `site`: counts it as active and watches it for leaks
    /// until the ticket is dropped.
    pub fn checkout(&self, site: &'static Location<'static>) -> CheckoutTicket {
        CheckoutTicket::new(self.shared.clone(), self.side, site)
    }

    /// Counts a caller as waiting for a connection until the guard is dropped.
    pub fn waiting(&self) -> GaugeGuard<'_> {
        GaugeGuard::new(&self.shared.stats(self.side).waiting)
    }

    /// [`Recorder::waiting`], unless `DB_MAX_WAITERS` callers of this side already
    /// wait ([`Budget::set_max_waiters`](crate::Budget::set_max_waiters)).
    ///
    /// # Errors
    ///
    /// [`DbError::Shed`], counted in the snapshot's `acquire_shed_total`.
    pub fn try_waiting(&self) -> Result<GaugeGuard<'_>, DbError> {
        let stats = self.shared.stats(self.side);
        let limit = self.shared.max_waiters.load(Relaxed);
        if limit == u32::MAX {
            let guard = GaugeGuard::new(&stats.waiting);
            self.shared.shares.demand_rose();
            return Ok(guard);
        }
        let below = stats
            .waiting
            .fetch_update(SeqCst, Relaxed, |n| (n < limit).then_some(n + 1));
        match below {
            Ok(_) => {
                self.shared.shares.demand_rose();
                Ok(GaugeGuard::counted(&stats.waiting))
            }
            Err(_) => {
                stats.shed.fetch_add(1, Relaxed);
                Err(DbError::Shed {
                    side: self.side,
                    limit,
                })
            }
        }
    }

    /// Adjusts the idle gauge by `delta` (a pool calls this as connections enter and
    /// leave its idle list).
    pub fn add_idle(&self, delta: i32) {
        let idle = &self.shared.stats(self.side).idle;
        if delta >= 0 {
            idle.fetch_add(delta as u32, Relaxed);
        } else {
            idle.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }

    /// Records that a connection was opened (the side's connects work again).
    pub fn record_opened(&self) {
        let stats = self.shared.stats(self.side);
        stats.opened.fetch_add(1, Relaxed);
        stats.connect_failed_at.store(0, Relaxed);
    }

    /// Records that a connect attempt failed: refused, "too many connections" (each
    /// retry too), a handshake or session set-up error, or the connect timeout. Until
    /// the side opens a connection again, callers that time out in the next
    /// [`RECENT_CONNECT_FAILURE`](crate::RECENT_CONNECT_FAILURE) are told the cause is
    /// [`WaitCause::FailingConnects`](crate::WaitCause::FailingConnects).
    pub fn record_connect_failed(&self) {
        self.shared
            .stats(self.side)
            .connect_failed_at
            .store(crate::statement::ticks_now(), Relaxed);
    }

    /// Records that a connection was closed, and why.
    pub fn record_closed(&self, reason: CloseReason) {
        self.shared.stats(self.side).count_closed(reason);
    }

    /// Records how long a caller waited for a connection.
    pub fn record_acquire(&self, waited: Duration) {
        self.shared.stats(self.side).acquire.record(waited);
    }

    /// Records a statement's duration; one slower than `DB_SLOW_QUERY` (see
    /// [`Budget::set_slow_query_threshold`](crate::Budget::set_slow_query_threshold)) is
    /// logged with its SQL text (never values: neither parameters nor the literals
    /// written into the text, which [`mask_values`](crate::sql::mask_values) makes `?`),
    /// duration and the call site, and counted by that text for the snapshot's
    /// `slow_statements`.
    pub fn record_query(&self, sql: &str, took: Duration, site: &Location<'_>) {
        let stats = self.shared.stats(self.side);
        stats.queries.record(took);
        let threshold = Duration::from_nanos(self.shared.slow_query_nanos.load(Relaxed));
        if took >= threshold {
            stats.slow_queries.fetch_add(1, Relaxed);
            // Shown with its values masked, in the log as in the snapshot.
            let text = crate::slow::normalise(sql);
            tracing::warn!(
                side = %self.side,
                took = %HumanDuration(took),
                call_site = %site,
                sql = %text,
                "slow query (DB_SLOW_QUERY is {})",
                HumanDuration(threshold),
            );
            self.shared.slow.record_shown(self.side, text, took);
        }
    }

    /// The error for a caller whose bulkhead did not admit it: [`DbError::Closed`] once
    /// the budget or the pool is closed, [`DbError::Shed`] (counted as this side's shed)
    /// when `DB_MAX_WAITERS` callers of its module already waited, else a pool timeout
    /// in phase [`TimeoutPhase::Bulkhead`].
    pub fn admission_error(&self, e: crate::AdmitError, started: Instant) -> DbError {
        match e {
            crate::AdmitError::Closed => DbError::Closed,
            crate::AdmitError::Shed { limit } => {
                self.shared.stats(self.side).shed.fetch_add(1, Relaxed);
                DbError::Shed {
                    side: self.side,
                    limit,
                }
            }
            crate::AdmitError::TimedOut => self.timeout_error(TimeoutPhase::Bulkhead, started),
        }
    }

    /// Counts a pool timeout and builds its error, with the budget's state now (I4),
    /// why this side's callers wait and the three longest holders, all
    /// from one copy of the live checkouts. The error's snapshot lists no slow
    /// statements: an error carries no SQL text.
    ///
    /// While the budget is suspended ([`Budget::suspend`](crate::Budget::suspend)) a
    /// caller reaching its deadline anywhere (queued for a unit, at a bulkhead, in a
    /// connect) gets [`DbError::Suspended`] instead, not counted as a pool timeout: it
    /// would have been sent back to the gate with whatever it got, so nothing was short
    /// of connections.
    pub fn timeout_error(&self, phase: TimeoutPhase, started: Instant) -> DbError {
        if self.shared.gate.is_suspended() {
            return crate::suspend::suspended(self.side, started);
        }
        self.shared.stats(self.side).timeouts.fetch_add(1, Relaxed);
        let reading = self.shared.read_checkouts();
        DbError::PoolTimeout {
            side: self.side,
            phase,
            waited: started.elapsed(),
            cause: self.shared.wait_cause(&reading, Some(self.side)),
            holders: reading.holders(TIMEOUT_HOLDERS),
            snapshot: Box::new(self.shared.snapshot_with(&reading, false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::Location;
    use std::time::{Duration, Instant};

    use crate::{Budget, DbError, Side, TimeoutPhase, WaitCause};

    #[test]
    fn only_statements_at_or_above_the_threshold_count_as_slow() {
        let b = Budget::new(1, Duration::from_secs(30));
        b.set_slow_query_threshold(Duration::from_millis(50));
        let r = b.recorder(Side::Async);
        r.record_query("SELECT 1", Duration::from_millis(49), Location::caller());
        r.record_query("SELECT 2", Duration::from_millis(50), Location::caller());
        let snap = b.snapshot();
        assert_eq!(snap.async_side.slow_queries_total, 1);
        assert_eq!(snap.async_side.query_latency.counts.iter().sum::<u64>(), 2);
        assert_eq!(snap.sync_side.slow_queries_total, 0);
    }

    #[test]
    fn gauges_follow_the_guards_and_deltas_of_their_side() {
        let b = Budget::new(1, Duration::from_secs(30));
        let r = b.recorder(Side::Sync);
        let ticket = r.checkout(Location::caller());
        let waiting = r.waiting();
        r.add_idle(3);
        r.add_idle(-1);
        let snap = b.snapshot();
        assert_eq!(
            (
                snap.sync_side.active,
                snap.sync_side.waiting,
                snap.sync_side.idle
            ),
            (1, 1, 2)
        );
        assert_eq!((snap.async_side.active, snap.async_side.idle), (0, 0));
        drop((ticket, waiting));
        let snap = b.snapshot();
        assert_eq!((snap.sync_side.active, snap.sync_side.waiting), (0, 0));
    }

    #[test]
    fn beyond_the_waiter_limit_a_caller_is_shed_at_once_and_counted() {
        let b = Budget::new(1, Duration::from_secs(30));
        b.set_max_waiters(Some(2));
        let r = b.recorder(Side::Async);
        let first = r.try_waiting().unwrap();
        let _second = r.try_waiting().unwrap();
        let err = r.try_waiting().unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Shed {
                    side: Side::Async,
                    limit: 2
                }
            ),
            "{err:?}"
        );
        assert!(err.is_unavailable());
        assert!(b.recorder(Side::Sync).try_waiting().is_ok(), "per side");
        drop(first);
        let _third = r.try_waiting().expect("a place came free");
        let snap = b.snapshot();
        assert_eq!(
            (snap.async_side.acquire_shed_total, snap.async_side.waiting),
            (1, 2)
        );
        b.set_max_waiters(None);
        let _many: Vec<_> = (0..10).map(|_| r.try_waiting().unwrap()).collect();
    }

    #[test]
    fn a_waiter_limit_of_zero_lets_no_caller_wait() {
        // Adversary: `set_max_waiters(None)` is the documented "no limit"; `Some(0)` is a
        // limit of zero waiters (every caller that would wait is shed), not the same.
        let b = Budget::new(1, Duration::from_secs(30));
        b.set_max_waiters(Some(0));
        let recorder = b.recorder(Side::Async);
        let waited = recorder.try_waiting();
        assert!(
            matches!(waited, Err(DbError::Shed { limit: 0, .. })),
            "a limit of 0 admitted a waiter: {waited:?}"
        );
    }

    #[test]
    fn a_deadline_reached_while_the_budget_is_suspended_is_suspended_and_not_counted_as_a_timeout()
    {
        // Arrange
        let b = Budget::new(1, Duration::from_secs(30));
        let r = b.recorder(Side::Sync);
        b.suspend();

        // Act
        let err = r.timeout_error(TimeoutPhase::Wait, Instant::now());

        // Assert
        assert!(
            matches!(
                err,
                DbError::Suspended {
                    side: Side::Sync,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(b.snapshot().sync_side.acquire_timeouts_total, 0);
        b.resume();
        assert!(matches!(
            r.timeout_error(TimeoutPhase::Wait, Instant::now()),
            DbError::PoolTimeout { .. }
        ));
        assert_eq!(b.snapshot().sync_side.acquire_timeouts_total, 1);
    }

    #[test]
    fn a_timeout_names_why_callers_wait_and_the_longest_holders() {
        // Arrange: both units checked out at one site, held past a short leak threshold.
        let b = Budget::new(2, Duration::from_millis(10));
        b.set_slow_query_threshold(Duration::from_millis(10));
        let r = b.recorder(Side::Async);
        let site = Location::caller();
        let tickets: Vec<_> = (0..2).map(|_| r.checkout(site)).collect();
        std::thread::sleep(Duration::from_millis(30));
        let cause_now = || match r.timeout_error(TimeoutPhase::Wait, Instant::now()) {
            DbError::PoolTimeout { cause, .. } => cause,
            other => panic!("a pool timeout, got {other:?}"),
        };

        // Act + Assert: idle old holders are leaks, named in the message.
        let err = r.timeout_error(TimeoutPhase::Wait, Instant::now());
        let DbError::PoolTimeout {
            cause,
            ref holders,
            ref snapshot,
            ..
        } = err
        else {
            panic!("a pool timeout, got {err:?}");
        };
        assert_eq!(cause, WaitCause::LeakedHolders);
        assert_eq!((holders.len(), holders[0].count), (1, 2), "{holders:?}");
        assert!(snapshot.slow_statements.is_empty());
        let msg = err.to_string();
        let named = format!(
            "(async): leaked holders — {}:{} held ",
            file!(),
            site.line()
        );
        assert!(msg.contains(&named), "{msg}");
        assert!(msg.contains("(×2); budget 0/2 in use"), "{msg}");

        // Both inside statements longer than DB_SLOW_QUERY: slow statements.
        let statements: Vec<_> = tickets.iter().map(|t| t.enter_statement()).collect();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cause_now(), WaitCause::SlowStatements);
        drop(statements);
        assert_eq!(
            cause_now(),
            WaitCause::LeakedHolders,
            "the statements ended"
        );

        // A failed connect comes first, until a connect succeeds; per side.
        r.record_connect_failed();
        assert_eq!(cause_now(), WaitCause::FailingConnects);
        let other = b.recorder(Side::Sync);
        assert!(matches!(
            other.timeout_error(TimeoutPhase::Wait, Instant::now()),
            DbError::PoolTimeout {
                cause: WaitCause::LeakedHolders,
                ..
            }
        ));
        r.record_opened();
        assert_eq!(cause_now(), WaitCause::LeakedHolders);
    }

    #[test]
    fn the_snapshot_names_a_wait_cause_only_while_callers_wait_and_lists_slow_statements() {
        let b = Budget::new(1, Duration::from_secs(30));
        b.set_slow_query_threshold(Duration::from_millis(50));
        let r = b.recorder(Side::Sync);
        r.record_query(
            "DO SLEEP(0.3)",
            Duration::from_millis(300),
            Location::caller(),
        );
        r.record_query("SELECT 1", Duration::from_millis(1), Location::caller());
        let snap = b.snapshot();
        assert_eq!(snap.wait_cause, None);
        assert_eq!(snap.slow_statements.len(), 1, "{:?}", snap.slow_statements);
        assert_eq!(snap.slow_statements[0].sql, "DO SLEEP(?)");
        let waiting = r.waiting();
        assert_eq!(b.snapshot().wait_cause, Some(WaitCause::Backlog));
        drop(waiting);
    }

    #[test]
    fn a_timeout_is_counted_and_carries_the_budget_state() {
        let b = Budget::new(1, Duration::from_secs(30));
        let _held = b.try_acquire(Side::Sync).unwrap();
        let err = b
            .recorder(Side::Async)
            .timeout_error(TimeoutPhase::Wait, Instant::now());
        let DbError::PoolTimeout { side, snapshot, .. } = err else {
            panic!("a pool timeout, got {err:?}");
        };
        assert_eq!((side, snapshot.in_use), (Side::Async, 1));
        assert_eq!(b.snapshot().async_side.acquire_timeouts_total, 1);
    }
}
