//! Helpers shared by this crate's test binaries (`smoke/`, `frozen.rs`).

use db_budget::{CloseReason, Snapshot};

/// How many connections the blocking side has closed for `reason`.
pub fn closed(snapshot: &Snapshot, reason: CloseReason) -> u64 {
    snapshot
        .sync_side
        .closed_total
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}
