//! What a write statement reports, the same on both sides.

/// The outcome of `execute`: rows affected and the id `AUTO_INCREMENT` assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ExecResult {
    /// Rows inserted, updated or deleted (MySQL counts an update that changes nothing
    /// as 0).
    pub rows_affected: u64,
    /// `LAST_INSERT_ID()` of this statement, when it generated one.
    pub last_insert_id: Option<u64>,
}
