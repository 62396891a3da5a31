//! Saved games, as the legacy Python server had them (`saved_games.py`): blocking calls
//! through the db-sync shim, one pooled connection per call, returned by the guard's
//! drop on every path.
//!
//! Callers on the async runtime go through `tokio::task::spawn_blocking`. Each function
//! reaches the database exactly as legacy code does, through
//! `db_sync::get_database_connection()`: the running server installs its one budget
//! and its pools as the process-wide ones at startup, so the shim draws from the same
//! budget as everything else.
//!
//! Port target: `db-async` (`cargo xtask sync-usage` counts what is left).

use db_budget::DbError;
use db_sync::get_database_connection;
use serde::Serialize;
use serde_json::Value;

/// The largest accepted game state, as serialized JSON (1 MiB).
pub const MAX_STATE_BYTES: usize = 1024 * 1024;

/// Most recent games [`load_games`] lists.
pub const LIST_LIMIT: u32 = 100;

/// `DATETIME(6)` as RFC 3339 UTC text, in SQL (the columns hold UTC).
macro_rules! utc {
    ($column:literal) => {
        concat!("DATE_FORMAT(", $column, ", '%Y-%m-%dT%H:%i:%s.%fZ')")
    };
}

/// One saved game with its state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavedGame {
    /// The game's id.
    pub id: u64,
    /// Its owner.
    pub player_id: u64,
    /// The client's state, as it sent it.
    pub state: Value,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// One saved game without its state (listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedGameSummary {
    /// The game's id.
    pub id: u64,
    /// Its owner.
    pub player_id: u64,
    /// Size of the state in bytes (serialized JSON).
    pub state_bytes: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

type GameRow = (u64, u64, String, String, String);

fn to_game((id, player_id, state, created_at, updated_at): GameRow) -> Result<SavedGame, DbError> {
    let state = serde_json::from_str(&state).map_err(|e| DbError::Decode { cause: e.into() })?;
    Ok(SavedGame {
        id,
        player_id,
        state,
        created_at,
        updated_at,
    })
}

/// The game `game_id`, if it exists (whoever owns it: the caller checks).
///
/// # Errors
///
/// [`DbError`] from the pool or the statement.
pub fn load_game(game_id: u64) -> Result<Option<SavedGame>, DbError> {
    let mut conn = get_database_connection()?;
    let row: Option<GameRow> = conn.fetch_optional(
        concat!(
            "SELECT id, player_id, state, ",
            utc!("created_at"),
            ", ",
            utc!("updated_at"),
            " FROM saved_games WHERE id = ?"
        ),
        (game_id,),
    )?;
    row.map(to_game).transpose()
}

/// The owner of game `game_id`, if the game exists (a cheap ownership check).
///
/// # Errors
///
/// [`DbError`] from the pool or the statement.
pub fn game_owner(game_id: u64) -> Result<Option<u64>, DbError> {
    let mut conn = get_database_connection()?;
    let row: Option<(u64,)> =
        conn.fetch_optional("SELECT player_id FROM saved_games WHERE id = ?", (game_id,))?;
    Ok(row.map(|(owner,)| owner))
}

/// The player's [`LIST_LIMIT`] most recently updated games, newest first, without
/// their states.
///
/// # Errors
///
/// [`DbError`] from the pool or the statement.
pub fn load_games(player_id: u64) -> Result<Vec<SavedGameSummary>, DbError> {
    let mut conn = get_database_connection()?;
    let rows: Vec<(u64, u64, u64, String, String)> = conn.fetch_all(
        concat!(
            "SELECT id, player_id, LENGTH(state), ",
            utc!("created_at"),
            ", ",
            utc!("updated_at"),
            " FROM saved_games WHERE player_id = ? ORDER BY updated_at DESC, id DESC LIMIT ?"
        ),
        (player_id, LIST_LIMIT),
    )?;
    Ok(rows
        .into_iter()
        .map(
            |(id, player_id, state_bytes, created_at, updated_at)| SavedGameSummary {
                id,
                player_id,
                state_bytes,
                created_at,
                updated_at,
            },
        )
        .collect())
}

/// Stores a new saved game for `player_id` and returns it.
///
/// `state` is stored as its serialized JSON text; the caller enforces
/// [`MAX_STATE_BYTES`] (the HTTP layer answers 413 above it).
///
/// # Errors
///
/// [`DbError`]; a missing player is a foreign-key error (code 1452).
pub fn save_game(player_id: u64, state: &str) -> Result<SavedGame, DbError> {
    let mut conn = get_database_connection()?;
    let row: GameRow = conn.transaction(|tx| {
        let done = tx.execute(
            "INSERT INTO saved_games (player_id, state) VALUES (?, ?)",
            (player_id, state),
        )?;
        let id = done
            .last_insert_id
            .ok_or_else(|| DbError::query(None, None, "INSERT into saved_games returned no id"))?;
        tx.fetch_one(
            concat!(
                "SELECT id, player_id, state, ",
                utc!("created_at"),
                ", ",
                utc!("updated_at"),
                " FROM saved_games WHERE id = ?"
            ),
            (id,),
        )
    })?;
    to_game(row)
}
