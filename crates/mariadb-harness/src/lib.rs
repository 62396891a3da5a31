//! Private, throw-away MariaDB servers for tests.
//!
//! # Why
//!
//! The invariants of this workspace (connection budgets, cleanup after
//! cancellation, behaviour across restarts) can only be proven against a real
//! server, and only if each test owns that server: a test that restarts,
//! pauses or exhausts `max_connections` must not disturb any other test, and
//! no test may ever touch the machine's own MariaDB on port 3306. Running
//! `mariadb-install-db` per server is slow and has a long tail, so this crate
//! initialises one *template* data directory per machine and copies it for
//! every server (ARCHITECTURE.md, "Testing").
//!
//! Every `mariadbd` is spawned from one long-lived helper thread with
//! `PR_SET_PDEATHSIG = SIGKILL`, so servers die with the test process even
//! when a [`Server`] is never dropped (for example [`Server::shared`]).
//! Leftover data directories of dead processes are swept on first use.
//!
//! The [`oracle`] module provides an exact client-side count of open
//! connections to a server (an `LD_PRELOAD` shim built at runtime); the [`fake`]
//! module, stand-ins for pool tests that need no server (a refused port, a listener that
//! answers every connect with `ERROR 1040`).
//!
//! # Example
//!
//! ```no_run
//! use mariadb_harness::{Server, ServerOptions};
//!
//! # fn main() -> std::io::Result<()> {
//! // One server for the whole test process ...
//! let server = Server::shared();
//! // ... and one database per test.
//! let db = server.create_database("orders")?;
//! let url = server.app_url(&db); // mysql://app:app-secret@127.0.0.1:PORT/orders_...
//! server.sql(&format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))?;
//! # let _ = url;
//!
//! // A test that needs its own limits starts its own server.
//! let small = Server::start(ServerOptions { max_connections: 12, ..Default::default() })?;
//! assert_eq!(small.sql("SELECT @@max_connections")?.trim(), "12");
//! # Ok(())
//! # }
//! ```
//!
//! Requirements: Linux, the `mariadbd`, `mariadb-install-db`, `mariadb` and
//! `cp` programs (from the mariadb-server and mariadb-client packages), and
//! `cc` for the oracle shim.

mod ballast;
pub mod dev;
mod error;
pub mod fake;
mod freeze;
mod hash;
mod mariadbd;
mod options;
pub mod oracle;
mod paths;
mod programs;
mod publish;
mod ready;
mod server;
mod shim;
mod spawner;
mod sql;
mod template;

pub use ballast::Ballast;
pub use options::ServerOptions;
pub use server::{MIN_MAX_CONNECTIONS, Server};

/// Name of the application account (no SUPER-like privileges).
pub const APP_USER: &str = "app";
/// Password of the application account.
pub const APP_PASSWORD: &str = "app-secret";
