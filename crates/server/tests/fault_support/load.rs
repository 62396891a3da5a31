//! The steady mixed load of the fault tests and the soak: simulated players over HTTP
//! and WebSocket, through the async (retention) and the blocking (legacy saved games)
//! code paths, and a client-side record of every reward they were told they got.
//!
//! Shared by `tests/faults.rs` and `crates/bench/src/soak.rs` (which includes this file
//! and `client.rs` with `#[path]`): one definition of "the same load".
//!
//! Each client plays one player at a time: signs up, claims the daily reward, reads its
//! quests, sends gameplay events (HTTP `POST …/events`, or over its WebSocket for the
//! WebSocket clients) until quests finish, completes them, and in between saves, lists
//! and loads games (blocking routes) and reads its balance and reward status (async).
//! Once it has claimed and completed everything, it signs up a new player, so reward
//! grants keep flowing for as long as the load runs.
//!
//! Every answer is recorded ([`Recorder`]): status and latency per request, kept as
//! samples (fault tests) or only folded into the current window (the soak, whose memory
//! must not grow). Grants the server confirmed (200 with a ledger id) are kept as
//! [`Grant`]s; grant attempts whose outcome the client cannot know (503, a broken
//! connection: the transaction may have committed before the answer was lost) as
//! [`Unsure`]. A 409 `already_claimed`/`already_completed` is expected only after such
//! an unsure attempt; anything else unexpected is kept as a surprise.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::{Failure, Http, Reply, Ws, ws_error_status};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Simulated players at once.
    pub clients: usize,
    /// Of those, how many send their gameplay events over a WebSocket.
    pub ws_clients: usize,
    /// Mean pause between one client's requests (uniform in 0..2×).
    pub think: Duration,
    /// The clients start one after another over this time.
    pub ramp: Duration,
    /// Keep every request as a [`Sample`] (fault tests) or only count windows (soak).
    pub keep_samples: bool,
    /// Seed of the clients' choices.
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            clients: 200,
            ws_clients: 50,
            think: Duration::from_millis(400),
            ramp: Duration::from_secs(2),
            keep_samples: true,
            seed: 0x10AD,
        }
    }
}

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `POST /api/players` (async pool).
    SignUp,
    /// `POST …/rewards/claim` (retention).
    Claim,
    /// `GET …/quests` (retention).
    Quests,
    /// `POST …/events` (retention).
    Event,
    /// `{"type":"quests"}` over the WebSocket (retention).
    WsQuests,
    /// `{"type":"event"}` over the WebSocket (retention).
    WsEvent,
    /// The WebSocket upgrade (no database).
    WsConnect,
    /// `POST …/quests/{id}/complete` (retention).
    Complete,
    /// `GET /api/players/{id}` (async pool + retention).
    Balance,
    /// `GET …/rewards` (retention).
    RewardStatus,
    /// `POST …/games` (legacy, blocking).
    SaveGame,
    /// `GET …/games` (legacy, blocking).
    ListGames,
    /// `GET /api/games/{id}` (legacy, blocking).
    ShowGame,
}

impl Op {
    /// Served by the blocking pool (legacy module through `spawn_blocking`).
    pub fn is_blocking(self) -> bool {
        matches!(self, Op::SaveGame | Op::ListGames | Op::ShowGame)
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// An HTTP status (for WebSocket replies: the status of the reply's error code, 200
    /// for a `progress` reply).
    Status(u16),
    /// The connection failed or broke.
    Transport,
    /// No answer within the client's timeout.
    Timeout,
}

impl Outcome {
    /// 2xx, or 101 for a WebSocket upgrade.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Status(101 | 200..=299))
    }

    /// A short label: `200`, `503`, `transport`, `timeout`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Transport => "transport".into(),
            Outcome::Timeout => "timeout".into(),
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, from the recorder's start.
    pub start: Duration,
    /// How long until the answer (or the failure).
    pub took: Duration,
    /// What it was.
    pub op: Op,
    /// How it ended.
    pub outcome: Outcome,
}

