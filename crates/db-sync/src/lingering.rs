//! The blocking side's part in ending lingering sessions (`db_budget::linger` says
//! why): a connection returned while units linger first kills those sessions over
//! itself, on the returning thread (a connection inside the budget: never a new one),
//! and gives back the units of those the server has ended. The sessions may be the
//! async side's: the budget is one.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use db_budget::Budget;
use db_budget::linger;
use r2d2_mysql::mysql::{self, prelude::Queryable};

use crate::connection::Slot;

/// Looks in the process list this many times (1, 2, 4 ms apart) for killed sessions to
/// leave it: the returning thread waits for them, so fewer than the async side's.
const LOOKS: u32 = 4;

/// Before `p` is pooled: if units linger and no other thread reaps, kills their
/// sessions over `p` (each exchange bounded by the connect timeout). A failed
/// exchange loses `p` (closed, not pooled).
pub(crate) fn reap(p: &mut Slot) {
    let state = p.state().clone();
    if state.budget.sessions_to_end() == 0 || state.reaping.swap(true, SeqCst) {
        return;
    }
    let boot = p.session().boot;
    // Again for sessions cut off meanwhile, until none is left that it has not tried.
    let mut tried: Vec<u64> = Vec::new();
    let mut result = Ok(());
    loop {
        let sessions: Vec<u64> = state
            .budget
            .lingering_sessions(boot)
            .into_iter()
            .filter(|s| !tried.contains(s))
            .collect();
        if sessions.is_empty() || result.is_err() {
            break;
        }
        result = p.housekeeping(|c| end_sessions(&state.budget, boot, c, &sessions));
        tried.extend(sessions);
    }
    state.reaping.store(false, SeqCst);
    if let Err(e) = result {
        tracing::debug!(error = %e, "db-sync: ending lingering sessions failed; closing the connection");
        p.doom_lost();
    }
}

/// `KILL CONNECTION` for each of `sessions` (one the server refuses, 1094 for a
/// session gone already, is no error: the process list decides), then looks for them
/// until they are gone; the units of those gone come back.
fn end_sessions(
    budget: &Budget,
    boot: u64,
    conn: &mut mysql::Conn,
    sessions: &[u64],
) -> Result<(), mysql::Error> {
    if sessions.is_empty() {
        return Ok(());
    }
    for &session in sessions {
        match conn.query_drop(linger::kill_statement(session)) {
            Ok(()) | Err(mysql::Error::MySqlError(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut pause = Duration::from_millis(1);
    for look in 1..=LOOKS {
        let listed: Vec<u64> = conn.query(linger::still_running_query(sessions))?;
        let ended: Vec<u64> = sessions
            .iter()
            .copied()
            .filter(|s| !listed.contains(s))
            .collect();
        budget.sessions_ended(boot, &ended);
        if listed.is_empty() || look == LOOKS {
            break;
        }
        std::thread::sleep(pause);
        pause *= 2;
    }
    Ok(())
}
