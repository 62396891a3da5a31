//! Which call style holds a connection.

use std::fmt;

/// The two call styles that share one budget.
///
/// Every budget unit, every connection and every metric belongs to exactly one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// New code: `db-async`, tasks on a tokio runtime.
    Async,
    /// Legacy code: `db-sync`, blocking threads.
    Sync,
}

impl Side {
    /// Both sides, in the order used by arrays indexed by [`Side::index`].
    pub const ALL: [Side; 2] = [Side::Async, Side::Sync];

    /// The side that is not `self`.
    pub fn other(self) -> Side {
        match self {
            Side::Async => Side::Sync,
            Side::Sync => Side::Async,
        }
    }

    /// The label used in metrics (`side="async"`) and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Async => "async",
            Side::Sync => "sync",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Side::Async => 0,
            Side::Sync => 1,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
