//! One connection budget across a fleet of server instances, coordinated through the
//! database server itself.
//!
//! # Why
//!
//! [`db_budget::Budget`] bounds one process. A game backend runs several instances
//! behind a load balancer, more at peak, and old and new ones side by side during a
//! deploy. A static split (`DB_INSTANCES` × `MAX_CONNECTIONS`) is safe but wastes what
//! idle instances do not use, while the hot one queues. This crate lets instances lend
//! each other connections without a coordinator of our own: the database server, which
//! every instance already reaches, keeps the leases as **user-level locks**
//! (`GET_LOCK`). A session may hold many, each is held by at most one session
//! server-wide, and the server frees a session's locks when the session ends, so a
//! crashed instance (`kill -9`) frees its leases at once, without a timeout to guess.
//!
//! # The arithmetic
//!
//! With `DB_FLEET_BUDGET` = F physical connections for the whole fleet, at most
//! `DB_INSTANCES` = N instances at once (count a deploy's overlap) and a floor of
//! `MAX_CONNECTIONS` = f each, the **lease pool** is P = F − N·f units, named by P locks
//! (`<fleet>.lease.0` …). Each instance's [`Budget`] is built with f + P units and starts
//! with the P above its floor [withheld](Budget::withhold), plus one more for this
//! crate's control connection, which counts inside the budget like any other.
//!
//! # The protocol (one control connection per instance, a tick every 100 ms)
//!
//! 1. Read every slot's holder (`IS_USED_LOCK`, one statement): which slots are free,
//!    which instances hold leases, which instances wait for one (a "want" lock each).
//! 2. Callers waiting and no unit to spare: take up to 4 free slots (`GET_LOCK(slot,
//!    0)`, one statement); each slot won is granted to the pools ([`Budget::grant`]).
//!    None left free: hold a want lock, so that the others see it, however many leases
//!    this instance holds already.
//! 3. Give one lease back per tick when: another instance wants and this one would
//!    have had a unit to spare in most ticks of the last second with the leases it holds
//!    now (its callers need the lease only in bursts); nobody wants and it had a unit to
//!    spare at every tick of the last second; or another instance has wanted for half a
//!    second without a break and this one holds more than its part (P over the
//!    instances holding or wanting, rounded up; rounded down while one that keeps
//!    wanting holds less than that), the tie-break between instances that are all
//!    short. While one keeps wanting, the others borrow no further than their part.
//!    For half a second after giving one back, an instance borrows nothing while
//!    another wants (the lease goes to the one that wants it), and one given back in
//!    vain (retaken by its giver) makes the next wait longer. The rules and why they do
//!    not flap: `policy.rs`.
//! 4. Giving back makes the unit **owed** ([`Budget::owe`]): from then on returned
//!    connections are closed instead of pooled, and [`Budget::reclaim`] queues for the
//!    first unit that comes free and takes it out of use. Only then, at the next tick
//!    (the server counts a closed connection a few milliseconds longer), does
//!    `RELEASE_LOCK` free the slot: it is never free while its unit is in use.
//!
//! # Why it cannot over-allocate
//!
//! Every instance holds at most f + (leases its live control session holds) units, and
//! a unit is granted only after its lock is won and withheld before its lock is
//! released. The server lets each lock be held by one session, so the leases together
//! are at most P, and the floors of at most N instances are N·f: F in all.
//!
//! **The window.** If the control connection is lost (a network cut, the server
//! killed it) while data connections live, the server frees its locks and another
//! instance may lease them at once, while this one still has connections above its
//! floor. This instance then owes every leased unit back and takes each as it comes free
//! (idle connections are closed at once, connections in use when they return, each
//! statement bounded by `DB_STATEMENT_TIMEOUT`), and leases nothing until it is back at
//! its floor.
//! For that long the fleet may exceed F by what the lost instance still held above its
//! floor. The server-side fence bounds it: the account's `MAX_USER_CONNECTIONS` = F
//! refuses the excess with ERROR 1226 for this app only, never 1040 for everyone.
//!
//! **Without the coordinator** (control connection cannot be opened), an instance
//! serves on its floor. That is safe as long as at most N instances run: N·f ≤ F.
//!
//! # Example
//!
//! ```no_run
//! # fn demo(url: db_budget::DatabaseUrl) -> Result<(), db_fleet::FleetError> {
//! use std::time::Duration;
//! use db_fleet::{Fleet, FleetSettings};
//!
//! let settings = FleetSettings::new(30, 5, 3, url.database());
//! let budget = db_budget::Budget::new(settings.capacity(), Duration::from_secs(30));
//! let fleet = Fleet::join(&budget, &url, settings)?;
//! // … build the pools on `budget` as usual; `fleet` leases units while they wait.
//! # drop(fleet); Ok(())
//! # }
//! ```

