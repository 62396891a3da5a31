//! Statement parameters.

use sqlx::mysql::{MySql, MySqlArguments};
use sqlx::{Arguments, Encode, Type};

/// The values bound to a statement's `?` placeholders, in order. Build it with
/// [`args!`](crate::args): `args![player_id, day]`.
///
/// Values are always sent as parameters of a prepared statement, never spliced into
/// the SQL text, and never logged.
#[derive(Default)]
pub struct Args {
    inner: MySqlArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Args {
    /// Appends one value. An encoding error is kept and reported when the statement
    /// runs, as sqlx's own `bind` does.
    pub fn push<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, MySql> + Type<MySql>,
    {
        if self.error.is_none()
            && let Err(e) = self.inner.add(value)
        {
            self.error = Some(e);
        }
        self
    }

    /// The arguments, or the first value that failed to encode (before any I/O).
    pub(crate) fn into_arguments(self) -> Result<MySqlArguments, db_budget::DbError> {
        match self.error {
            Some(e) => Err(crate::error::from_sqlx(sqlx::Error::Encode(e))),
            None => Ok(self.inner),
        }
    }
}

impl std::fmt::Debug for Args {
    /// Shows how many values, never the values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Args({} values)", self.inner.len())
    }
}

/// Builds [`Args`]: `args![]`, `args![id]`, `args![name, score, day]`.
#[macro_export]
macro_rules! args {
    () => { $crate::Args::default() };
    ($($value:expr),+ $(,)?) => {{
        let mut args = $crate::Args::default();
        $( args.push($value); )+
        args
    }};
}