impl Sample {
    /// When the answer came, from the recorder's start.
    pub fn end(&self) -> Duration {
        self.start + self.took
    }
}

/// A reward source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A completed quest (`source_id` = the quest's id).
    Quest,
    /// A daily login reward (`source_id` = the claim's id).
    DailyReward,
}

impl Source {
    /// The `reward_ledger.source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Quest => "quest",
            Source::DailyReward => "daily_reward",
        }
    }
}

/// A grant the server confirmed to a client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// The player.
    pub player_id: u64,
    /// Quest or daily reward.
    pub source: Source,
    /// The quest's or the claim's id.
    pub source_id: u64,
    /// The ledger row the server reported.
    pub ledger_id: u64,
}

/// A grant attempt whose outcome the client could not know.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unsure {
    /// The player.
    pub player_id: u64,
    /// Quest or daily reward.
    pub source: Source,
    /// The quest's id (`None` for a claim: the claim's id is not known until it succeeds).
    pub source_id: Option<u64>,
}

/// Latencies in logarithmic buckets (about 5 % wide), from 10 µs to 100 s.
#[derive(Debug, Clone)]
pub struct Latencies {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

const GROWTH: f64 = 1.05;
const FIRST_US: f64 = 10.0;
const BUCKETS: usize = 330; // 10 µs × 1.05^330 ≈ 100 s

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            buckets: vec![0; BUCKETS + 1],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Latencies {
    /// Adds one latency.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let i = if us <= FIRST_US {
            0
        } else {
            ((us / FIRST_US).ln() / GROWTH.ln()).ceil() as usize
        };
        self.buckets[i.min(BUCKETS)] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The slowest.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The upper bound of the bucket holding quantile `q` (within 5 %), capped at the
    /// maximum seen; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = Duration::from_secs_f64(FIRST_US * GROWTH.powi(i as i32) / 1e6);
                return bound.min(self.max);
            }
        }
        self.max
    }
}

/// Counts of one stretch of time (the soak's 10-second windows).
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Requests answered (or failed) in the window.
    pub requests: u64,
    /// Of those, by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Their latencies.
    pub latencies: Latencies,
}

impl Window {
    /// Requests that did not get a 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !o.is_success())
            .map(|(_, n)| n)
            .sum()
    }

    /// 5xx answers, transport failures and timeouts.
    pub fn server_errors(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !matches!(o, Outcome::Status(..=499)))
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Debug, Default)]
struct Records {
    samples: Vec<Sample>,
    window: Window,
    grants: Vec<Grant>,
    unsure: Vec<Unsure>,
    surprises: Vec<String>,
    failures: Vec<String>,
}

/// Everything the clients saw.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    keep_samples: bool,
    records: Mutex<Records>,
}

impl Recorder {
    fn new(keep_samples: bool) -> Recorder {
        Recorder {
            started: Instant::now(),
            keep_samples,
            records: Mutex::new(Records::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time base of every [`Sample`].
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Now, on the samples' time base.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn record(&self, op: Op, sent: Instant, outcome: Outcome) {
        let took = sent.elapsed();
        let mut r = self.lock();
        r.window.requests += 1;
        *r.window.outcomes.entry(outcome.clone()).or_default() += 1;
        r.window.latencies.record(took);
        if self.keep_samples {
            r.samples.push(Sample {
                start: sent.duration_since(self.started),
                took,
                op,
                outcome,
            });
        }
    }

    fn grant(&self, grant: Grant) {
        if self.keep_samples {
            self.lock().grants.push(grant);
        }
    }

    fn unsure(&self, unsure: Unsure) {
        if self.keep_samples {
            self.lock().unsure.push(unsure);
        }
    }

    /// Keeps the first 20 failed requests (5xx, broken, timed out) with what they got.
    fn failure(&self, what: impl FnOnce() -> String) {
        let mut r = self.lock();
        if r.failures.len() < 20 {
            let at = self.started.elapsed().as_secs_f64();
            r.failures.push(format!("at {at:.1} s: {}", what()));
        }
    }

    fn surprise(&self, what: String) {
        let mut r = self.lock();
        if r.surprises.len() < 1000 {
            r.surprises.push(what);
        }
    }

    /// The counts since the last call (the soak's windows).
    pub fn take_window(&self) -> Window {
        std::mem::take(&mut self.lock().window)
    }

    /// Every sample so far (with `keep_samples`).
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().samples.clone()
    }

    /// Grants confirmed so far (with `keep_samples`).
    pub fn grants(&self) -> Vec<Grant> {
        self.lock().grants.clone()
    }

    /// Unsure grant attempts so far (with `keep_samples`).
    pub fn unsure_attempts(&self) -> Vec<Unsure> {
        self.lock().unsure.clone()
    }

    /// The first 20 failed requests (5xx, broken connection, timeout), described.
    pub fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// Unexpected answers (at most 1000 kept).
    pub fn surprises(&self) -> Vec<String> {
        self.lock().surprises.clone()
    }
}

/// A running load.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    /// What the clients saw.
    pub recorder: Arc<Recorder>,
}

