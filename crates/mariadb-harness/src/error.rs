//! Small constructors for `std::io::Error` values with context.

use std::io;
use std::path::Path;

/// An `io::Error` of kind `Other` carrying `msg`.
pub(crate) fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Adds `what` (and the path involved) in front of an `io::Error`, keeping its kind.
pub(crate) fn at(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}
