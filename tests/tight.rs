//! A private server that leaves the application exactly its budget's slots, to judge
//! the server's late count of closed connections: its `Max_used_connections` beside the
//! slots held by others, and the logins it refused.
//!
//! MariaDB takes no `max_connections` below 10, so the server has 10 and idle sessions of
//! another process (`Server::hold_slots`) hold all but the budget's. One connection counted
//! beyond the budget is then a refused login (`Aborted_connects`).

use std::time::Duration;

use db_budget::Budget;
use mariadb_harness::Ballast;

use crate::{MIN_MAX_CONNECTIONS, Server, ServerOptions, TestDb, eventually};

/// A private server with every slot but `units` held, and a database on it.
#[derive(Debug)]
pub struct TightServer {
    pub server: Server,
    pub db: TestDb,
    held: Option<Ballast>,
    held_slots: u64,
    refused_before: u64,
}

impl TightServer {
    /// Starts the server, creates the database `prefix`, and holds every slot but
    /// `units`. Call [`TightServer::arm`] once the pools are built.
    pub fn start(prefix: &str, units: u32) -> TightServer {
        crate::init_tracing();
        let server = Server::start(ServerOptions {
            max_connections: MIN_MAX_CONNECTIONS,
            ..Default::default()
        })
        .expect("private server");
        let held_slots = MIN_MAX_CONNECTIONS - units;
        let db = TestDb::create(&server, prefix);
        let held = server
            .hold_slots(held_slots as usize)
            .expect("hold the other slots");
        TightServer {
            server,
            db,
            held: Some(held),
            held_slots: u64::from(held_slots),
            refused_before: 0,
        }
    }

    /// Resets the server's counters (`FLUSH STATUS`): the figures count from here.
    pub fn arm(&mut self) {
        self.server.sql("FLUSH STATUS").expect("reset the counters");
        self.refused_before = refused_logins(&self.server);
    }

    /// `Max_used_connections` less the held slots: the most the server counted of ours
    /// (and of the one status reader, so read it when nothing of ours is open).
    pub fn max_used_of_ours(&self) -> u64 {
        self.server
            .global_status("Max_used_connections")
            .expect("status")
            - self.held_slots
    }

    /// Logins refused for want of a slot, and connects refused at accept, since
    /// [`TightServer::arm`].
    pub fn refused(&self) -> u64 {
        refused_logins(&self.server) - self.refused_before
    }

    /// Lets the held slots go.
    pub fn release(&mut self) {
        drop(self.held.take());
    }
}

/// `Connection_errors_max_connections` (refused at accept) plus `Aborted_connects`
/// (logins refused, ERROR 1040 among them).
pub fn refused_logins(server: &Server) -> u64 {
    server
        .global_status("Connection_errors_max_connections")
        .expect("status")
        + server.global_status("Aborted_connects").expect("status")
}

/// Waits until every unit of `budget` is back, none lingering, after its pools were
/// dropped; fails naming `prefix` if one is not within 10 s.
pub fn assert_units_back(prefix: &str, budget: &Budget) {
    assert!(
        eventually(Duration::from_secs(10), || budget.in_use() == 0
            && budget.lingering() == 0),
        "{prefix}: a unit was lost: {}",
        budget.snapshot()
    );
}
