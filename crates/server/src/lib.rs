//! The game server (under construction).
pub mod admin;
