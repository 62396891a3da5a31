//! A simulated player's state, and what it does on each route: sign up, claim the daily
//! reward, read quests, send events, complete quests (the grants, recorded as
//! confirmed or unsure), and the saved-game and balance reads in between.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::Client;
use crate::record::{Grant, Op, Source, Unsure};

/// A quest as the player last saw it.
#[derive(Debug, Clone)]
pub(super) struct Quest {
    id: u64,
    pub(super) kind: String,
    pub(super) progress: u64,
    pub(super) target: u64,
    completed: bool,
}

/// The player a client plays, as far as its answers told it.
#[derive(Debug)]
pub(super) struct Player {
    pub(super) id: u64,
    pub(super) token: String,
    pub(super) claimed: bool,
    unsure_claim: bool,
    pub(super) quests: Option<Vec<Quest>>,
    unsure_quests: HashSet<u64>,
    games: Vec<u64>,
}

impl Player {
    pub(super) fn done(&self) -> bool {
        self.claimed
            && self
                .quests
                .as_ref()
                .is_some_and(|qs| qs.iter().all(|q| q.completed))
    }

    pub(super) fn finished_unclaimed(&self) -> Option<u64> {
        self.quests
            .as_ref()?
            .iter()
            .find(|q| !q.completed && q.progress >= q.target)
            .map(|q| q.id)
    }

    pub(super) fn unfinished(&self) -> Option<&Quest> {
        self.quests.as_ref()?.iter().find(|q| q.progress < q.target)
    }
}

impl Client {
    pub(super) async fn sign_up(&mut self) {
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

    pub(super) async fn claim(&mut self) {
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

    pub(super) async fn quests(&mut self) {
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

    pub(super) async fn event(&mut self, kind: &str, amount: u64) {
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

    pub(super) async fn complete(&mut self, quest_id: u64) {
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

    pub(super) async fn save_game(&mut self) {
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

    pub(super) async fn list_games(&mut self) {
        let path = format!("/api/players/{}/games", self.player_id());
        self.read(Op::ListGames, &path).await;
    }

    pub(super) async fn show_game(&mut self) {
        let game = match self.player.as_ref().map(|p| p.games.as_slice()) {
            Some([.., last]) => *last,
            _ => return self.save_game().await,
        };
        let path = format!("/api/games/{game}");
        self.read(Op::ShowGame, &path).await;
    }

    pub(super) async fn balance(&mut self) {
        let path = format!("/api/players/{}", self.player_id());
        self.read(Op::Balance, &path).await;
    }

    pub(super) async fn reward_status(&mut self) {
        let path = format!("/api/players/{}/rewards", self.player_id());
        self.read(Op::RewardStatus, &path).await;
    }
}
