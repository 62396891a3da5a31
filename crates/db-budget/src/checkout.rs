//! One checked-out connection as the budget sees it.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::shared::Shared;
use crate::side::Side;

/// One checked-out connection as the budget sees it: counts the side's `active` gauge
/// and takes part in leak detection. Dropping it ends the checkout.
///
/// A pool takes one from its [`Recorder::checkout`](crate::Recorder::checkout).
#[must_use = "the checkout ends when this ticket is dropped"]
#[derive(Debug)]
pub struct CheckoutTicket {
    shared: Arc<Shared>,
    id: u64,
    side: Side,
}

impl CheckoutTicket {
    pub(crate) fn new(shared: Arc<Shared>, side: Side, site: &'static Location<'static>) -> Self {
        let id = shared.leaks.register(side, site);
        // SeqCst: see `Shares::demand_rose`.
        shared.stats(side).active.fetch_add(1, SeqCst);
        shared.shares.demand_rose();
        CheckoutTicket { shared, id, side }
    }
}

impl Drop for CheckoutTicket {
    fn drop(&mut self) {
        self.shared.leaks.deregister(self.id);
        self.shared.stats(self.side).active.fetch_sub(1, Relaxed);
    }
}
