//! `GET /ws`: gameplay events over a WebSocket.
//!
//! Authentication is the player token, in `Authorization: Bearer <token>` or, for
//! browsers (which cannot set headers on a WebSocket), in `?token=<token>`; it is
//! checked before the upgrade (401 JSON otherwise).
//!
//! Client → server (JSON text frames):
//!
//! - `{"type":"event","kind":"game_won","amount":1}`: a gameplay event;
//! - `{"type":"quests"}`: today's quests, without an event.
//!
//! Server → client:
//!
//! - `{"type":"progress","advanced":N,"quests":[…]}` after each event (and for `quests`);
//! - `{"type":"quest_completed","quest_id":…,"title":…,"reward_coins":…,"reward_xp":…}`
//!   for each quest the event brought to its target (claim it with
//!   `POST /api/players/{id}/quests/{quest_id}/complete`);
//! - `{"type":"error","error":code,"message":…}` for a malformed message or a failed
//!   event; the socket stays open.
//!
//! At shutdown the server sends a close frame (1001, going away).

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{AuthPlayer, player_from_headers};
use crate::error::ApiError;
use crate::gameplay;
use crate::state::AppState;

/// Largest accepted client message.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Longest wait for the close handshake at shutdown.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// `?token=` of the upgrade request.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    /// The player token, for clients that cannot send headers.
    pub token: Option<String>,
}

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// A gameplay event.
    Event {
        /// What happened.
        kind: String,
        /// How much (at least 1).
        amount: i64,
    },
    /// Today's quests, please. (A struct variant: serde ignores unknown fields of an
    /// internally tagged unit variant despite `deny_unknown_fields`.)
    Quests {},
}

/// Authenticates, then upgrades to a WebSocket.
///
/// # Errors
///
/// 401 without a valid token; 400/426 when the request is not a WebSocket upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let AuthPlayer(player_id) = authenticate(&headers, query.ok().and_then(|q| q.0.token), &state)?;
    let ws = ws.map_err(|r| ApiError::Rejected {
        status: r.status(),
        message: r.body_text(),
    })?;
    Ok(ws
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, state, player_id)))
}

fn authenticate(
    headers: &HeaderMap,
    token: Option<String>,
    state: &AppState,
) -> Result<AuthPlayer, ApiError> {
    if let Some(player) = player_from_headers(headers, &state.tokens)? {
        return Ok(player);
    }
    let token = token.ok_or(ApiError::Unauthorized(
        "the WebSocket needs `Authorization: Bearer <token>` or `?token=<token>`",
    ))?;
    state
        .tokens
        .verify(&token)
        .map(AuthPlayer)
        .ok_or(ApiError::Unauthorized("the token is not valid"))
}

async fn session(mut socket: WebSocket, state: AppState, player_id: u64) {
    tracing::debug!(player_id, "websocket opened");
    let shutdown = state.shutdown.triggered();
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            () = &mut shutdown => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                if socket.send(Message::Close(Some(frame))).await.is_ok() {
                    // Give the client a moment to answer the close handshake.
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Some(Ok(m)) = socket.recv().await {
                            if matches!(m, Message::Close(_)) { break; }
                        }
                    }).await;
                }
                break;
            }
            message = socket.recv() => message,
        };
        let replies = match message {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Err(e)) => {
                tracing::debug!(player_id, error = %e, "websocket error");
                break;
            }
            Some(Ok(Message::Text(text))) => handle(&state, player_id, text.as_str()).await,
            Some(Ok(Message::Binary(_))) => vec![error_message(
                "bad_request",
                "binary messages are not supported: send JSON text".to_owned(),
            )],
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        };
        for reply in replies {
            if socket
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    tracing::debug!(player_id, "websocket closed");
}

/// The replies to one text message.
async fn handle(state: &AppState, player_id: u64, text: &str) -> Vec<Value> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return vec![error_message(
                "bad_request",
                format!(
                    "malformed message ({e}); expected {{\"type\":\"event\",\"kind\":\"game_won\",\"amount\":1}} \
                     or {{\"type\":\"quests\"}}"
                ),
            )];
        }
    };
    let result = match message {
        ClientMessage::Event { kind, amount } => {
            gameplay::apply_event(&state.retention, player_id, &kind, amount).await
        }
        ClientMessage::Quests {} => {
            let day = state.retention.today();
            match state.retention.get_active_quests(player_id, day).await {
                Ok(quests) => Ok(gameplay::EventOutcome {
                    advanced: 0,
                    finished: Vec::new(),
                    quests,
                }),
                Err(e) => Err(e.into()),
            }
        }
    };
    match result {
        Ok(outcome) => {
            let mut replies = vec![json!({
                "type": "progress",
                "advanced": outcome.advanced,
                "quests": outcome.quests,
            })];
            for quest in outcome
                .quests
                .iter()
                .filter(|q| outcome.finished.contains(&q.id))
            {
                replies.push(json!({
                    "type": "quest_completed",
                    "quest_id": quest.id,
                    "title": quest.title,
                    "reward_coins": quest.reward_coins,
                    "reward_xp": quest.reward_xp,
                }));
            }
            replies
        }
        Err(e) => {
            e.log();
            vec![error_message(e.code(), e.public_message())]
        }
    }
}

fn error_message(code: &str, message: String) -> Value {
    json!({ "type": "error", "error": code, "message": message })
}
