//! Startup and shutdown, one module each: the server check against the database
//! server's limits and the required secret, with credentials kept out of every Debug
//! rendering (`check`); a graceful shutdown that leaves no budget unit in use, also with
//! legacy calls queued and with the database frozen (`shutdown`); the real binary, its
//! token command and SIGTERM (`binary`); joining a fleet (`fleet`); the database server's
//! view read by the running server (`server_view`); `ADMIN_TOKEN` and the control routes
//! in the running server (`controls`). One test binary, so that the application is
//! linked once.

// The set-up every test binary of this crate shares.
#[path = "../common/mod.rs"]
mod common;
// Headless Chromium, for the fleet's panel of the dashboard.
#[path = "../admin_support/browser.rs"]
#[allow(dead_code)]
mod browser;

mod adversary16;
mod binary;
mod check;
mod controls;
mod fleet;
mod server_view;
mod shutdown;
