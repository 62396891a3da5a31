//! Helpers of `tests/faults/`: a private MariaDB with the whole application on it
//! ([`Rig`]), the analysis of what the clients saw around a fault ([`FaultReport`]) and
//! the comparison of the clients' records with the reward ledger ([`check_and_print_ledger`]).
//! The load itself is the `loadgen` crate's (the soak runs the same one).

mod ledger;
mod report;
mod rig;

pub use ledger::check_and_print_ledger;
pub use report::{FaultReport, assert_no_surprises};
pub use rig::{BUDGET, CONNECT_TIMEOUT, MARGIN, POOL_TIMEOUT, Rig, app_options};
