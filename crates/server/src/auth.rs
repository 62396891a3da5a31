//! Player tokens: `<player_id>.<hex(HMAC-SHA256(SERVER_SECRET, "player:<player_id>"))>`.
//!
//! A token proves which player the bearer is and nothing else (no expiry, no scopes):
//! it is what the legacy client stored after sign-up. Changing `SERVER_SECRET` revokes
//! every token. Tokens are checked with the MAC's constant-time comparison.
//!
//! Handlers of `/api/players/{id}/…` take an [`OwnPlayer`] (401 when the token is missing
//! or wrong, 403 when `{id}` is somebody else); handlers of a game take an [`AuthPlayer`]
//! and call [`AuthPlayer::require`] with the game's owner.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ApiError, InternalError};
use crate::secret::Secret;
use crate::state::AppState;

type HmacSha256 = Hmac<Sha256>;

/// Mints and checks player tokens with one key.
#[derive(Clone)]
pub struct TokenKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

impl TokenKey {
    /// A key from the server secret.
    pub fn new(secret: &Secret) -> TokenKey {
        TokenKey {
            mac: HmacSha256::new_from_slice(secret.expose())
                .expect("HMAC accepts keys of any length"),
        }
    }

    fn tag(&self, player_id: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(format!("player:{player_id}").as_bytes());
        mac
    }

    /// The token of `player_id`.
    pub fn mint(&self, player_id: u64) -> String {
        let tag = self.tag(player_id).finalize().into_bytes();
        format!("{player_id}.{}", hex(&tag))
    }

    /// The player a token belongs to, if it was minted with this key.
    pub fn verify(&self, token: &str) -> Option<u64> {
        let (id, tag) = token.split_once('.')?;
        // Only the canonical decimal form: "007" or "+7" are not tokens we minted.
        if id.is_empty()
            || !id.bytes().all(|b| b.is_ascii_digit())
            || (id.len() > 1 && id.starts_with('0'))
        {
            return None;
        }
        let player_id: u64 = id.parse().ok()?;
        let tag = unhex(tag)?;
        self.tag(player_id).verify_slice(&tag).ok()?;
        Some(player_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

/// The player the request's `Authorization: Bearer <token>` belongs to.
///
/// Rejects with 401 (JSON, `WWW-Authenticate: Bearer`) when the header is missing, not a
/// bearer token, or the token does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPlayer(pub u64);

impl AuthPlayer {
    /// Allows the request only for the player's own data: 403 when `player_id` (from the
    /// path, or the owner of a game) is somebody else.
    ///
    /// # Errors
    ///
    /// [`ApiError::Forbidden`].
    pub fn require(self, player_id: u64) -> Result<(), ApiError> {
        if self.0 == player_id {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the request's bearer token, if it has an `Authorization` header.
///
/// `Ok(None)` without the header; 401 when the header is there but wrong.
///
/// # Errors
///
/// [`ApiError::Unauthorized`].
pub fn player_from_headers(
    headers: &HeaderMap,
    key: &TokenKey,
) -> Result<Option<AuthPlayer>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(bearer)
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ))?;
    key.verify(token)
        .map(|id| Some(AuthPlayer(id)))
        .ok_or(ApiError::Unauthorized("the token is not valid"))
}

/// The player of the path's `{id}`, who must be the bearer of the request's token.
///
/// Checked before the body is read: 401 without a valid token, 400 when `{id}` is not a
/// number, 403 when it is another player. Routes under `/api/players/{id}/…` take this
/// instead of [`AuthPlayer`], so the ownership check cannot be forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnPlayer(pub u64);

impl FromRequestParts<AppState> for OwnPlayer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = AuthPlayer::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::Rejected {
                status: r.status(),
                message: r.body_text(),
            })?;
        let raw = params
            .iter()
            .find_map(|(name, value)| (name == "id").then_some(value))
            .ok_or(InternalError::Bug("OwnPlayer on a route without {id}"))?;
        let id: u64 = raw
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("player id {raw:?} is not a number")))?;
        auth.require(id)?;
        Ok(OwnPlayer(id))
    }
}

impl FromRequestParts<AppState> for AuthPlayer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        player_from_headers(&parts.headers, &state.tokens)?.ok_or(ApiError::Unauthorized(
            "this route needs `Authorization: Bearer <token>`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> TokenKey {
        TokenKey::new(&Secret::new(secret).unwrap())
    }

    #[test]
    fn a_minted_token_verifies_as_its_player() {
        let k = key("a-secret-of-16-bytes-or-more");
        let token = k.mint(42);
        assert!(token.starts_with("42."), "{token}");
        assert_eq!(token.len(), 3 + 64);
        assert_eq!(k.verify(&token), Some(42));
    }

    #[test]
    fn a_token_does_not_verify_under_another_secret_or_for_another_player() {
        let k = key("a-secret-of-16-bytes-or-more");
        let other = key("another-secret-of-16-bytes");
        assert_eq!(other.verify(&k.mint(42)), None);
        let forged = format!("43.{}", k.mint(42).split_once('.').unwrap().1);
        assert_eq!(k.verify(&forged), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let k = key("a-secret-of-16-bytes-or-more");
        let good = k.mint(7);
        let tag = good.split_once('.').unwrap().1;
        for bad in [
            String::new(),
            "7".into(),
            "7.".into(),
            format!("07.{tag}"),
            format!("+7.{tag}"),
            format!("7.{}", tag.to_uppercase()),
            format!("7.{}", &tag[..62]),
            format!("7.{tag}00"),
            format!("99999999999999999999999.{tag}"),
            format!("7.{}g", &tag[..63]),
        ] {
            assert_eq!(k.verify(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bearer_accepts_any_case_of_the_scheme() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