mod control;
mod policy;
#[cfg(test)]
mod policy_adversary;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use db_budget::{Budget, DatabaseUrl};
use serde::Serialize;

/// A fleet member's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetSettings {
    /// `DB_FLEET_BUDGET`: physical connections all instances together may hold.
    pub fleet_budget: u32,
    /// `DB_INSTANCES`: the most instances running at once, a deploy's overlap counted.
    pub instances: u32,
    /// `MAX_CONNECTIONS`: each instance's floor, its own without a lease (the control
    /// connection included).
    pub floor: u32,
    /// The longest the control connection waits for the server (connect and reads).
    /// Defaults to 5 s.
    pub connect_timeout: Duration,
    /// Prefixes the lock names, which are server-wide (the first 40 characters).
    pub name: String,
}

impl FleetSettings {
    /// The settings of a fleet named `name` (the database name is a good one).
    ///
    /// # Panics
    ///
    /// If the floors leave no lease pool (`fleet_budget <= instances * floor`), or the
    /// floor is below 2 (the control connection and one more).
    pub fn new(fleet_budget: u32, instances: u32, floor: u32, name: &str) -> FleetSettings {
        assert!(
            floor >= 2,
            "a fleet member's floor holds its control connection and at least one more"
        );
        assert!(
            instances.saturating_mul(floor) < fleet_budget,
            "the floors ({instances} × {floor}) leave no lease pool in a fleet budget of {fleet_budget}"
        );
        FleetSettings {
            fleet_budget,
            instances,
            floor,
            // The pools' connect timeout's default.
            connect_timeout: Duration::from_secs(5),
            name: name.to_owned(),
        }
    }

    /// The lease pool: the fleet budget less every instance's floor.
    pub fn pool(&self) -> u32 {
        self.fleet_budget - self.instances * self.floor
    }

    /// What this instance's [`Budget`] must be built with: its floor plus the pool.
    pub fn capacity(&self) -> u32 {
        self.floor + self.pool()
    }
}

/// Why an instance could not join its fleet.
#[derive(Debug)]
#[non_exhaustive]
pub enum FleetError {
    /// The budget was not built with [`FleetSettings::capacity`] units, or some were
    /// already in use (join before building the pools).
    Budget {
        /// Units the settings need.
        needed: u32,
        /// Units the budget has.
        capacity: u32,
        /// Units in use when joining.
        in_use: u32,
    },
    /// The control thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for FleetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FleetError::Budget {
                needed,
                capacity,
                in_use,
            } => write!(
                f,
                "a fleet member's budget needs {needed} units, none in use; it has {capacity}, {in_use} in use"
            ),
            FleetError::Thread(e) => write!(f, "cannot start the fleet's control thread: {e}"),
        }
    }
}

impl std::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FleetError::Thread(e) => Some(e),
            FleetError::Budget { .. } => None,
        }
    }
}

/// What the control thread shares with the handle.
#[derive(Debug, Default)]
struct State {
    stop: AtomicBool,
    connected: AtomicBool,
    /// Leases held now.
    leased: AtomicU32,
    /// Units leased on a lost control connection, not yet taken back.
    owed: AtomicU32,
    /// Whether this instance holds a "want" mark.
    wanting: AtomicBool,
    /// Other instances holding or wanting leases, at the last tick.
    others: AtomicU32,
    /// Times the control connection was lost.
    lost: AtomicU32,
}

