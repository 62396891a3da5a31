//! How the budget splits itself between the sides when both want more than it has.
//!
//! # Why shares
//!
//! A unit changes side only by closing a physical connection on one side and opening a
//! new one on the other (the two drivers cannot share a socket). Handing units over per
//! request, whenever the other side has a waiter, is therefore the legacy
//! connect-per-call pattern in disguise: under steady mixed load it made hundreds of
//! connects per thousand requests, and the server, which counts a closed connection for
//! a few milliseconds after it is gone, saw more connections than the budget and refused
//! with ERROR 1040 once the reserve was small.
//!
//! So each side has a **share**, the units it may keep against the other side's waiters,
//! and a unit changes side only to bring the holdings back to the shares:
//!
//! - **A quiet side gives everything at once.** A side is quiet when nobody on it has
//!   checked out, waited for or taken a connection for [`QUIET`]. Its share is 0, so
//!   every idle connection it holds goes to the other side's waiters within
//!   milliseconds (invariant I2). When both sides are quiet both shares are 0: the side
//!   that wakes first may take the other's idle connections at once.
//!   "Quiet" adapts to the side's rhythm: four of its usual gaps between requests if
//!   that is longer than [`QUIET`] (up to [`QUIET_MAX`]), so a side with a request every
//!   60 ms is steady, not quiet between its requests. The bound matters: the gaps feed
//!   on themselves when a side's requests follow the other side's (a handler that calls
//!   blocking code, then async code): the other side waits out this side's quiet time,
//!   which delays this side's next request, which lengthens its gap. So idle units are
//!   never kept against a waiter for longer than [`QUIET_MAX`], well under any pool
//!   timeout.
//! - **What an unhurried side does not use goes at once.** A busy side that had nobody
//!   waiting lately (for [`NEED_HALF`] to twice that) and holds a share more than
//!   [`NEED_MARGIN`] above the most connections it used at once in that time drops its
//!   share to that peak plus the margin at once, so its idle connections go to the
//!   other side's waiters within milliseconds; the margin keeps it from flapping when
//!   its use varies by a unit or two. A surplus of a single unit waits for the next
//!   [`STEP`] like any other move (under load, use that wavers by one would otherwise
//!   move the share back and forth), and a drop counts as that step.
//! - **A side that wakes gets one unit at once.** Its share becomes 1 at the next tick
//!   ([`TICK`]), so its first caller waits at most for the other side's next return.
//!   With a budget of one unit the sides take turns, the unit changing side at most once
//!   per [`STEP`].
//! - **When both sides are busy, the shares follow demand, slowly.** Demand is the
//!   callers running plus waiting on a side, smoothed over [`WINDOW`]. The target is
//!   max-min fair: a side that needs less than half the budget is given what it needs
//!   and the other side the rest; when both need more than half, each gets half (so a
//!   side with few callers is never starved by one with many: its callers wait behind
//!   at most half the budget's worth of its own slow statements). Each busy side keeps
//!   at least one unit. A share moves by one unit at a time, at most once per [`STEP`],
//!   and only once the target is more than [`HYSTERESIS`] away from it. Under steady load the shares stop moving and
//!   no unit changes side at all; when demand does shift, at most one connection per
//!   `STEP` is closed and reopened elsewhere.
//!
//! The shares only decide who gives up what; a free unit still goes to whoever asks, so
//! a side alone can use the whole budget. `HandOver::Eager` keeps the earlier policy
//! (fixed fair halves, an idle connection handed over whenever its side has nobody
//! waiting at that instant) for comparison.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};
use std::sync::{OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

mod controller;

use crate::shared::Shared;
use crate::side::Side;
use controller::Controller;
pub(crate) use controller::Demand;

/// How often the shares are recomputed.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// Once both sides have been quiet for [`QUIET_MAX`] (both shares are 0 then), the
/// controller sleeps until a checkout or a waiter wakes it, or this long at most.
pub(crate) const REST: Duration = Duration::from_secs(1);
/// A side with no caller running or waiting, and no checkout, for this long is quiet
/// (or for four of its usual gaps between requests, if longer: see `quiet_after`).
pub(crate) const QUIET: Duration = Duration::from_millis(20);
/// The longest quiet time, whatever a side's usual gap: the longest a side's idle units
/// are kept from the other side's waiters (keep it well under `DB_POOL_TIMEOUT`).
pub(crate) const QUIET_MAX: Duration = Duration::from_millis(500);
/// The weight of a new gap sample in a side's smoothed gap.
pub(crate) const GAP_WEIGHT: f64 = 0.25;
/// A side's recent use and waiting are remembered for between one and two of these.
pub(crate) const NEED_HALF: Duration = Duration::from_millis(200);
/// An unhurried side keeps this many units beyond what it used at once lately.
pub(crate) const NEED_MARGIN: u32 = 2;
/// The time constant of the smoothed demand.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);
/// A share moves by one unit at most this often while both sides are busy.
pub(crate) const STEP: Duration = Duration::from_millis(250);
/// How far (in units) beyond the half-unit the target must be from a share
/// before the share moves: without it, a target of 3.5 would flip a unit back and forth.
pub(crate) const HYSTERESIS: f64 = 0.25;

/// Which policy decides when a connection changes side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HandOver {
    /// Shares that follow demand with hysteresis (this module's docs). The default.
    #[default]
    Damped,
    /// The earlier policy: each side's fair half is `⌈capacity / 2⌉`, and an idle
    /// connection goes to the other side whenever nobody on its own side waits at that
    /// instant. Kept to measure against; it reconnects often under mixed load.
    Eager,
}

