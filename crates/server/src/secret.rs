//! The key that signs player tokens (`SERVER_SECRET`), which nothing prints.

use std::fmt;

use db_budget::ConfigError;

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
