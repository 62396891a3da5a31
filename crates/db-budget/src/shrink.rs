//! The pools' promise to give idle connections back, and where the budget keeps them.

use std::sync::{Arc, RwLock, Weak};

use crate::side::Side;

/// A pool's promise to give units back when the other side needs them (invariant I2).
///
/// # Contract
///
/// [`Shrink::shrink_idle`] is called from whatever thread or task has just started to
/// wait for a unit, possibly with no runtime. It **must not block**: close at most one
/// idle connection now (or hand its closing to a background task) and return.
pub trait Shrink: Send + Sync + 'static {
    /// Close one idle connection, if there is one, so that its unit returns to the
    /// budget. Returns `true` if a connection was found to close.
    fn shrink_idle(&self) -> bool;
}

/// The pools registered on each side, held weakly (a dropped pool is skipped and
/// forgotten at the next registration).
#[derive(Default)]
pub(crate) struct Shrinkers([RwLock<Vec<Weak<dyn Shrink>>>; 2]);

impl Shrinkers {
    pub(crate) fn register(&self, side: Side, shrinker: Weak<dyn Shrink>) {
        let mut list = self.0[side.index()]
            .write()
            .unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(shrinker);
    }

    /// Asks the pools of `side` in turn until one closes an idle connection.
    pub(crate) fn shrink_one(&self, side: Side) -> bool {
        // The lock is released before any pool's `shrink_idle` runs.
        let shrinkers: Vec<Arc<dyn Shrink>> = {
            let list = self.0[side.index()]
                .read()
                .unwrap_or_else(|e| e.into_inner());
            list.iter().filter_map(Weak::upgrade).collect()
        };
        shrinkers.iter().any(|s| s.shrink_idle())
    }
}
