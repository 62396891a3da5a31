//! The server's secrets, which nothing prints: the key that signs player tokens
//! (`SERVER_SECRET`) and the bearer token of the admin listener's control routes
//! (`ADMIN_TOKEN`).

use std::fmt;

use db_budget::ConfigError;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The shortest accepted `SERVER_SECRET`, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The key that signs player tokens. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` after checking its length.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for `SERVER_SECRET` (not showing the value) when it is shorter
    /// than [`MIN_SECRET_BYTES`].
    pub fn new(value: impl Into<String>) -> Result<Secret, ConfigError> {
        let value = value.into();
        if value.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::custom(
                "SERVER_SECRET",
                "(hidden)",
                format!(
                    "it is {} bytes long; use at least {MIN_SECRET_BYTES} random bytes \
                     (e.g. the output of `openssl rand -hex 32`)",
                    value.len()
                ),
            ));
        }
        Ok(Secret(value))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The shortest accepted `ADMIN_TOKEN`, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = MIN_SECRET_BYTES;

/// The bearer token of the admin listener's control routes (`ADMIN_TOKEN`). `Debug`
/// never shows it, and it is kept only as a MAC, against which a presented token is
/// checked in constant time.
#[derive(Clone)]
pub struct AdminToken {
    /// The MAC of the token (the token as the key): a presented token matches when its
    /// MAC is the same.
    tag: Vec<u8>,
}

/// What the MAC of an admin token is computed over.
const ADMIN_TOKEN_CONTEXT: &[u8] = b"ADMIN_TOKEN";

impl AdminToken {
    /// Wraps `value` after checking its length.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for `ADMIN_TOKEN` (not showing the value) when it is shorter
    /// than [`MIN_ADMIN_TOKEN_BYTES`].
    pub fn new(value: &str) -> Result<AdminToken, ConfigError> {
        if value.len() < MIN_ADMIN_TOKEN_BYTES {
            return Err(ConfigError::custom(
                "ADMIN_TOKEN",
                "(hidden)",
                format!(
                    "it is {} bytes long; use at least {MIN_ADMIN_TOKEN_BYTES} random bytes \
                     (e.g. the output of `openssl rand -hex 32`), or unset it to turn the \
                     admin listener's control routes off",
                    value.len()
                ),
            ));
        }
        Ok(AdminToken {
            tag: admin_mac(value.as_bytes()).finalize().into_bytes().to_vec(),
        })
    }

    /// Whether `presented` is this token, compared in constant time (of the stored
    /// token's content; the presented token's length shows only in its own MAC's time).
    pub fn matches(&self, presented: &str) -> bool {
        admin_mac(presented.as_bytes())
            .verify_slice(&self.tag)
            .is_ok()
    }
}

fn admin_mac(key: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(ADMIN_TOKEN_CONTEXT);
    mac
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "admin-0123456789abcdef";

    #[test]
    fn an_admin_token_matches_itself_only() {
        let token = AdminToken::new(TOKEN).unwrap();
        assert!(token.matches(TOKEN));
        for other in [
            "",
            "admin-0123456789abcde",
            "admin-0123456789abcdeg",
            "ADMIN-0123456789abcdef",
        ] {
            assert!(!token.matches(other), "{other:?}");
        }
        assert!(!token.matches(&format!("{TOKEN} ")));
    }

    #[test]
    fn a_short_admin_token_is_refused_naming_the_variable_without_showing_it() {
        let err = AdminToken::new("short-token").unwrap_err().to_string();
        assert!(err.starts_with("invalid ADMIN_TOKEN="), "{err}");
        assert!(err.contains("at least 16"), "{err}");
        assert!(!err.contains("short-token"), "{err}");
        assert_eq!(
            format!("{:?}", AdminToken::new(TOKEN).unwrap()),
            "AdminToken(***)"
        );
    }
}
