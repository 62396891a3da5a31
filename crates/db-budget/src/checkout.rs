//! One checked-out connection as the budget sees it.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::shared::Shared;
use crate::side::Side;
use crate::statement::{InStatement, StatementMark};

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
    statement: StatementMark,
}

impl CheckoutTicket {
    pub(crate) fn new(shared: Arc<Shared>, side: Side, site: &'static Location<'static>) -> Self {
        let statement = StatementMark::default();
        let id = shared.leaks.register(side, site, statement.clone());
        // SeqCst: see `Shares::demand_rose`.
        shared.stats(side).active.fetch_add(1, SeqCst);
        shared.shares.demand_rose();
        CheckoutTicket {
            shared,
            id,
            side,
            statement,
        }
    }

    /// This checkout's statement clock, for a pool whose statement helpers do not hold
    /// the ticket (see [`StatementMark::enter`]).
    pub fn statement_mark(&self) -> StatementMark {
        self.statement.clone()
    }

    /// Marks this checkout as inside a statement until the guard is dropped: a holder
    /// stuck in a statement slower than `DB_SLOW_QUERY` then counts as a slow
    /// statement, not a leak, when callers wait (`cause.rs`).
    pub fn enter_statement(&self) -> InStatement {
        self.statement.enter()
    }
}

impl Drop for CheckoutTicket {
    fn drop(&mut self) {
        self.shared.leaks.deregister(self.id);
        self.shared.stats(self.side).active.fetch_sub(1, Relaxed);
    }
}
