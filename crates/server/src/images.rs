//! AI-generated images of a game, on the async pool.
//!
//! Ported from the blocking `legacy/images.rs` (the worked example of MIGRATION.md):
//! same statements, same rows, same errors; `pool.get()?` became `pool.acquire().await?`,
//! the closure transaction an explicit `begin`/`commit`, and the handlers no longer need
//! `spawn_blocking`. Ownership of the game is the caller's check ([`game_owner`]).

use db_async::{AsyncPool, args};
use db_budget::DbError;
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

const SELECT_BY_ID: &str = "SELECT id, player_id, game_id, prompt, url, metadata, \
     DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM generated_images WHERE id = ?";

const SELECT_BY_GAME: &str = "SELECT id, player_id, game_id, prompt, url, metadata, \
     DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM generated_images \
     WHERE game_id = ? ORDER BY id LIMIT ?";

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

/// The owner of saved game `game_id`, if the game exists.
///
/// # Errors
///
/// [`DbError`] from the pool or the statement.
pub async fn game_owner(pool: &AsyncPool, game_id: u64) -> Result<Option<u64>, DbError> {
    let mut conn = pool.acquire().await?;
    let row: Option<(u64,)> = conn
        .fetch_optional(
            "SELECT player_id FROM saved_games WHERE id = ?",
            args![game_id],
        )
        .await?;
    Ok(row.map(|(owner,)| owner))
}

/// Records an image generated for `player_id` in game `game_id`, and returns it.
///
/// `metadata` is stored as its serialized JSON text.
///
/// # Errors
///
/// [`DbError`]; a missing game or player is a foreign-key error (code 1452).
pub async fn save_generated_image(
    pool: &AsyncPool,
    player_id: u64,
    game_id: u64,
    prompt: &str,
    url: &str,
    metadata: &str,
) -> Result<GeneratedImage, DbError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let done = tx
        .execute(
            "INSERT INTO generated_images (player_id, game_id, prompt, url, metadata) \
             VALUES (?, ?, ?, ?, ?)",
            args![player_id, game_id, prompt, url, metadata],
        )
        .await?;
    let id = done
        .last_insert_id
        .ok_or_else(|| DbError::query(None, None, "INSERT into generated_images returned no id"))?;
    let row: ImageRow = tx.fetch_one(SELECT_BY_ID, args![id]).await?;
    tx.commit().await?;
    to_image(row)
}

/// The game's images, oldest first (at most [`LIST_LIMIT`]).
///
/// # Errors
///
/// [`DbError`] from the pool or the statement.
pub async fn list_game_images(
    pool: &AsyncPool,
    game_id: u64,
) -> Result<Vec<GeneratedImage>, DbError> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<ImageRow> = conn
        .fetch_all(SELECT_BY_GAME, args![game_id, LIST_LIMIT])
        .await?;
    rows.into_iter().map(to_image).collect()
}
