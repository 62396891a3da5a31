//! The game server: the JSON API and WebSocket of the legacy Python server, on one
//! connection budget shared by new async code (players, quests, rewards) and legacy
//! blocking modules (saved games, generated images) called through `spawn_blocking`.
//!
//! - [`cli`]: the command line; [`settings`]: what it and the environment resolve to,
//!   validated; [`variables`]: the server's variables and their defaults; [`secret`]:
//!   the token key;
//! - [`startup`]: [`Application::build`](startup::Application::build) (budget, pools, server
//!   check, migrations, seeds, listeners) and graceful shutdown;
//! - [`routes`], [`ws`]: the API; [`auth`]: player tokens; [`error`]: the JSON errors;
//!   [`stored_json`]: what a `JSON` column accepts, checked before it is sent;
//! - [`legacy`]: the blocking modules over `db-sync`;
//! - [`admin`]: health, metrics and the dashboard on their own listener;
//! - [`memory`]: the malloc setting the server binary makes, and why.
//!
//! **Architecture Invariant:** only this crate knows about HTTP, and every database
//! connection it uses comes from the two pools built in [`startup`] on one budget.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod gameplay;
pub mod images;
pub mod legacy;
pub mod limits;
pub mod memory;
pub mod routes;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod stored_json;
pub mod telemetry;
pub mod variables;
pub mod ws;

pub use settings::Settings;
pub use startup::{Application, StartupError};
