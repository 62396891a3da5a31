//! Changing the budget's capacity at run time, within the most it was built with.
//!
//! # How
//!
//! A budget that may grow is built with the most it may ever hold (its **limit**, the
//! server's startup check's: [`Budget::capacity`]) and brought down to what it starts
//! with by [`Budget::set_capacity`]; the units above are withheld, as a fleet withholds
//! what it has not leased (`withheld.rs`). Growing gives withheld units back (after
//! cancelling any debt left by an earlier shrink). Shrinking never closes a connection in
//! use: it owes the units ([`Budget::owe`]'s mechanism) and takes the free ones at once,
//! asks the pools to close idle connections, and the rest leave use as their connections
//! come back (each returned connection is closed instead of pooled while units are
//! owed, and its unit withheld before any waiter sees it). So the units in use converge
//! to the new capacity as holders return, and never exceed the old one meanwhile.
//!
//! A unit withheld for another reason (the server view's connection, `db-view`) stays
//! withheld: the capacity counts it, as `MAX_CONNECTIONS` does, so it must be above it
//! (the startup check's rule: the pools keep at least one unit). Not for a fleet member's
//! budget (the fleet owns its capacity and leases its units through the same counts: the
//! server refuses before it gets here), nor with bulkheads (their floors and caps were
//! divided for the capacity the budget started with).

use std::sync::atomic::Ordering::SeqCst;

use crate::budget::Budget;

/// Why [`Budget::set_capacity`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResizeError {
    /// The capacity asked for is 0 or above the budget's limit.
    #[error("a capacity of {requested} is outside 1..={limit}")]
    OutOfRange {
        /// What was asked for.
        requested: u32,
        /// The most the budget can hold ([`Budget::capacity`]).
        limit: u32,
    },
    /// The capacity asked for leaves the pools no unit beside those withheld for
    /// another reason (the server view's connection, a fleet's control connection),
    /// which the capacity counts: the server's startup check refuses such a
    /// `MAX_CONNECTIONS` too.
    #[error(
        "a capacity of {requested} leaves the pools no unit beside the {withheld} withheld \
         for the server view's or the fleet's own connection: at least {} is needed",
        withheld + 1
    )]
    LeavesPoolsNone {
        /// What was asked for.
        requested: u32,
        /// The units withheld for another reason ([`Budget::withheld`]).
        withheld: u32,
    },
    /// The budget is divided into bulkheads (`DB_BULKHEADS`), sized for its capacity.
    #[error(
        "the budget is divided into bulkheads (DB_BULKHEADS), whose floors and caps are sized for its capacity"
    )]
    Bulkheads,
}

/// What [`Budget::set_capacity`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resized {
    /// The capacity before.
    pub from: u32,
    /// The capacity now asked for.
    pub to: u32,
    /// Units still in use that leave use as their connections come back (0 after a
    /// grow, or when enough units were free or idle).
    pub owed: u32,
}

/// How many times a grow looks again for a withheld unit that a return is paying in at
/// that very moment (it is between the debt and the withheld count for nanoseconds).
const GRANT_RETRIES: u32 = 100_000;

impl Budget {
    /// Sets the capacity the budget serves with to `n` units (see the module docs):
    /// growing takes effect at once, shrinking as soon as enough units are free (free
    /// units at once, idle connections are asked to close, connections in use as they
    /// come back). Never blocks and never closes a connection in use.
    ///
    /// # Errors
    ///
    /// [`ResizeError::OutOfRange`] when `n` is 0 or above [`Budget::capacity`],
    /// [`ResizeError::LeavesPoolsNone`] when `n` is not above the units withheld for
    /// another reason ([`Budget::withheld`]: the server view's connection),
    /// [`ResizeError::Bulkheads`] with bulkheads set.
    pub fn set_capacity(&self, n: u32) -> Result<Resized, ResizeError> {
        let shared = &self.shared;
        let limit = shared.capacity;
        if n == 0 || n > limit {
            return Err(ResizeError::OutOfRange {
                requested: n,
                limit,
            });
        }
        if shared.bulkheads.get().is_some() {
            return Err(ResizeError::Bulkheads);
        }
        let (from, owed) = {
            let _resizing = shared.resizing.lock().unwrap_or_else(|e| e.into_inner());
            let withheld = self.withheld();
            if n <= withheld {
                return Err(ResizeError::LeavesPoolsNone {
                    requested: n,
                    withheld,
                });
            }
            let from = shared.target.load(SeqCst);
            shared.target.store(n, SeqCst);
            if n > from {
                self.grow(n - from);
            } else if n < from {
                shared.owed.fetch_add(from - n, SeqCst);
                shared.pay_owed_from_free();
            }
            (from, shared.owed.load(SeqCst))
        };
        // Idle connections hold units too: close as many as are still owed (their units
        // are withheld as their sockets close).
        let idle = self.idle().min(owed);
        for _ in 0..idle {
            if !self.close_one_idle() {
                break;
            }
        }
        Ok(Resized { from, to: n, owed })
    }

