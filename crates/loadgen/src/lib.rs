//! The steady mixed load of the server's fault tests (`crates/server/tests/faults/`)
//! and of the soak (`cargo xtask soak`, `crates/bench/src/soak.rs`): one definition of
//! "the same load", so a soak and a fault test that pass speak of the same traffic.
//!
//! # The load
//!
//! [`Load::start`] runs simulated players (by default 200, 50 of them sending their
//! gameplay events over a WebSocket) against the game server's API, through the async
//! (retention) and the blocking (legacy saved games) code paths. Each client plays one
//! player at a time: signs up, claims the daily reward, reads its quests, sends gameplay
//! events until quests finish, completes them, and in between saves, lists and loads
//! games and reads its balance and reward status. Once it has claimed and completed
//! everything, it signs up a new player, so reward grants keep flowing for as long as
//! the load runs. Its choices come from a fixed seed ([`LoadConfig::seed`]).
//!
//! # The record
//!
//! Every answer goes to the [`Recorder`]: status and latency per request, kept as
//! [`Sample`]s (fault tests) or only folded into the current [`Window`] (the soak, whose
//! memory must not grow). Grants the server confirmed (200 with a ledger id) are kept as
//! [`Grant`]s; grant attempts whose outcome the client cannot know (503, a broken
//! connection: the transaction may have committed before the answer was lost) as
//! [`Unsure`]. A 409 `already_claimed`/`already_completed` is expected only after such
//! an unsure attempt; anything else unexpected is kept as a surprise, and so is a 5xx
//! whose body is not the API's `{error, message}` JSON. The 5xx answers are also counted
//! by status and `error` code (`unavailable`, `statement_timeout`, …).
//!
//! # The clients
//!
//! [`Http`] is a keep-alive HTTP/1.1 client and [`Ws`] a WebSocket session: one
//! persistent connection per simulated player (a load of 200 clients opening a
//! connection per request would churn through ephemeral ports in a long soak). A request
//! that gets no complete answer within [`REQUEST_TIMEOUT`] is recorded as a timeout,
//! never waited for without bound.
//!
//! What a fault test does with the record (the ledger comparison, the report around a
//! fault) stays with the fault tests; what the soak does with it (rows, the verdict)
//! stays with the soak.

mod client;
mod http;
mod latencies;
mod load;
mod record;
mod recorder;
mod ws;

pub use http::{Failure, Http, REQUEST_TIMEOUT, Reply};
pub use latencies::{Latencies, Window};
pub use load::{Load, LoadConfig};
pub use record::{Grant, Op, Outcome, Sample, Source, Unsure};
pub use recorder::Recorder;
pub use ws::{Ws, ws_error_status};
