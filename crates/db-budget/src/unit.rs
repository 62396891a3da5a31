//! One unit of the budget: the right to one physical connection.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::linger::{QUIT_TEARDOWN, Session};
use crate::shared::Shared;
use crate::side::Side;

/// One unit of the budget: the right to one physical connection.
///
/// Owned by the connection it pays for and dropped after the socket is closed (declare
/// it as the connection struct's **last** field). Dropping it gives the unit back.
#[must_use = "a unit is given back as soon as it is dropped"]
pub struct Unit {
    shared: Arc<Shared>,
    side: Side,
    /// `None` only inside `drop`.
    permit: Option<OwnedSemaphorePermit>,
    /// Counted in its side's `held`: every unit a pool holds, not one that lingers
    /// after its connection quit (its side gave it up already).
    counted: bool,
    /// The server session its connection ends by quitting ([`Unit::quits`]).
    quitting: Option<Session>,
}

impl Unit {
    pub(crate) fn new(shared: Arc<Shared>, side: Side, permit: OwnedSemaphorePermit) -> Unit {
        shared.stats(side).held.fetch_add(1, Relaxed);
        Unit {
            shared,
            side,
            permit: Some(permit),
            counted: true,
            quitting: None,
        }
    }

    /// The connection this unit pays for is closing gracefully (`COM_QUIT`), and its
    /// server session is `session`. Call it before the close; the unit drops after it,
    /// as always.
    ///
    /// The server counts a session against `max_connections` until its thread has torn
    /// it down, a moment after the client saw the socket close (it frees the session,
    /// leaves the process list, then lowers the count). A waiter that got the unit at
    /// once would connect into that moment (a waiter, or the very caller whose return
    /// closed it, asking again), and the server would count one more than the budget:
    /// with every slot of `max_connections` in use, ERROR 1040. So the unit **lingers**
    /// (`linger.rs`) until a connection of the budget has seen the session leave the
    /// process list, at most [`QUIT_TEARDOWN`], and no longer counts in its side's
    /// `held`: the side has given it up. It stops counting there at this call, not when
    /// the close has ended: a waiter asking again meanwhile (every few milliseconds)
    /// would otherwise find the side above its share still, and have it close a second
    /// connection for the same waiter. From here until it lingers it counts as closing,
    /// and the asks leave it alone (`fairness.rs`).
    pub fn quits(&mut self, session: Session) {
        if self.quitting.is_some() || self.permit.is_none() {
            return;
        }
        self.quitting = Some(session);
        if std::mem::replace(&mut self.counted, false) {
            self.shared.stats(self.side).held.fetch_sub(1, Relaxed);
        }
        self.shared.lingering.closing_started();
    }

    /// The side holding this unit.
    pub fn side(&self) -> Side {
        self.side
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        // `held` falls before the permit returns, so `held` never over-counts a unit
        // that is already free.
        if self.counted {
            self.shared.stats(self.side).held.fetch_sub(1, Relaxed);
        }
        let Some(permit) = self.permit.take() else {
            return;
        };
        // A unit whose connection quit stops counting as closing when this returns:
        // after it lingers (counted there), or once it is free.
        let _closed = self.quitting.map(|_| Closed(&self.shared));
        // A unit owed back (`withheld.rs`) leaves use here, before any waiter sees it
        // (and its lease outlives the server's count, `withheld.rs`).
        if self.shared.pay_one_owed() {
            permit.forget();
            return;
        }
        if let Some(session) = self.quitting.take() {
            let unit = Unit {
                shared: self.shared.clone(),
                side: self.side,
                permit: Some(permit),
                counted: false,
                quitting: None,
            };
            let until = Instant::now() + QUIT_TEARDOWN;
            crate::linger::linger(&self.shared, unit, None, session, until, false);
            return;
        }
        drop(permit);
    }
}