impl HandOver {
    /// The value of `DB_HANDOVER`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandOver::Damped => "damped",
            HandOver::Eager => "eager",
        }
    }

    /// Parses `damped` or `eager`.
    pub fn parse(s: &str) -> Option<HandOver> {
        match s {
            "damped" => Some(HandOver::Damped),
            "eager" => Some(HandOver::Eager),
            _ => None,
        }
    }
}

/// The shares as the hot path reads them (atomics only), and the policy.
#[derive(Debug)]
pub(crate) struct Shares {
    capacity: u32,
    share: [AtomicU32; 2],
    policy: AtomicU8,
    /// Set while the controller rests (see [`Shares::demand_rose`]).
    resting: AtomicBool,
    /// The controller's thread, to wake it.
    controller: OnceLock<Thread>,
    /// Tests set the shares by hand; the controller then leaves them alone.
    #[cfg(test)]
    pinned: std::sync::atomic::AtomicBool,
}

impl Shares {
    pub(crate) fn new(capacity: u32) -> Shares {
        let half = capacity.div_ceil(2);
        Shares {
            capacity,
            share: [AtomicU32::new(half), AtomicU32::new(capacity - half)],
            policy: AtomicU8::new(0),
            resting: AtomicBool::new(false),
            controller: OnceLock::new(),
            #[cfg(test)]
            pinned: Default::default(),
        }
    }

    /// Sets the shares by hand and keeps the controller from changing them.
    #[cfg(test)]
    pub(crate) fn pin(&self, shares: [u32; 2]) {
        self.pinned.store(true, Relaxed);
        self.store(shares);
    }

    /// The share of `side`; under [`HandOver::Eager`], the fair half it keeps.
    pub(crate) fn of(&self, side: Side) -> u32 {
        match self.policy() {
            HandOver::Damped => self.share[side.index()].load(Relaxed),
            HandOver::Eager => self.capacity.div_ceil(2),
        }
    }

    /// The controller's update.
    fn set(&self, shares: [u32; 2]) {
        #[cfg(test)]
        if self.pinned.load(Relaxed) {
            return;
        }
        self.store(shares);
    }

    fn store(&self, shares: [u32; 2]) {
        for side in Side::ALL {
            self.share[side.index()].store(shares[side.index()], Relaxed);
        }
    }

    /// Called by the hot path right after a side's demand rose (a checkout's `active`,
    /// a waiter's gauge, each raised with `SeqCst`): wakes a resting controller. Costs
    /// one load otherwise.
    ///
    /// Why nothing is missed: the controller sets `resting` (`SeqCst`), then a fence,
    /// then samples the demand once more before it sleeps. Either this load sees
    /// `resting` and wakes it, or the raise came before `resting` was set in the
    /// `SeqCst` order and that last sample sees it.
    pub(crate) fn demand_rose(&self) {
        if self.resting.load(SeqCst)
            && self.resting.swap(false, SeqCst)
            && let Some(t) = self.controller.get()
        {
            t.unpark();
        }
    }

    pub(crate) fn policy(&self) -> HandOver {
        match self.policy.load(Relaxed) {
            1 => HandOver::Eager,
            _ => HandOver::Damped,
        }
    }

    pub(crate) fn set_policy(&self, policy: HandOver) {
        let v = match policy {
            HandOver::Damped => 0,
            HandOver::Eager => 1,
        };
        self.policy.store(v, Relaxed);
    }
}

impl Shared {
    /// One side's demand as the controller samples it.
    pub(crate) fn demand_of(&self, side: Side) -> Demand {
        let stats = self.stats(side);
        Demand {
            running: stats.active.load(Relaxed),
            waiting: stats
                .waiting
                .load(Relaxed)
                .max(stats.budget_waiting.load(Relaxed)),
            checkouts: stats.acquire.count(),
        }
    }
}

/// Starts the thread that recomputes the shares every [`TICK`], or rests while nobody
/// uses the budget (see [`REST`]); it ends on its own once the budget is dropped.
pub(crate) fn spawn_allocator(shared: Weak<Shared>, capacity: u32) {
    let spawned = std::thread::Builder::new()
        .name("db-budget-shares".into())
        .spawn(move || {
            let mut controller = Controller::new(capacity);
            let mut pause = TICK;
            if let Some(shared) = shared.upgrade() {
                // Before it can rest: whoever wakes it finds it.
                let _ = shared.shares.controller.set(std::thread::current());
            }
            loop {
                std::thread::park_timeout(pause);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.shares.resting.store(false, SeqCst);
                let tick = |controller: &mut Controller| {
                    let demand = [shared.demand_of(Side::Async), shared.demand_of(Side::Sync)];
                    let shares = controller.tick(Instant::now(), demand, shared.usable());
                    shared.shares.set(shares);
                };
                tick(&mut controller);
                pause = TICK;
                if controller.resting(Instant::now()) {
                    shared.shares.resting.store(true, SeqCst);
                    std::sync::atomic::fence(SeqCst);
                    // A demand raised before `resting` was visible: this sample sees it.
                    tick(&mut controller);
                    if controller.resting(Instant::now()) {
                        pause = REST;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread the shares stay at the halves they start with: units still
        // move to a waiting side, only not past half of the budget.
        tracing::error!(error = %e, "could not start the budget's share controller");
    }
}
