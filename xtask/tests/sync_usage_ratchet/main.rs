//! The ratchet, end to end: runs the built `xtask` binary on a small
//! workspace written into a temporary directory.//!
//! `check`: `--update` and `--check`, the ratchet moving one way; `opt_out`: the
//! infrastructure marker; `cli`: the JSON output, bad invocations, and scanning the
//! repository itself. The throw-away workspace is `support`.

mod check;
mod cli;
mod opt_out;
mod support;