    /// The capacity asked for last ([`Budget::set_capacity`]; the limit until then). The
    /// snapshot's `capacity` reaches it once the owed units are back.
    pub fn capacity_target(&self) -> u32 {
        self.shared.target.load(SeqCst)
    }

    /// `delta` more units: first cancel what is still owed, then give withheld units
    /// back.
    fn grow(&self, delta: u32) {
        let shared = &self.shared;
        let mut need = delta;
        let take = |counter: &std::sync::atomic::AtomicU32, need: u32| {
            let before = counter
                .fetch_update(SeqCst, SeqCst, |v| Some(v - v.min(need)))
                .unwrap_or_else(|v| v);
            before.min(need)
        };
        need -= take(&shared.owed, need);
        for _ in 0..GRANT_RETRIES {
            let granted = take(&shared.withheld, need);
            shared.follow_usable();
            shared.semaphore.add_permits(granted as usize);
            need -= granted;
            if need == 0 {
                return;
            }
            // A unit given back right now is on its way from owed to withheld.
            need -= take(&shared.owed, need);
            std::thread::yield_now();
        }
        tracing::error!(
            missing = need,
            "db-budget: growing the capacity found {need} fewer withheld units than expected"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Budget, BulkheadSpec, Side};

    use super::*;

    fn budget(limit: u32, capacity: u32) -> Budget {
        let b = Budget::new(limit, Duration::from_secs(30));
        b.set_capacity(capacity).expect("within the limit");
        b
    }

    #[test]
    fn a_budget_brought_below_its_limit_serves_only_the_capacity_asked_for() {
        // Arrange
        let b = budget(6, 3);

        // Act
        let units: Vec<_> = (0..3).filter_map(|_| b.try_acquire(Side::Async)).collect();

        // Assert
        assert_eq!(units.len(), 3);
        assert!(
            b.try_acquire(Side::Sync).is_none(),
            "the other 3 are withheld"
        );
        let snap = b.snapshot();
        assert_eq!((snap.capacity, snap.in_use), (3, 3));
        assert_eq!(
            (snap.withheld, b.withheld()),
            (0, 0),
            "not a fleet's or a view's"
        );
        assert_eq!((b.capacity(), b.capacity_target()), (6, 3));
    }

    #[test]
    fn growing_lets_more_units_be_taken_at_once() {
        // Arrange
        let b = budget(6, 2);
        let _held = [b.try_acquire(Side::Async), b.try_acquire(Side::Sync)];
        assert!(b.try_acquire(Side::Async).is_none());

        // Act
        let resized = b.set_capacity(5).unwrap();

        // Assert
        assert_eq!(
            resized,
            Resized {
                from: 2,
                to: 5,
                owed: 0
            }
        );
        let more: Vec<_> = (0..3).filter_map(|_| b.try_acquire(Side::Async)).collect();
        assert_eq!(more.len(), 3);
        assert!(b.try_acquire(Side::Async).is_none());
        assert_eq!(b.snapshot().capacity, 5);
    }

    #[test]
    fn shrinking_with_every_unit_held_takes_none_from_its_holder_and_withholds_each_as_it_returns()
    {
        // Arrange
        let b = budget(4, 4);
        let mut held: Vec<_> = (0..4).map(|_| b.try_acquire(Side::Sync).unwrap()).collect();

        // Act
        let resized = b.set_capacity(1).unwrap();

        // Assert: nothing taken from a holder; the units leave use one return at a time.
        assert_eq!(resized.owed, 3);
        assert_eq!(b.in_use(), 4, "every holder keeps its unit");
        assert!(
            b.should_yield(Side::Sync),
            "returns close while units are owed"
        );
        for (returned, in_use_after) in [(1, 3), (2, 2), (3, 1)] {
            drop(held.pop());
            assert_eq!(b.in_use(), in_use_after, "after {returned} returned");
            assert!(
                b.try_acquire(Side::Async).is_none(),
                "a freed unit is withheld"
            );
        }
        assert_eq!((b.owed(), b.snapshot().capacity), (0, 1));
        assert!(!b.should_yield(Side::Sync), "nothing owed any more");
        drop(held.pop());
        assert!(
            b.try_acquire(Side::Async).is_some(),
            "the one unit is usable"
        );
    }

    #[test]
    fn shrinking_takes_free_units_at_once_and_growing_again_cancels_what_is_still_owed() {
        // Arrange: 2 of 5 held.
        let b = budget(5, 5);
        let held = [b.try_acquire(Side::Async), b.try_acquire(Side::Async)];

        // Act: down to 1 (3 free ones at once, 1 owed), then up to 4.
        let down = b.set_capacity(1).unwrap();
        let up = b.set_capacity(4).unwrap();

        // Assert
        assert_eq!(down.owed, 1);
        assert_eq!(up.owed, 0, "the debt was cancelled");
        assert_eq!(b.snapshot().capacity, 4);
        assert_eq!(b.available(), 2);
        drop(held);
        assert_eq!(b.available(), 4, "both returned units stay usable");
    }

    #[test]
    fn a_capacity_of_zero_or_above_the_limit_is_refused_and_changes_nothing() {
        let b = budget(4, 2);
        for n in [0, 5] {
            assert_eq!(
                b.set_capacity(n),
                Err(ResizeError::OutOfRange {
                    requested: n,
                    limit: 4
                })
            );
        }
        assert_eq!((b.capacity_target(), b.snapshot().capacity), (2, 2));
    }

    #[test]
    fn a_unit_withheld_for_the_server_view_stays_withheld_through_a_grow_and_a_shrink() {
        // Arrange: 4 of 6, one withheld as the view's reader does.
        let b = budget(6, 4);
        assert_eq!(b.withhold(1), 1);
        assert_eq!(b.usable(), 3);

        // Act and assert
        b.set_capacity(6).unwrap();
        assert_eq!(b.usable(), 5, "the view's unit is not given to the pools");
        assert_eq!(b.withheld(), 1, "the view's, as before the grow");
        b.set_capacity(2).unwrap();
        assert_eq!((b.usable(), b.withheld()), (1, 1));
        b.grant(1); // the view stops
        assert_eq!((b.usable(), b.withheld()), (2, 0));
    }

    #[test]
    fn a_capacity_that_leaves_the_pools_nothing_beside_the_view_s_unit_is_refused_and_changes_nothing()
     {
        // Arrange: 3 of 4, one withheld as the view's reader does.
        let b = budget(4, 3);
        assert_eq!(b.withhold(1), 1);

        // Act
        let refused = b.set_capacity(1);
        let smallest = b.set_capacity(2);

        // Assert
        assert_eq!(
            refused,
            Err(ResizeError::LeavesPoolsNone {
                requested: 1,
                withheld: 1
            })
        );
        assert!(smallest.is_ok(), "{smallest:?}");
        assert_eq!((b.capacity_target(), b.usable(), b.withheld()), (2, 1, 1));
    }

    #[test]
    fn a_budget_with_bulkheads_refuses_to_be_resized() {
        let divided = Budget::new(4, Duration::from_secs(30));
        divided.set_bulkheads(&[BulkheadSpec {
            name: "legacy".into(),
            floor: 1,
            cap: 2,
        }]);
        assert_eq!(divided.set_capacity(3), Err(ResizeError::Bulkheads));
    }
}
