//! Input fuzzing, with hand-rolled generators and fixed seeds (reproducible: every
//! choice comes from the workspace's `seeded_rng::Rng`; the configuration parser's
//! property test is `crates/db-budget/tests/config_fuzz.rs`):
//!
//! - a request fuzzer against the running application: random methods, paths (ids huge,
//!   negative, non-numeric, percent-encoded invalid UTF-8), headers (tokens valid, of
//!   another player, forged, malformed; content types) and bodies (random JSON shapes,
//!   mutated valid bodies, invalid UTF-8, truncated, deeply nested, oversized): never a
//!   5xx other than 503, never a panic, never a hang, and API errors keep their
//!   `{error, message}` JSON shape without leaking SQL or secrets;
//! - a property test of the WebSocket message parser ([`server::ws::ClientMessage`]):
//!   random and mutated messages are accepted exactly when they have one of the two
//!   documented shapes, and never panic; the same messages sent over a live socket each
//!   get a `progress` or `error` reply (never `internal`), and the socket stays open.
//!
//! Modules: `values` (random JSON, bodies and ids), `requests` (a fuzzed HTTP request),
//! `wire` (raw bytes to the app and its answer back), `http` (the request fuzzer),
//! `websocket` (the message parser's property test and the live socket). One test
//! binary, so that the application is linked once.

// The set-up every test binary of this crate shares.
#[path = "../common/mod.rs"]
mod common;

mod http;
mod requests;
mod values;
mod websocket;
mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Panics anywhere in the process (the app runs in it), counted by a hook.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}
