//! A tiny HTTP/1.1 client: raw bytes in, status/headers/body out, so tests can send
//! what a well-behaved client library would refuse to (invalid UTF-8, oversized bodies,
//! bad headers); and the check that no answer leaks SQL or credentials.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::SECRET;

/// A minimal HTTP/1.1 client: one connection per request, `Connection: close`.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The server.
    pub addr: SocketAddr,
}

/// A response, read in full.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// If it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the `{error, message}` shape and that nothing internal leaks; returns
    /// the `error` code.
    pub fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "error responses are JSON: {} {:?}",
            self.status,
            self.text()
        );
        let body = self.json();
        let obj = body.as_object().expect("an object");
        assert!(obj["message"].is_string(), "{body}");
        assert_no_leak(&self.text());
        obj["error"].as_str().expect("error code").to_owned()
    }
}

/// Asserts that a response body shows no SQL text and no credentials.
pub fn assert_no_leak(text: &str) {
    let lower = text.to_ascii_lowercase();
    for needle in [
        "select ",
        "insert ",
        "update ",
        " from ",
        "sqlstate",
        "app-secret",
        SECRET,
        "mysql://",
    ] {
        assert!(
            !lower.contains(&needle.to_ascii_lowercase()),
            "response leaks {needle:?}: {text}"
        );
    }
}

impl Client {
    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request("GET", path, &auth_headers(token), None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("serialize");
        self.post_raw(path, token, Some("application/json"), &bytes)
            .await
    }

    /// `POST path` with an empty body.
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Response {
        self.request("POST", path, &auth_headers(token), Some(b""))
            .await
    }

    /// `POST path` with raw bytes.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let mut headers = auth_headers(token);
        if let Some(ct) = content_type {
            headers.push(("Content-Type".to_owned(), ct.to_owned()));
        }
        self.request("POST", path, &headers, Some(body)).await
    }

    /// Any request. The body is written concurrently with reading the response, so a
    /// server that answers early (413) and closes is read correctly.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Response {
        let stream = TcpStream::connect(self.addr)
            .await
            .expect("connect to the app");
        let (mut rd, mut wr) = stream.into_split();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&out).await;
            // Keep the write half open until the response is read (no early FIN).
            wr
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(60), rd.read(&mut buf)).await {
                Err(_) => panic!("no response within 60 s to {method} {path}"),
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
                // A reset after an early answer: keep what was read.
                Ok(Err(e)) if !raw.is_empty() => {
                    let _ = e;
                    break;
                }
                Ok(Err(e)) => panic!("reading the response to {method} {path}: {e}"),
            }
        }
        writer.abort();
        parse(&raw).unwrap_or_else(|| {
            panic!(
                "malformed response to {method} {path}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }
}

/// `Authorization: Bearer <token>` when there is a token.
pub fn auth_headers(token: Option<&str>) -> Vec<(String, String)> {
    token
        .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
        .unwrap_or_default()
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().ok()?;
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
