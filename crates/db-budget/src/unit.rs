//! One unit of the budget: the right to one physical connection.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::OwnedSemaphorePermit;

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
}

impl Unit {
    pub(crate) fn new(shared: Arc<Shared>, side: Side, permit: OwnedSemaphorePermit) -> Unit {
        shared.stats(side).held.fetch_add(1, Relaxed);
        Unit {
            shared,
            side,
            permit: Some(permit),
        }
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
        self.shared.stats(self.side).held.fetch_sub(1, Relaxed);
        // A unit owed back (`withheld.rs`) leaves use here, before any waiter sees it.
        if let Some(permit) = self.permit.take() {
            if self.shared.pay_one_owed() {
                permit.forget();
            } else {
                drop(permit);
            }
        }
    }
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit").field("side", &self.side).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Budget, Side};

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