/// Ends a unit's count as closing when dropped (`Unit::quits`).
struct Closed<'a>(&'a Shared);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.0.lingering.closing_ended();
    }
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit").field("side", &self.side).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};

    use crate::linger::{QUIT_TEARDOWN, Session};
    use crate::{Budget, Side};

    const SESSION: Session = Session {
        id: 42,
        boot: 1_700_000_000,
    };

    /// Starts a blocking waiter of `side` for a unit and returns once the budget counts
    /// it; the thread gives back when its unit came, and how long it waited.
    fn waiter(b: &Budget, side: Side) -> std::thread::JoinHandle<Duration> {
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let unit = b2.acquire_blocking(side, Instant::now() + Duration::from_secs(30));
            assert!(unit.is_ok(), "the waiter got a unit: {unit:?}");
            start.elapsed()
        });
        while b.shared.stats(side).budget_waiting.load(Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        t
    }

    #[test]
    fn a_unit_whose_connection_quits_with_nobody_waiting_lingers_too() {
        let b = Budget::new(1, Duration::from_secs(30));
        let mut u = b.try_acquire(Side::Async).unwrap();
        u.quits(SESSION);
        drop(u);
        assert_eq!(
            (
                b.in_use(),
                b.lingering(),
                b.shared.stats(Side::Async).held.load(Relaxed)
            ),
            (1, 1, 0),
            "the caller whose return closed it may connect next"
        );
        assert_eq!(b.sessions_ended(SESSION.boot, &[42]), 1);
        assert_eq!((b.in_use(), b.lingering(), b.sessions_to_end()), (0, 0, 0));
    }

    #[test]
    fn a_unit_whose_connection_quits_while_a_caller_waits_lingers_until_the_session_is_seen_gone() {
        let b = Budget::new(1, Duration::from_secs(30));
        let mut u = b.try_acquire(Side::Async).unwrap();
        let w = waiter(&b, Side::Sync);
        u.quits(SESSION);
        drop(u);
        let snap = b.snapshot();
        assert_eq!(
            (snap.in_use, snap.lingering, snap.async_side.held),
            (1, 1, 0),
            "it lingers, no longer counted by the side that gave it up"
        );
        assert_eq!(b.lingering_sessions(SESSION.boot), vec![42]);
        assert_eq!(b.sessions_ended(SESSION.boot, &[42]), 1);
        let waited = w.join().unwrap();
        assert!(
            waited < QUIT_TEARDOWN,
            "seen gone, it came at once: {waited:?}"
        );
        assert_eq!((b.lingering(), b.sessions_to_end()), (0, 0));
    }

    #[test]
    fn a_unit_whose_connection_quit_reaches_the_waiter_by_the_deadline_when_nothing_can_look() {
        let b = Budget::new(1, Duration::from_secs(30));
        let mut u = b.try_acquire(Side::Sync).unwrap();
        let w = waiter(&b, Side::Async);
        u.quits(SESSION);
        drop(u);
        assert_eq!(b.lingering(), 1);
        let waited = w.join().unwrap();
        assert!(
            waited >= QUIT_TEARDOWN,
            "it lingered to the deadline: {waited:?}"
        );
        assert_eq!(b.lingering(), 0);
    }

    #[test]
    fn units_are_counted_per_side_and_come_back_on_drop() {
        let b = Budget::new(3, Duration::from_secs(30));
        let a = b.try_acquire(Side::Async).unwrap();
        let s1 = b.try_acquire(Side::Sync).unwrap();
        let s2 = b.try_acquire(Side::Sync).unwrap();
        assert!(b.try_acquire(Side::Async).is_none());
        let snap = b.snapshot();
        assert_eq!(
            (snap.in_use, snap.async_side.held, snap.sync_side.held),
            (3, 1, 2)
        );
        drop((a, s1, s2));
        let snap = b.snapshot();
        assert_eq!(
            (snap.in_use, snap.async_side.held, snap.sync_side.held),
            (0, 0, 0)
        );
    }
}
