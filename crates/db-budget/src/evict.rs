//! Evicting every connection of the budget: idle ones now, the ones in use when they
//! come back, after a password rotation or a primary switch.
//!
//! # How
//!
//! The budget keeps an eviction **generation**. Each pool stamps a connection with the
//! generation read just before its connect starts (so a connect under way during an
//! eviction counts as older). [`Budget::evict`] starts a new generation and asks every
//! registered pool to close its idle connections at once ([`Shrink::evict_idle`]); from
//! then on a pool closes, instead of pooling or handing out, any connection stamped with
//! an older generation ([`Budget::is_evicted`]): on its return, and whenever it finds one
//! idle. Connections opened after the eviction are stamped with the new generation and
//! are pooled and reused as usual, so an eviction costs one reconnect per connection and
//! no churn afterwards.
//!
//! [`Shrink::evict_idle`]: crate::Shrink::evict_idle

use std::sync::atomic::Ordering::SeqCst;

use crate::budget::Budget;
use crate::side::Side;

/// What [`Budget::evict`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Eviction {
    /// The generation started; connections stamped with an older one are closed.
    pub generation: u64,
    /// Idle connections asked to close now.
    pub idle_closed: u32,
    /// Connections checked out at that moment, closed when they come back.
    pub checked_out: u32,
}

impl Budget {
    /// Starts a new eviction generation and closes every idle connection of the pools on
    /// this budget (in the background; each unit returns once its socket is closed).
    /// Connections checked out now are closed when they come back. Never blocks.
    pub fn evict(&self) -> Eviction {
        let generation = self.shared.generation.fetch_add(1, SeqCst) + 1;
        let idle_closed = Side::ALL
            .into_iter()
            .map(|side| self.shared.shrinkers.evict_idle(side))
            .sum();
        let snap = self.snapshot();
        Eviction {
            generation,
            idle_closed,
            checked_out: snap.async_side.active + snap.sync_side.active,
        }
    }

    /// The current eviction generation (0 until the first [`Budget::evict`]). A pool
    /// stamps each connection with it just before the connect starts.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(SeqCst)
    }

    /// `true` for a connection stamped with `generation` that an eviction since has
    /// condemned: close it instead of pooling or handing it out.
    pub fn is_evicted(&self, generation: u64) -> bool {
        generation < self.generation()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use crate::{Budget, Shrink, Side};

    /// A pool with `idle` idle connections that closes them all when evicted.
    struct Pool(AtomicU32);
    impl Shrink for Pool {
        fn shrink_idle(&self) -> bool {
            false
        }
        fn evict_idle(&self) -> u32 {
            self.0.swap(0, Relaxed)
        }
    }

    #[test]
    fn an_eviction_condemns_older_connections_and_asks_every_pool_to_close_its_idle_ones() {
        // Arrange
        let b = Budget::new(4, Duration::from_secs(30));
        let pools: Vec<Arc<Pool>> = [2, 1].map(|n| Arc::new(Pool(AtomicU32::new(n)))).into();
        for (side, pool) in Side::ALL.into_iter().zip(&pools) {
            let weak: Weak<dyn Shrink> = Arc::downgrade(&(pool.clone() as Arc<dyn Shrink>));
            b.register_shrinker(side, weak);
        }
        let before = b.generation();

        // Act
        let eviction = b.evict();

        // Assert
        assert_eq!(eviction.generation, before + 1);
        assert_eq!(eviction.idle_closed, 3);
        assert!(pools.iter().all(|p| p.0.load(Relaxed) == 0));
        assert!(b.is_evicted(before), "stamped before: closed");
        assert!(!b.is_evicted(b.generation()), "stamped after: kept");
    }
}
