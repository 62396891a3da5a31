//! The JSON API end to end, one module per concern like the routes: every route's
//! happy path, authentication and authorization failures, and bad bodies, against the
//! whole application on a private MariaDB. One test binary, so that the application
//! is linked once.

// The set-up every test binary of this crate shares.
#[path = "../common/mod.rs"]
mod common;

mod auth;
mod games;
mod images;
mod players;
mod quests;
mod refused_values;
mod rewards;
