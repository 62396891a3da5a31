//! Housekeeping of the idle connections: keepalive (`DB_KEEPALIVE`), the idle timeout
//! and each connection's jittered lifetime.
//!
//! # Why a pass of our own
//!
//! r2d2 has no keepalive, its reaper runs every 30 s, and it knows one lifetime for
//! the whole pool, so a fleet deployed together would reconnect together. So a pass
//! of ours runs on r2d2's thread pool every [`period`]. It takes the idle connections
//! out of r2d2's idle list (at most as many as are idle; `try_get` never opens one
//! and never waits), then:
//!
//! - puts back at once, in their order, those with nothing due;
//! - closes those idle past `DB_IDLE_TIMEOUT` and those past their own lifetime;
//! - pings those the server has not heard from for the keepalive interval (since
//!   their last use or ping), each put back right after its ping, so one slow ping
//!   holds only itself out of the list. One that fails its ping is closed, so a
//!   caller never gets it.
//!
//! A connection put back unused keeps its idle clock: the idle timeout still counts
//! from its last use.
//!
//! **Skipped while the pool is in use** (a caller holds or waits for a connection).
//! A caller that found the idle list empty while the pass had it would make r2d2 start
//! a connect: measured, under steady mixed load (BENCHMARKS.md section 7, 12 + 12
//! callers), the pass made about 5 connects a second where there are none without it,
//! and the server counted 11 connections for a budget of 8. While the pool is in use,
//! r2d2's own reaper (every 30 s, without taking connections out) closes what idles past
//! the idle timeout or the lifetime, and connections in use retire at their jittered
//! lifetime when returned. The idle list may also hold the placeholder a failed connect
//! leaves for a waiter, which the pass would destroy.

use std::time::Duration;

use db_budget::{CloseReason, PoolSettings};

use crate::connection::Managed;
use crate::manager::BudgetedManager;
use crate::state::State;

/// How often the pass runs: half the keepalive interval (if on) or half the idle
/// timeout, whichever is shorter, but at least every 30 s (r2d2's reaper rate) and at
/// most every 50 ms. With a keepalive of `k`, the server hears from an idle connection
/// at least every 1.5 `k`.
pub(crate) fn period(settings: &PoolSettings) -> Duration {
    let mut p = (settings.idle_timeout / 2).min(Duration::from_secs(30));
    if !settings.keepalive.is_zero() {
        p = p.min(settings.keepalive / 2);
    }
    p.max(Duration::from_millis(50))
}

/// What a pass does with one idle connection.
enum Due {
    Nothing,
    Close(CloseReason),
    Ping,
}

/// One pass over the idle connections (see the module docs). Does I/O (pings, the
/// closes' farewells), each bounded by the connect timeout: run it on a pool thread.
pub(crate) fn pass(pool: &r2d2::Pool<BudgetedManager>, state: &State) {
    let in_use = state.live_count() > state.idle_count();
    if state.is_closed() || state.waiters() > 0 || in_use {
        return;
    }
    let keepalive = state.settings.keepalive;
    let mut untouched = Vec::new();
    let mut closing = Vec::new();
    let mut ping = Vec::new();
    for _ in 0..state.idle_count() {
        let Some(mut pooled) = pool.try_get() else {
            break;
        };
        let due = match &mut *pooled {
            Managed::Live(slot) => {
                let quiet_for = slot.leave_idle();
                if slot.idle_for() >= state.settings.idle_timeout {
                    Due::Close(CloseReason::IdleTimeout)
                } else if slot.has_retired() {
                    Due::Close(CloseReason::MaxLifetime)
                } else if !keepalive.is_zero() && quiet_for >= keepalive {
                    Due::Ping
                } else {
                    Due::Nothing
                }
            }
            // A placeholder is destroyed when dropped; none should be idle while no
            // caller waits.
            Managed::Failed { .. } => Due::Close(CloseReason::Broken),
        };
        match due {
            Due::Nothing => untouched.push(pooled),
            Due::Ping => ping.push(pooled),
            Due::Close(reason) => {
                if let Managed::Live(slot) = &mut *pooled {
                    slot.doom(reason);
                }
                closing.push(pooled);
            }
        }
    }
    // r2d2's idle list is a stack: the first taken out was on top, so it goes back last.
    for mut pooled in untouched.into_iter().rev() {
        if let Managed::Live(slot) = &mut *pooled {
            slot.put_back_unused();
        }
        drop(pooled);
    }
    // Dropping a doomed connection returns it to r2d2, whose `has_broken` destroys it.
    drop(closing);
    for mut pooled in ping {
        if let Managed::Live(slot) = &mut *pooled
            && slot.keepalive_ping()
        {
            slot.put_back_unused();
        }
        drop(pooled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(idle: u64, keepalive: u64) -> PoolSettings {
        let mut s = PoolSettings::default();
        s.idle_timeout = Duration::from_millis(idle);
        s.keepalive = Duration::from_millis(keepalive);
        s
    }

    #[test]
    fn the_pass_runs_twice_per_keepalive_interval_or_idle_timeout_whichever_is_shorter() {
        assert_eq!(period(&settings(10_000, 120_000)), Duration::from_secs(5));
        assert_eq!(period(&settings(60_000, 1_000)), Duration::from_millis(500));
        assert_eq!(period(&settings(60_000, 0)), Duration::from_secs(30));
        assert_eq!(period(&settings(600_000, 0)), Duration::from_secs(30));
        assert_eq!(period(&settings(20, 0)), Duration::from_millis(50));
    }
}
