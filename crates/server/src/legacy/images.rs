//! AI-generated images of a game, as the legacy Python server had them
//! (`generated_images.py`): blocking calls through the db-sync shim.
//!
//! Callers on the async runtime go through `tokio::task::spawn_blocking`; ownership of
//! the game is the caller's check (see [`super::saved_games::load_game`]).
//!
//! Port target: `db-async` (`cargo xtask sync-usage` counts what is left).

use db_budget::DbError;
use db_sync::SyncPool;
use serde::Serialize;
use serde_json::Value;

/// Most images [`list_game_images`] returns.
pub const LIST_LIMIT: u32 = 200;

/// One generated image's record (the image itself lives at `url`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedImage {
    /// The image's id.
    pub id: u64,
    /// Who asked for it.
    pub player_id: u64,
    /// The game it belongs to.
    pub game_id: u64,
    /// The prompt it was generated from.
    pub prompt: String,
    /// Where it is stored.
    pub url: String,
    /// Free-form JSON from the generator (model, seed, size, …).
    pub metadata: Value,
    /// RFC 3339, UTC.
    pub created_at: String,
}

type ImageRow = (u64, u64, u64, String, String, String, String);

const SELECT_IMAGE: &str = "SELECT id, player_id, game_id, prompt, url, metadata, \
     DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM generated_images";

fn to_image(
    (id, player_id, game_id, prompt, url, metadata, created_at): ImageRow,
) -> Result<GeneratedImage, DbError> {
    let metadata =
        serde_json::from_str(&metadata).map_err(|e| DbError::Decode { cause: e.into() })?;
    Ok(GeneratedImage {
        id,
        player_id,
        game_id,
        prompt,
        url,
        metadata,
        created_at,
    })
}

/// Records an image generated for `player_id` in game `game_id`, and returns it.
///
/// `metadata` is stored as its serialized JSON text.
///
/// # Errors
///
/// [`DbError`]; a missing game or player is a foreign-key error (code 1452).
pub fn save_generated_image(
    pool: &SyncPool,
    player_id: u64,
    game_id: u64,
    prompt: &str,
    url: &str,
    metadata: &str,
) -> Result<GeneratedImage, DbError> {
    let mut conn = pool.get()?;
    let row: ImageRow = conn.transaction(|tx| {
        let done = tx.execute(
            "INSERT INTO generated_images (player_id, game_id, prompt, url, metadata) \
             VALUES (?, ?, ?, ?, ?)",
            (player_id, game_id, prompt, url, metadata),
        )?;
        let id = done.last_insert_id.ok_or_else(|| {
            DbError::query(None, None, "INSERT into generated_images returned no id")
        })?;
        tx.fetch_one(&format!("{SELECT_IMAGE} WHERE id = ?"), (id,))
    })?;
    to_image(row)
}

/// The game's images, oldest first (at most [`LIST_LIMIT`]).
///
/// # Errors
///
/// [`DbError`] from the pool or the statement.
pub fn list_game_images(pool: &SyncPool, game_id: u64) -> Result<Vec<GeneratedImage>, DbError> {
    let mut conn = pool.get()?;
    let rows: Vec<ImageRow> = conn.fetch_all(
        &format!("{SELECT_IMAGE} WHERE game_id = ? ORDER BY id LIMIT ?"),
        (game_id, LIST_LIMIT),
    )?;
    rows.into_iter().map(to_image).collect()
}
