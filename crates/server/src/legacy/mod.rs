//! Legacy modules, kept in the blocking style of the Python server they were ported
//! from and running through the `db-sync` shim on the shared budget.
//!
//! Every function here blocks: call it inside `tokio::task::spawn_blocking` (see
//! [`crate::routes::blocking`]). They are what `cargo xtask sync-usage` counts; new code
//! goes to `db-async`.

pub mod saved_games;
