//! Suspending the budget for a database failover: new checkouts wait at a gate, in-flight
//! holders finish.
//!
//! # Why
//!
//! Switching the primary (or rotating the account's password) goes smoothly when no
//! statement starts against the old server while it happens and the callers already
//! running can finish. [`Budget::suspend`] closes the gate: from then on every new
//! checkout of either pool waits in front of it, **including one that would get an idle
//! connection** (the pools ask the gate before they look at their idle list, and hand
//! back a connection they got while the gate was closing). Connections already checked
//! out are not touched. [`Budget::resume`] opens the gate and every waiter goes on, each
//! within its own pool timeout.
//!
//! A waiter still in front of the gate at its deadline fails with
//! [`DbError::Suspended`] (not a pool timeout: nothing was short of connections), and so
//! does a caller that was already queued for a connection when the gate closed and is
//! still waiting at its deadline (`Recorder::timeout_error`). With
//! `DB_MAX_WAITERS` the gate sheds as the pools do: one caller more than the limit per
//! side is refused at once ([`DbError::Shed`]). While suspended, the gate's waiters count
//! in [`Budget::suspended_waiting`], not in the pools' `waiting` (they are not demand
//! the shares or a fleet should follow).
//!
//! The gate holds nothing: no unit, no bulkhead place, no queue position. A waiter that
//! is cancelled leaves nothing behind.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Instant;

use tokio::sync::Notify;

use crate::blocking::park_while;
use crate::budget::Budget;
use crate::error::DbError;
use crate::side::Side;
use crate::stats::GaugeGuard;

/// The gate of one budget (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    suspended: AtomicBool,
    /// Woken when the gate opens, and when the budget closes.
    changed: Notify,
    /// Callers of each side waiting in front of the gate.
    waiting: [AtomicU32; 2],
}

impl Gate {
    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended.load(SeqCst)
    }

    /// Wakes every waiter to look again (the gate opened, or the budget closed).
    pub(crate) fn wake_all(&self) {
        self.changed.notify_waiters();
    }

    /// Completes once the gate is open or `closed()` holds.
    ///
    /// Registered before each look, so that an opening between the look and the wait is
    /// not missed.
    async fn opened(&self, closed: impl Fn() -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.is_suspended() || closed() {
                return;
            }
            changed.await;
        }
    }
}

impl Budget {
    /// Closes the gate: from now on new checkouts of both pools wait (see the module
    /// docs); checkouts already made are not touched. Returns `false` if the budget was
    /// suspended already.
    pub fn suspend(&self) -> bool {
        !self.shared.gate.suspended.swap(true, SeqCst)
    }

    /// Opens the gate: every caller waiting in front of it goes on. Returns `false` if
    /// the budget was not suspended.
    pub fn resume(&self) -> bool {
        let was = self.shared.gate.suspended.swap(false, SeqCst);
        self.shared.gate.wake_all();
        was
    }

    /// `true` between [`Budget::suspend`] and [`Budget::resume`].
    pub fn is_suspended(&self) -> bool {
        self.shared.gate.is_suspended()
    }

    /// Callers waiting in front of the gate now, both sides.
    pub fn suspended_waiting(&self) -> u32 {
        let w = &self.shared.gate.waiting;
        w[0].load(Relaxed) + w[1].load(Relaxed)
    }

    /// A pool's first step of a checkout: returns at once while the budget is not
    /// suspended, else waits until it is resumed or until `deadline`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the gate holds nothing, and dropping the future leaves its count.
    ///
    /// # Errors
    ///
    /// [`DbError::Suspended`] (with the time since `started`) when the deadline passes
    /// first, [`DbError::Closed`] once the budget closes, [`DbError::Shed`] at once when
    /// `DB_MAX_WAITERS` callers of `side` already wait at the gate.
    pub async fn wait_while_suspended(
        &self,
        side: Side,
        started: Instant,
        deadline: Instant,
    ) -> Result<(), DbError> {
        if !self.is_suspended() {
            return Ok(());
        }
        let _waiting = self.wait_at_gate(side)?;
        let opened = self.shared.gate.opened(|| self.is_closed());
        match tokio::time::timeout_at(deadline.into(), opened).await {
            Ok(()) if self.is_closed() => Err(DbError::Closed),
            Ok(()) => Ok(()),
            Err(_) => Err(suspended(side, started)),
        }
    }

    /// [`Budget::wait_while_suspended`] for a thread without a runtime. It also gives up,
    /// with [`DbError::Closed`], once `keep_waiting` (checked at least every 5 ms)
    /// returns false: a pool passes "not closed".
    ///
    /// # Errors
    ///
    /// As [`Budget::wait_while_suspended`].
    pub fn wait_while_suspended_blocking(
        &self,
        side: Side,
        started: Instant,
        deadline: Instant,
        keep_waiting: impl Fn() -> bool,
    ) -> Result<(), DbError> {
        if !self.is_suspended() {
            return Ok(());
        }
        let _waiting = self.wait_at_gate(side)?;
        let opened = self.shared.gate.opened(|| self.is_closed());
        match park_while(opened, deadline, &keep_waiting) {
            Some(()) if self.is_closed() => Err(DbError::Closed),
            Some(()) => Ok(()),
            None if !keep_waiting() || self.is_closed() => Err(DbError::Closed),
            None => Err(suspended(side, started)),
        }
    }