/// A fleet member's state, as the snapshot shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetSnapshot {
    /// The settings.
    pub settings: FleetSettings,
    /// Whether the control connection is open.
    pub connected: bool,
    /// Leases this instance holds.
    pub leased: u32,
    /// Units leased on a lost control connection still in use here (0 normally).
    pub owed: u32,
    /// Whether this instance waits for a lease.
    pub wanting: bool,
    /// Other instances holding or waiting for leases, at the last look.
    pub others: u32,
    /// Times the control connection was lost (each time the instance dropped to its
    /// floor before leasing again).
    pub lost_total: u32,
}

/// This instance's membership of the fleet: the control thread, until dropped.
#[derive(Debug)]
pub struct Fleet {
    settings: FleetSettings,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Joins the fleet: withholds every unit of `budget` above the floor (and one for
    /// the control connection), then starts the control thread, which connects to
    /// `url` and leases units while the pools' callers wait. Until it connects, the
    /// instance serves on its floor.
    ///
    /// # Errors
    ///
    /// [`FleetError::Budget`] unless `budget` has [`FleetSettings::capacity`] units,
    /// none in use; [`FleetError::Thread`] if the thread cannot start.
    pub fn join(
        budget: &Budget,
        url: &DatabaseUrl,
        settings: FleetSettings,
    ) -> Result<Fleet, FleetError> {
        let needed = settings.capacity();
        let refused = FleetError::Budget {
            needed,
            capacity: budget.capacity(),
            in_use: budget.in_use(),
        };
        if budget.capacity() != needed || budget.withheld() != 0 || budget.in_use() != 0 {
            return Err(refused);
        }
        // The pool, and the control connection's unit.
        let above_floor = settings.pool() + 1;
        let took = budget.withhold(above_floor);
        if took < above_floor {
            budget.grant(took);
            return Err(refused);
        }
        let state = Arc::new(State::default());
        let thread = {
            let (budget, url, state) = (budget.clone(), url.clone(), state.clone());
            let settings = settings.clone();
            std::thread::Builder::new()
                .name("db-fleet".into())
                .spawn(move || control::run(budget, url, settings, state))
                .map_err(FleetError::Thread)?
        };
        Ok(Fleet {
            settings,
            state,
            thread: Some(thread),
        })
    }

    /// The member's state now.
    pub fn snapshot(&self) -> FleetSnapshot {
        self.handle().snapshot()
    }

    /// A handle that reads the member's state (for the admin pages) without keeping
    /// the membership.
    pub fn handle(&self) -> FleetHandle {
        FleetHandle {
            settings: self.settings.clone(),
            state: self.state.clone(),
        }
    }
}

/// Reads a [`Fleet`] member's state; cheap to clone. After the membership is dropped it
/// shows the state the control thread left.
#[derive(Debug, Clone)]
pub struct FleetHandle {
    settings: FleetSettings,
    state: Arc<State>,
}

impl FleetHandle {
    /// The member's state now.
    pub fn snapshot(&self) -> FleetSnapshot {
        let s = &self.state;
        FleetSnapshot {
            settings: self.settings.clone(),
            connected: s.connected.load(Relaxed),
            leased: s.leased.load(Relaxed),
            owed: s.owed.load(Relaxed),
            wanting: s.wanting.load(Relaxed),
            others: s.others.load(Relaxed),
            lost_total: s.lost.load(Relaxed),
        }
    }
}

impl Drop for Fleet {
    /// Stops the control thread: every leased unit leaves use first (free ones at once,
    /// ones in use as their connections come back, which are closed then), waiting at
    /// most 10 s; then it closes its connection, which frees every lease on the server.
    /// A unit still in use after that wait leaves use when it comes back, but its lease
    /// is already free: drop the fleet after closing the pools.
    fn drop(&mut self) {
        self.state.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
