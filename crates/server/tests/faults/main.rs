//! What databases do in production, under steady mixed load.
//!
//! Each test starts its own private MariaDB and the whole application on it (budget 20,
//! `DB_POOL_TIMEOUT=1s`, `DB_CONNECT_TIMEOUT=1s`), runs the load of
//! the `loadgen` crate (200 simulated players, about 500 requests/s: 150 over HTTP,
//! 50 sending their gameplay events over WebSockets; async retention routes and
//! blocking legacy routes mixed), injects one fault, and checks what the clients saw:
//!
//! - nothing failed in the steady state before the fault;
//! - every failure was a 503 (never a 500, a broken connection or a hang), and came
//!   within the pool timeout (+ the connect timeout where connects can hang) + a
//!   scheduling margin;
//! - failures stopped within 2 s of the server being back;
//! - every reward claim and quest completion a client was told succeeded is in the
//!   ledger exactly once, and every other ledger row belongs to an attempt whose answer
//!   was a 503 or lost (it may have committed before the connection broke);
//! - afterwards no budget unit is stuck, the server sees no connection the budget does
//!   not count, and a graceful shutdown gives every unit back.
//!
//! The faults, a module each: a restart (stop, 3 s down, start; `restart`); SIGSTOP for
//! 5 s (`frozen`), and for 8 s with `DB_STATEMENT_TIMEOUT=1s`
//! (`frozen_with_statement_timeout`); `KILL` of every connection of the app's account
//! (`killed`); `wait_timeout=2` with idle pools (`idle`); `max_connections` lowered
//! below the budget at runtime (`max_connections`). Two limits show in the figures and
//! are asserted as such: with the default statement timeout (10 s) a statement already
//! sent to a server frozen for 5 s waits for it (at most one request per connection of
//! the budget), while with 1 s the client gives up on it after the limit plus 2 s; and a
//! connection used within the last 500 ms is reused without a ping (the validation
//! bypass), so a killed idle connection fails the one statement sent on it next.
//!
//! Figures are printed (`cargo nextest run -p server --test faults --no-capture`, or
//! `FAULT_LOG=warn` for the app's warnings too).

// The set-up every test binary of this crate shares, and the fault tests' own helpers.
#[path = "../common/mod.rs"]
mod common;
#[path = "../fault_support/mod.rs"]
mod fault_support;

mod frozen;
mod frozen_with_statement_timeout;
mod idle;
mod killed;
mod max_connections;
mod restart;

use std::time::Duration;

use db_budget::Snapshot;
use fault_support::{CONNECT_TIMEOUT, MARGIN, POOL_TIMEOUT};

/// Load before the fault, to reach a steady state.
const WARM_UP: Duration = Duration::from_secs(4);
/// The load's ramp (clients starting) and a moment for the pools to settle: requests
/// sent before this are not part of the steady state checked before the fault.
const STEADY: Duration = Duration::from_millis(2500);
/// Load after the fault: the 2 s recovery window and then some.
const AFTER: Duration = Duration::from_secs(4);
/// "Within 2 s after the server is back the error rate is 0."
const RECOVERY: Duration = Duration::from_secs(2);

/// The longest a failing request may take: the waits the settings allow, plus margin.
fn fail_fast_bound() -> Duration {
    POOL_TIMEOUT + CONNECT_TIMEOUT + MARGIN
}

fn timeouts(s: &Snapshot) -> u64 {
    s.async_side.acquire_timeouts_total + s.sync_side.acquire_timeouts_total
}