    /// Counts a caller of `side` at the gate, unless `DB_MAX_WAITERS` already wait there
    /// (then it is shed, and counted as this side's shed).
    fn wait_at_gate(&self, side: Side) -> Result<GaugeGuard<'_>, DbError> {
        let gauge = &self.shared.gate.waiting[side.index()];
        let limit = self.shared.max_waiters.load(Relaxed);
        if limit == u32::MAX {
            return Ok(GaugeGuard::new(gauge));
        }
        match gauge.fetch_update(SeqCst, Relaxed, |n| (n < limit).then_some(n + 1)) {
            Ok(_) => Ok(GaugeGuard::counted(gauge)),
            Err(_) => {
                self.shared.stats(side).shed.fetch_add(1, Relaxed);
                Err(DbError::Shed { side, limit })
            }
        }
    }
}

/// The error of a caller still kept by the gate at its deadline (see the module docs).
pub(crate) fn suspended(side: Side, started: Instant) -> DbError {
    DbError::Suspended {
        side,
        waited: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn budget() -> Budget {
        Budget::new(2, Duration::from_secs(30))
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_checkout_passes_the_gate_at_once_while_the_budget_is_not_suspended() {
        // Arrange
        let b = budget();
        let started = Instant::now();

        // Act
        let passed = b.wait_while_suspended(Side::Async, started, started).await;

        // Assert
        assert!(passed.is_ok(), "{passed:?}");
        assert!(!b.is_suspended());
    }

    #[tokio::test]
    async fn a_waiter_at_the_gate_goes_on_when_the_budget_resumes() {
        // Arrange
        let b = budget();
        assert!(b.suspend());
        assert!(!b.suspend(), "suspended already");
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            let started = Instant::now();
            b2.wait_while_suspended(Side::Async, started, soon(10_000))
                .await
        });
        while b.suspended_waiting() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(!waiter.is_finished(), "it waits while suspended");

        // Act
        assert!(b.resume());

        // Assert
        let passed = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("resumed within 5 s")
            .unwrap();
        assert!(passed.is_ok(), "{passed:?}");
        assert_eq!(b.suspended_waiting(), 0);
        assert!(!b.resume(), "not suspended any more");
    }

    #[test]
    fn a_blocking_waiter_times_out_with_the_suspended_error_naming_its_side() {
        // Arrange
        let b = budget();
        b.suspend();
        let started = Instant::now();

        // Act
        let err = b
            .wait_while_suspended_blocking(Side::Sync, started, soon(30), || true)
            .unwrap_err();

        // Assert
        match &err {
            DbError::Suspended { side, .. } => assert_eq!(*side, Side::Sync),
            other => panic!("expected Suspended, got {other:?}"),
        }
        assert!(err.is_unavailable());
        assert!(err.to_string().contains("suspended"), "{err}");
        assert_eq!(b.suspended_waiting(), 0);
    }

    #[test]
    fn a_blocking_waiter_is_let_through_by_a_resume_from_another_thread() {
        // Arrange
        let b = budget();
        b.suspend();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let started = Instant::now();
                b.wait_while_suspended_blocking(Side::Sync, started, soon(10_000), || true)
            });
            while b.suspended_waiting() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }

            // Act
            b.resume();

            // Assert
            assert!(waiter.join().unwrap().is_ok());
        });
    }

    #[tokio::test]
    async fn a_waiter_cancelled_at_the_gate_leaves_nothing_behind() {
        // Arrange
        let b = budget();
        b.suspend();
        let started = Instant::now();
        let wait = b.wait_while_suspended(Side::Async, started, soon(10_000));

        // Act: cancelled while it waits.
        let cut = tokio::time::timeout(Duration::from_millis(20), wait).await;

        // Assert
        assert!(cut.is_err(), "it was still waiting");
        assert_eq!(b.suspended_waiting(), 0);
        b.resume();
        let snap = b.snapshot();
        assert_eq!((snap.in_use, snap.async_side.waiting), (0, 0));
        assert_eq!(b.available(), 2);
    }

    #[tokio::test]
    async fn closing_the_budget_ends_the_waits_at_the_gate_with_closed() {
        // Arrange
        let b = budget();
        b.suspend();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            b2.wait_while_suspended(Side::Async, Instant::now(), soon(10_000))
                .await
        });
        while b.suspended_waiting() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        // Act
        b.close();

        // Assert
        let err = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("ended within 5 s")
            .unwrap();
        assert!(matches!(err, Err(DbError::Closed)), "{err:?}");
    }

    #[test]
    fn the_gate_sheds_beyond_db_max_waiters_per_side() {
        // Arrange
        let b = budget();
        b.set_max_waiters(Some(1));
        b.suspend();
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                b.wait_while_suspended_blocking(Side::Sync, Instant::now(), soon(10_000), || true)
            });
            while b.suspended_waiting() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }

            // Act
            let second =
                b.wait_while_suspended_blocking(Side::Sync, Instant::now(), soon(10_000), || true);

            // Assert
            assert!(
                matches!(
                    second,
                    Err(DbError::Shed {
                        side: Side::Sync,
                        limit: 1
                    })
                ),
                "{second:?}"
            );
            assert_eq!(b.snapshot().sync_side.acquire_shed_total, 1);
            b.resume();
            assert!(first.join().unwrap().is_ok());
        });
    }
}