impl Load {
    /// Starts `config.clients` clients against the API at `addr`, one after another
    /// over `config.ramp`.
    pub fn start(addr: SocketAddr, config: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let recorder = Arc::new(Recorder::new(config.keep_samples));
        let clients = (0..config.clients)
            .map(|n| {
                let delay = config.ramp.mul_f64(n as f64 / config.clients.max(1) as f64);
                let client = Client {
                    n,
                    delay,
                    addr,
                    ws: n < config.ws_clients,
                    think: config.think,
                    rng: Rng(config.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    recorder: recorder.clone(),
                    stop: stop.clone(),
                    http: Http::new(addr),
                    socket: None,
                    player: None,
                    players: 0,
                };
                tokio::spawn(client.run())
            })
            .collect();
        Load {
            stop,
            clients,
            recorder,
        }
    }

    /// Stops the clients after their current request and waits for them.
    pub async fn stop(self) -> Arc<Recorder> {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            c.await.expect("a load client panicked");
        }
        self.recorder
    }
}

/// SplitMix64: reproducible choices without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[derive(Debug, Clone)]
struct Quest {
    id: u64,
    kind: String,
    progress: u64,
    target: u64,
    completed: bool,
}

#[derive(Debug)]
struct Player {
    id: u64,
    token: String,
    claimed: bool,
    unsure_claim: bool,
    quests: Option<Vec<Quest>>,
    unsure_quests: HashSet<u64>,
    games: Vec<u64>,
}

impl Player {
    fn done(&self) -> bool {
        self.claimed
            && self
                .quests
                .as_ref()
                .is_some_and(|qs| qs.iter().all(|q| q.completed))
    }

    fn finished_unclaimed(&self) -> Option<u64> {
        self.quests
            .as_ref()?
            .iter()
            .find(|q| !q.completed && q.progress >= q.target)
            .map(|q| q.id)
    }

    fn unfinished(&self) -> Option<&Quest> {
        self.quests.as_ref()?.iter().find(|q| q.progress < q.target)
    }
}

struct Client {
    n: usize,
    delay: Duration,
    addr: SocketAddr,
    ws: bool,
    think: Duration,
    rng: Rng,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    http: Http,
    socket: Option<Ws>,
    player: Option<Player>,
    players: u64,
}

impl Client {
    async fn run(mut self) {
        tokio::time::sleep(self.delay).await;
        while !self.stop.load(Ordering::Relaxed) {
            self.step().await;
            let pause = self.pause();
            tokio::time::sleep(pause).await;
        }
        if let Some(ws) = self.socket.take() {
            ws.close().await;
        }
    }

    fn pause(&mut self) -> Duration {
        let max = (self.think.as_micros() as u64 * 2).max(1);
        Duration::from_micros(self.rng.below(max))
    }

