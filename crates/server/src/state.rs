//! What every API handler can reach.
//!
//! sync-usage: infrastructure (holds the blocking pool for handlers; goes when db-sync goes, not ported module by module).

use std::sync::Arc;

use db_async::AsyncPool;
use db_sync::SyncPool;
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
    /// Legacy modules (saved games, images), called through `spawn_blocking`.
    pub sync_pool: SyncPool,
    /// Daily quests and rewards.
    pub retention: Retention,
    /// Fires when the server starts shutting down (WebSockets close on it).
    pub shutdown: ShutdownHandle,
}
