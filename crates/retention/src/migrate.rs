//! The workspace's schema: the one migrations directory (`/migrations`), embedded.

use db_async::AsyncPool;
use sqlx::migrate::Migrator;

use crate::error::RetentionError;

/// Every migration of the workspace (`migrations/` at the workspace root), embedded at
/// compile time. The server, the tests and xtask all run this one migrator, so there is
/// one schema and no `CREATE TABLE` text anywhere else.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Applies the pending migrations on one pooled connection.
///
/// Safe to call from several processes at once: sqlx takes a per-database advisory
/// lock (`GET_LOCK`) around the run, and applied migrations are skipped (and checked
/// against their checksum).
///
/// # Errors
///
/// [`RetentionError::Db`] when no connection is available,
/// [`RetentionError::Migrate`] when a migration fails or an applied one was edited.
pub async fn migrate(pool: &AsyncPool) -> Result<(), RetentionError> {
    let mut conn = pool.acquire().await?;
    MIGRATOR.run(conn.raw().await?).await?;
    Ok(())
}
