//! `POST /api/players` (sign-up, no token needed) and `GET /api/players/{id}`. New code:
//! async pool.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use db_async::{AsyncPool, args};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::OwnPlayer;
use crate::error::{ApiError, InternalError};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Longest player name, in characters (the column is `VARCHAR(32)`, utf8mb4).
pub const MAX_NAME_CHARS: usize = 32;

/// `POST /api/players` body.
#[derive(Debug, Deserialize)]
pub struct NewPlayer {
    /// 1–32 printable characters once leading and trailing whitespace is removed;
    /// stored (and returned) trimmed, otherwise exactly as sent.
    pub name: String,
}

/// A player name as it is stored: `raw` without leading and trailing whitespace, checked
/// by [`validate_name`].
///
/// # Errors
///
/// [`ApiError::Invalid`] saying what is wrong with the trimmed name.
pub fn normalize_name(raw: &str) -> Result<&str, ApiError> {
    let name = raw.trim();
    validate_name(name)?;
    Ok(name)
}

/// Checks a player name: 1 to [`MAX_NAME_CHARS`] characters, not only spaces, no control
/// or invisible formatting characters. Anything else (quotes, semicolons, any script,
/// emoji) is fine: names are always bound as parameters, never spliced into SQL.
/// Sign-up trims the name first ([`normalize_name`]).
///
/// # Errors
///
/// [`ApiError::Invalid`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::Invalid(
            "name must not be empty or only whitespace".to_owned(),
        ));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(ApiError::Invalid(format!(
            "name must have 1 to {MAX_NAME_CHARS} characters, got {chars}"
        )));
    }
    if let Some(c) = name.chars().find(|c| !is_printable(*c)) {
        return Err(ApiError::Invalid(format!(
            "name must contain printable characters only, found U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Not a control character, and not one of the invisible format characters used to
/// spoof names (zero-width, bidi overrides, BOM).
fn is_printable(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
        )
}

/// Creates a player; answers 201 with its id, name (trimmed) and bearer token.
///
/// # Errors
///
/// 422 for a bad name; 400/415/422 for a bad body; 503 when the database is busy.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewPlayer>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = normalize_name(&body.name)?;
    let mut conn = state.async_pool.acquire().await?;
    let done = conn
        .execute("INSERT INTO players (name) VALUES (?)", args![name])
        .await?;
    drop(conn);
    let id = done
        .last_insert_id
        .ok_or(InternalError::Bug("INSERT into players returned no id"))?;
    tracing::info!(player_id = id, "player created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "name": name, "token": state.tokens.mint(id) })),
    ))
}

/// Fails with 404 unless player `player_id` exists.
///
/// # Errors
///
/// [`ApiError::NotFound`]; 503 when the database is busy or unreachable.
pub async fn require_player(pool: &AsyncPool, player_id: u64) -> Result<(), ApiError> {
    let mut conn = pool.acquire().await?;
    let found: Option<(u64,)> = conn
        .fetch_optional("SELECT id FROM players WHERE id = ?", args![player_id])
        .await?;
    drop(conn);
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("player {player_id} not found")))
}

/// The player's name, creation time and balance.
///
/// # Errors
///
/// 401/403; 404 for a player that does not exist; 503.
pub async fn show(
    State(state): State<AppState>,
    OwnPlayer(id): OwnPlayer,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.async_pool.acquire().await?;
    let row: Option<(u64, String, String)> = conn
        .fetch_optional(
            "SELECT id, name, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') \
             FROM players WHERE id = ?",
            args![id],
        )
        .await?;
    drop(conn);
    let (id, name, created_at) =
        row.ok_or_else(|| ApiError::NotFound(format!("player {id} not found")))?;
    let balance = state.retention.balance(id).await?;
    Ok(Json(json!({
        "id": id,
        "name": name,
        "created_at": created_at,
        "coins": balance.coins,
        "xp": balance.xp,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_any_script_and_with_sql_metacharacters_are_accepted() {
        for ok in [
            "a",
            "Zoë",
            "玩家一号",
            "Robert'); DROP TABLE players;--",
            "\" OR 1=1 --",
            "🐉 dragon",
            "x".repeat(32).as_str(),
            "é".repeat(32).as_str(),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn sign_up_trims_a_name_before_checking_it() {
        assert_eq!(normalize_name("  Ada\t").unwrap(), "Ada");
        assert_eq!(normalize_name("\u{3000}玩家 一号\n").unwrap(), "玩家 一号");
        let full = "x".repeat(32);
        assert_eq!(normalize_name(&format!(" {full} ")).unwrap(), full);
        assert!(normalize_name(&format!(" {full}x ")).is_err());
        assert!(normalize_name(" \t\n ").is_err());
        assert!(
            normalize_name(" a\tb ").is_err(),
            "inside, a tab is still refused"
        );
    }

    #[test]
    fn empty_long_blank_and_control_names_are_refused() {
        for bad in [
            "",
            "   ",
            "x".repeat(33).as_str(),
            "tab\there",
            "new\nline",
            "nul\0",
            "bell\u{7}",
            "zero\u{200B}width",
            "\u{202E}reversed",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
