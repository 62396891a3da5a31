//! What every API handler can reach.
//!
//! It holds no blocking pool: legacy modules reach it only through the counted shim,
//! `db_sync::get_database_connection()`, on the budget the server installs.

use std::sync::Arc;

use db_async::AsyncPool;
use retention::Retention;

use crate::auth::TokenKey;
use crate::shutdown::ShutdownHandle;

/// The API's shared state: cheap to clone (handles to shared pools and keys).
#[derive(Debug, Clone)]
pub struct AppState {
    /// Mints and checks player tokens.
    pub tokens: Arc<TokenKey>,
    /// New code: players, and (through [`Retention`]) quests and rewards.
    pub async_pool: AsyncPool,
    /// Daily quests and rewards.
    pub retention: Retention,
    /// Fires when the server starts shutting down (WebSockets close on it).
    pub shutdown: ShutdownHandle,
}
