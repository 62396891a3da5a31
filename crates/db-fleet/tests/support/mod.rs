//! What both test files of this crate build on: a fleet of members in one process, each a
//! budget with a blocking pool and its membership, on a database of the harness's server.

use std::time::{Duration, Instant};

use db_budget::{Budget, DatabaseUrl};
use db_fleet::{Fleet, FleetSettings};
use db_sync::SyncPool;
use mariadb_harness::Server;

/// One instance: its budget, pool and fleet membership (`None` once it has left).
pub struct Member {
    pub budget: Budget,
    pub pool: SyncPool,
    pub fleet: Option<Fleet>,
}

impl Member {
    pub fn fleet(&self) -> &Fleet {
        self.fleet.as_ref().expect("still a member")
    }
}

/// A member joined to the fleet of `settings`, its pool built after joining.
pub fn member(url: &DatabaseUrl, settings: &FleetSettings) -> Member {
    let budget = Budget::new(settings.capacity(), Duration::from_secs(30));
    let fleet = Fleet::join(&budget, url, settings.clone()).expect("join the fleet");
    let pool = SyncPool::builder(url.clone(), budget.clone())
        .pool_timeout(Duration::from_secs(10))
        .build();
    Member {
        budget,
        pool,
        fleet: Some(fleet),
    }
}

/// A fresh database on the shared server: its URL for the app account, and its name
/// (the fleet's name too, so that tests never share lock names).
pub fn fleet(prefix: &str) -> (&'static Server, DatabaseUrl, String) {
    let server = Server::shared();
    let db = server.create_database(prefix).expect("create database");
    let url = DatabaseUrl::parse(&server.app_url(&db)).expect("url");
    (server, url, db)
}

/// Whether `cond` holds within `within` (checked every 10 ms).
pub fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}
