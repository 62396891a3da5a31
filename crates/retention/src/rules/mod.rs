//! The pure rules: no SQL, no clock, no I/O. The service ([`crate::Retention`]) reads
//! rows, asks these functions, and writes what they decide; where a rule must run
//! under a row lock (progress capping), the SQL evaluates the same formula and the
//! function here is its specification.

pub mod choice;
pub mod progress;
pub mod streak;
pub mod tiers;
