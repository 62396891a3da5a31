//! One simulated client: its loop, the mix of requests it chooses from, and the
//! plumbing that records every request it sends. What a player does on each route is
//! in [`player`].

mod player;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use seeded_rng::Rng;
use serde_json::Value;

use crate::http::{Failure, Http, Reply};
use crate::load::LoadConfig;
use crate::record::{Op, Outcome};
use crate::recorder::Recorder;
use crate::ws::{Ws, ws_error_status};
use player::Player;

/// One simulated player at a time, driven by its own seeded generator.
pub(crate) struct Client {
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
    /// Client `n` of the load: it starts its share of `config.ramp` late, and is one of
    /// the WebSocket clients if `n < config.ws_clients`.
    pub(crate) fn new(
        n: usize,
        addr: SocketAddr,
        config: &LoadConfig,
        recorder: Arc<Recorder>,
        stop: Arc<AtomicBool>,
    ) -> Client {
        Client {
            n,
            delay: config.ramp.mul_f64(n as f64 / config.clients.max(1) as f64),
            addr,
            ws: n < config.ws_clients,
            think: config.think,
            rng: Rng::new(config.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            recorder,
            stop,
            http: Http::new(addr),
            socket: None,
            player: None,
            players: 0,
        }
    }

    /// Plays until `stop` is set, then closes its WebSocket.
    pub(crate) async fn run(mut self) {
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
        if let Ok(r) = &result
            && r.status >= 500
        {
            // Every 5xx of the API is an `{error, message}` body; its code is tallied.
            match r.error_code() {
                Some(code) => self.recorder.error_code(r.status, &code),
                None => self.recorder.surprise(format!(
                    "{op:?} {method} {path}: {} without a JSON error body: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )),
            }
        }
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
                    self.recorder.error_code(status, code);
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

    fn player_id(&self) -> u64 {
        self.player.as_ref().map_or(0, |p| p.id)
    }
}

fn failure(e: &Failure) -> Outcome {
    match e {
        Failure::Transport(_) => Outcome::Transport,
        Failure::Timeout => Outcome::Timeout,
    }
}
