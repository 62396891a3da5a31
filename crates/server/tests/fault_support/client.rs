//! The load's two clients: a keep-alive HTTP/1.1 client and a WebSocket session.
//!
//! Shared by the fault tests (`tests/faults.rs`) and the soak (`crates/bench/src/soak.rs`
//! includes this file with `#[path]`), so both drive exactly the same load. Only tokio,
//! serde_json, futures-util and tokio-tungstenite are used here.
//!
//! One persistent connection per client (a load of 200 clients opening a connection per
//! request would churn through ephemeral ports in a long soak). A request that gets no
//! complete answer within [`REQUEST_TIMEOUT`] is recorded as a timeout, never waited
//! for without bound.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for one answer before it counts as a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection failed or broke (the text says how).
    Transport(String),
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `error` code of an `{error, message}` body.
    pub fn error_code(&self) -> Option<String> {
        self.json()?.get("error")?.as_str().map(str::to_owned)
    }
}

/// A keep-alive HTTP/1.1 client to one server: one connection, reopened after an error.
#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    /// A client for `addr` (connects on first use).
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, conn: None }
    }

    /// Sends one request (a JSON body if given) and reads the answer in full.
    ///
    /// # Errors
    ///
    /// [`Failure`] when no complete answer came; the connection is then dropped.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let body = body.map(|b| serde_json::to_vec(b).expect("serialize a JSON body"));
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange(method, path, token, body.as_deref()),
        )
        .await
        {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.conn = None;
                Err(Failure::Transport(e.to_string()))
            }
            Err(_) => {
                self.conn = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<Reply> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        match body {
            Some(b) => head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )),
            None if method == "POST" => head.push_str("Content-Length: 0\r\n"),
            None => {}
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        conn.get_mut().write_all(&out).await?;
        let (reply, close) = read_response(conn).await?;
        if close {
            self.conn = None;
        }
        Ok(reply)
    }
}

fn bad_data(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Reads one response; also says whether the server will close the connection.
async fn read_response(conn: &mut BufReader<TcpStream>) -> std::io::Result<(Reply, bool)> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection before answering",
        ));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_data(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(bad_data("the headers ended early"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|e| bad_data(e.to_string()))?,
                );
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| bad_data(format!("bad chunk size {line:?}: {e}")))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        conn.read_exact(&mut body).await?;
    } else {
        // No length: the body runs to the end of the connection.
        conn.read_to_end(&mut body).await?;
        close = true;
    }
    Ok((Reply { status, body }, close))
}

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
        "unavailable" => 503,
        "internal" => 500,
        "not_found" => 404,
        "unauthorized" => 401,
        "forbidden" => 403,
        "already_claimed" | "already_completed" | "not_finished" => 409,
        "invalid" => 422,
        _ => 400,
    }
}