    async fn http(
        &mut self,
        op: Op,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let token = self.player.as_ref().map(|p| p.token.clone());
        let sent = Instant::now();
        let result = self
            .http
            .request(method, path, token.as_deref(), body)
            .await;
        let outcome = match &result {
            Ok(r) => Outcome::Status(r.status),
            Err(Failure::Transport(_)) => Outcome::Transport,
            Err(Failure::Timeout) => Outcome::Timeout,
        };
        if !matches!(outcome, Outcome::Status(..=499)) {
            self.recorder.failure(|| match &result {
                Ok(r) => format!(
                    "{op:?} {method} {path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ),
                Err(e) => format!("{op:?} {method} {path}: {e:?}"),
            });
        }
        self.recorder.record(op, sent, outcome);
        result
    }

    /// A WebSocket call; returns the reply when it is a `progress`.
    async fn ws(&mut self, op: Op, message: Value) -> Option<Value> {
        if self.socket.is_none() {
            let token = self.player.as_ref()?.token.clone();
            let sent = Instant::now();
            match Ws::connect(self.addr, &token).await {
                Ok(ws) => {
                    self.recorder
                        .record(Op::WsConnect, sent, Outcome::Status(101));
                    self.socket = Some(ws);
                }
                Err(e) => {
                    self.recorder.record(Op::WsConnect, sent, failure(&e));
                    return None;
                }
            }
        }
        let socket = self.socket.as_mut()?;
        let sent = Instant::now();
        match socket.call(&message).await {
            Ok(reply) if reply["type"] == "progress" => {
                self.recorder.record(op, sent, Outcome::Status(200));
                Some(reply)
            }
            Ok(reply) => {
                let code = reply["error"].as_str().unwrap_or("");
                let status = ws_error_status(code);
                if status >= 500 {
                    self.recorder
                        .failure(|| format!("{op:?} over the WebSocket: {reply}"));
                }
                self.recorder.record(op, sent, Outcome::Status(status));
                if status != 503 {
                    self.recorder
                        .surprise(format!("{op:?} over the WebSocket answered {reply}"));
                }
                None
            }
            Err(e) => {
                self.recorder
                    .failure(|| format!("{op:?} over the WebSocket: {e:?}"));
                self.recorder.record(op, sent, failure(&e));
                self.socket = None;
                None
            }
        }
    }

    fn unexpected(&self, op: Op, path: &str, reply: &Reply) {
        if reply.status != 503 {
            self.recorder.surprise(format!(
                "{op:?} {path}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
    }

    async fn step(&mut self) {
        let Some(player) = &self.player else {
            return self.sign_up().await;
        };
        if player.done() {
            // A fresh player keeps the grants flowing.
            self.player = None;
            if let Some(ws) = self.socket.take() {
                ws.close().await;
            }
            return self.sign_up().await;
        }
        let claimed = player.claimed;
        let known = player.quests.is_some();
        let finished = player.finished_unclaimed();
        let unfinished = player
            .unfinished()
            .map(|q| (q.kind.clone(), q.target - q.progress));
        let roll = self.rng.below(100);
        match roll {
            0..25 if !claimed => self.claim().await,
            _ if !known => self.quests().await,
            0..40 if finished.is_some() => self.complete(finished.unwrap_or(0)).await,
            0..55 if unfinished.is_some() => {
                let (kind, remaining) = unfinished.unwrap_or_default();
                let amount = if remaining <= 2 {
                    remaining
                } else {
                    remaining / 2 + 1
                };
                self.event(&kind, amount).await;
            }
            0..60 => self.quests().await,
            60..72 => self.save_game().await,
            72..84 => self.list_games().await,
            84..92 => self.show_game().await,
            92..96 => self.balance().await,
            _ => self.reward_status().await,
        }
    }

    async fn sign_up(&mut self) {
        self.players += 1;
        let name = format!("load {} #{}", self.n, self.players);
        let Ok(reply) = self
            .http(
                Op::SignUp,
                "POST",
                "/api/players",
                Some(&json!({ "name": name })),
            )
            .await
        else {
            return;
        };
        if reply.status != 201 {
            return self.unexpected(Op::SignUp, "/api/players", &reply);
        }
        let body = reply.json().unwrap_or_default();
        let (Some(id), Some(token)) = (body["id"].as_u64(), body["token"].as_str()) else {
            return self
                .recorder
                .surprise(format!("sign-up answered without id/token: {body}"));
        };
        self.player = Some(Player {
            id,
            token: token.to_owned(),
            claimed: false,
            unsure_claim: false,
            quests: None,
            unsure_quests: HashSet::new(),
            games: Vec::new(),
        });
    }

    fn player_id(&self) -> u64 {
        self.player.as_ref().map_or(0, |p| p.id)
    }

    async fn claim(&mut self) {
        let id = self.player_id();
        let path = format!("/api/players/{id}/rewards/claim");
        let result = self.http(Op::Claim, "POST", &path, None).await;
        let Some(player) = self.player.as_mut() else {
            return;
        };
        match result {
            Ok(reply) if reply.status == 200 => {
                let body = reply.json().unwrap_or_default();
                match (body["claim_id"].as_u64(), body["ledger_id"].as_u64()) {
                    (Some(claim_id), Some(ledger_id)) => {
                        player.claimed = true;
                        self.recorder.grant(Grant {
                            player_id: id,
                            source: Source::DailyReward,
                            source_id: claim_id,
                            ledger_id,
                        });
                    }
                    _ => self
                        .recorder
                        .surprise(format!("a claim answered 200 without ids: {body}")),
                }
            }
            Ok(reply)
                if reply.status == 409
                    && reply.error_code().as_deref() == Some("already_claimed")
                    && player.unsure_claim =>
            {
                // An earlier attempt committed, but its answer was lost or a 503.
                player.claimed = true;
            }
            Ok(reply) if reply.status == 503 => {
                player.unsure_claim = true;
                self.recorder.unsure(Unsure {
                    player_id: id,
                    source: Source::DailyReward,
                    source_id: None,
                });
            }
            Ok(reply) => {
                player.claimed = true; // do not retry an answer we do not understand
                self.unexpected(Op::Claim, &path, &reply);
            }
            Err(_) => {
                player.unsure_claim = true;
                self.recorder.unsure(Unsure {
                    player_id: id,
                    source: Source::DailyReward,
                    source_id: None,
                });
            }
        }
    }

    fn take_quests(&mut self, list: &Value) {
        let Some(items) = list.as_array() else {
            return self
                .recorder
                .surprise(format!("quests that are not a list: {list}"));
        };
        let quests = items
            .iter()
            .filter_map(|q| {
                Some(Quest {
                    id: q["id"].as_u64()?,
                    kind: q["event_kind"].as_str()?.to_owned(),
                    progress: q["progress"].as_u64()?,
                    target: q["target"].as_u64()?,
                    completed: !q["completed_at"].is_null(),
                })
            })
            .collect::<Vec<_>>();
        if quests.len() != items.len() || quests.is_empty() {
            self.recorder
                .surprise(format!("quests not understood: {list}"));
        }
        if let Some(p) = self.player.as_mut() {
            // A quest completed by an unsure attempt shows as completed here.
            p.quests = Some(quests);
        }
    }

    async fn quests(&mut self) {
        if self.ws {
            if let Some(reply) = self.ws(Op::WsQuests, json!({ "type": "quests" })).await {
                self.take_quests(&reply["quests"]);
            }
            return;
        }
        let path = format!("/api/players/{}/quests", self.player_id());
        if let Ok(reply) = self.http(Op::Quests, "GET", &path, None).await {
            match reply.json() {
                Some(body) if reply.status == 200 => self.take_quests(&body["quests"]),
                _ => self.unexpected(Op::Quests, &path, &reply),
            }
        }
    }

    async fn event(&mut self, kind: &str, amount: u64) {
        if self.ws {
            let message = json!({ "type": "event", "kind": kind, "amount": amount });
            if let Some(reply) = self.ws(Op::WsEvent, message).await {
                self.take_quests(&reply["quests"]);
            }
            return;
        }
        let path = format!("/api/players/{}/events", self.player_id());
        let body = json!({ "kind": kind, "amount": amount });
        if let Ok(reply) = self.http(Op::Event, "POST", &path, Some(&body)).await {
            match reply.json() {
                Some(body) if reply.status == 200 => self.take_quests(&body["quests"]),
                _ => self.unexpected(Op::Event, &path, &reply),
            }
        }
    }

    async fn complete(&mut self, quest_id: u64) {
        let id = self.player_id();
        let path = format!("/api/players/{id}/quests/{quest_id}/complete");
        let result = self.http(Op::Complete, "POST", &path, None).await;
        let Some(player) = self.player.as_mut() else {
            return;
        };
        let mark_completed = |player: &mut Player| {
            if let Some(q) = player
                .quests
                .as_mut()
                .and_then(|qs| qs.iter_mut().find(|q| q.id == quest_id))
            {
                q.completed = true;
            }
        };
        match result {
            Ok(reply) if reply.status == 200 => {
                mark_completed(player);
                match reply.json().and_then(|b| b["ledger_id"].as_u64()) {
                    Some(ledger_id) => self.recorder.grant(Grant {
                        player_id: id,
                        source: Source::Quest,
                        source_id: quest_id,
                        ledger_id,
                    }),
                    None => self.recorder.surprise(format!(
                        "a completion answered 200 without ledger_id: {path}"
                    )),
                }
            }
            Ok(reply)
                if reply.status == 409
                    && reply.error_code().as_deref() == Some("already_completed")
                    && player.unsure_quests.contains(&quest_id) =>
            {
                mark_completed(player);
            }
            Ok(reply) if reply.status == 503 => {
                player.unsure_quests.insert(quest_id);
                self.recorder.unsure(Unsure {
                    player_id: id,
                    source: Source::Quest,
                    source_id: Some(quest_id),
                });
            }
            Ok(reply) => {
                mark_completed(player);
                self.unexpected(Op::Complete, &path, &reply);
            }
            Err(_) => {
                player.unsure_quests.insert(quest_id);
                self.recorder.unsure(Unsure {
                    player_id: id,
                    source: Source::Quest,
                    source_id: Some(quest_id),
                });
            }
        }
    }

    async fn save_game(&mut self) {
        let path = format!("/api/players/{}/games", self.player_id());
        let level = self.rng.below(100);
        let body = json!({ "state": { "level": level, "score": self.rng.below(1_000_000), "items": ["sword", "map"] } });
        if let Ok(reply) = self.http(Op::SaveGame, "POST", &path, Some(&body)).await {
            match reply.json().and_then(|b| b["id"].as_u64()) {
                Some(game) if reply.status == 201 => {
                    if let Some(p) = self.player.as_mut() {
                        p.games.push(game);
                    }
                }
                _ => self.unexpected(Op::SaveGame, &path, &reply),
            }
        }
    }

    /// A `GET` whose answer must be 200 (a 503 is a counted failure; anything else a
    /// surprise).
    async fn read(&mut self, op: Op, path: &str) {
        if let Ok(reply) = self.http(op, "GET", path, None).await
            && reply.status != 200
        {
            self.unexpected(op, path, &reply);
        }
    }

    async fn list_games(&mut self) {
        let path = format!("/api/players/{}/games", self.player_id());
        self.read(Op::ListGames, &path).await;
    }

    async fn show_game(&mut self) {
        let game = match self.player.as_ref().map(|p| p.games.as_slice()) {
            Some([.., last]) => *last,
            _ => return self.save_game().await,
        };
        let path = format!("/api/games/{game}");
        self.read(Op::ShowGame, &path).await;
    }

    async fn balance(&mut self) {
        let path = format!("/api/players/{}", self.player_id());
        self.read(Op::Balance, &path).await;
    }

    async fn reward_status(&mut self) {
        let path = format!("/api/players/{}/rewards", self.player_id());
        self.read(Op::RewardStatus, &path).await;
    }
}

fn failure(e: &Failure) -> Outcome {
    match e {
        Failure::Transport(_) => Outcome::Transport,
        Failure::Timeout => Outcome::Timeout,
    }
}
