//! The WebSocket session of the load's WebSocket clients (`/ws`).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::http::{Failure, REQUEST_TIMEOUT};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket session at `/ws`.
#[derive(Debug)]
pub struct Ws {
    socket: Socket,
}

impl Ws {
    /// Opens `/ws` with the player's bearer token.
    ///
    /// # Errors
    ///
    /// [`Failure`] when the upgrade fails or takes longer than [`REQUEST_TIMEOUT`].
    pub async fn connect(addr: SocketAddr, token: &str) -> Result<Ws, Failure> {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .map_err(|e| Failure::Transport(e.to_string()))?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| Failure::Transport("bad token header".into()))?,
        );
        match tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(request)).await
        {
            Ok(Ok((socket, _))) => Ok(Ws { socket }),
            Ok(Err(e)) => Err(Failure::Transport(e.to_string())),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Sends one message and returns the server's answer to it: the first message that
    /// is not a `quest_completed` push (those follow the previous answer's `progress`
    /// and are skipped here; the client reads completion from `progress` itself).
    ///
    /// # Errors
    ///
    /// [`Failure`] when the socket breaks, closes, or no answer comes in time.
    pub async fn call(&mut self, message: &Value) -> Result<Value, Failure> {
        let exchange = async {
            self.socket
                .send(Message::Text(message.to_string().into()))
                .await
                .map_err(|e| Failure::Transport(e.to_string()))?;
            loop {
                let next = self
                    .socket
                    .next()
                    .await
                    .ok_or_else(|| Failure::Transport("the socket closed".into()))?
                    .map_err(|e| Failure::Transport(e.to_string()))?;
                let text = match next {
                    Message::Text(text) => text,
                    Message::Close(frame) => {
                        return Err(Failure::Transport(format!(
                            "closed by the server: {frame:?}"
                        )));
                    }
                    _ => continue,
                };
                let value: Value = serde_json::from_str(text.as_str())
                    .map_err(|e| Failure::Transport(format!("a reply that is not JSON: {e}")))?;
                if value["type"] != "quest_completed" {
                    return Ok(value);
                }
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    /// Closes the session (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.close(None)).await;
    }
}

/// The HTTP status a WebSocket error reply stands for (its `error` code is the API's).
pub fn ws_error_status(code: &str) -> u16 {
    match code {
        "unavailable" | "statement_timeout" => 503,
        "internal" => 500,
        "not_found" => 404,
        "unauthorized" => 401,
        "forbidden" => 403,
        "already_claimed" | "already_completed" | "not_finished" => 409,
        "invalid" => 422,
        _ => 400,
    }
}
