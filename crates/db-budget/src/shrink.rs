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

    /// Close every idle connection stamped with an eviction generation older than the
    /// budget's ([`Budget::evict`](crate::Budget::evict)), in the background, and return
    /// how many. Called from whatever thread asked for the eviction: it **must not
    /// block** either.
    fn evict_idle(&self) -> u32;

    /// Units linger for sessions the client gave up on (`linger.rs`): end them over an
    /// idle connection, if one is idle, in the background. Called from whatever thread
    /// shut the cut-off connection or dropped the unit (possibly inside the pool's own
    /// return path, under its locks): it **must not block**, nor wait for the pool's
    /// locks (it may try them, and skip the reap when they are held). Defaults to
    /// nothing.
    fn reap_lingering(self: Arc<Self>) {}
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
        self.live(side).iter().any(|s| s.shrink_idle())
    }

    /// Asks every pool of `side` to close its evicted idle connections; returns how many.
    pub(crate) fn evict_idle(&self, side: Side) -> u32 {
        self.live(side).iter().map(|s| s.evict_idle()).sum()
    }

    /// Asks every pool of both sides to end lingering sessions over an idle connection.
    pub(crate) fn reap_lingering(&self) {
        for side in Side::ALL {
            for s in self.live(side) {
                s.reap_lingering();
            }
        }
    }

    /// The pools of `side` still alive. The lock is released before any of them runs.
    fn live(&self, side: Side) -> Vec<Arc<dyn Shrink>> {
        let list = self.0[side.index()]
            .read()
            .unwrap_or_else(|e| e.into_inner());
        list.iter().filter_map(Weak::upgrade).collect()
    }
}
