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

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{assert_no_leak, spawn_app};
use futures_util::{SinkExt, StreamExt};
use seeded_rng::Rng;
use serde_json::{Map, Value, json};
use server::ws::ClientMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Panics anywhere in the process (the app runs in it), counted by a hook.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

const STRINGS: &[&str] = &[
    "",
    " ",
    "game_won",
    "game_played",
    "points_scored",
    "Ada",
    "Robert'); DROP TABLE players;--",
    "\u{0}",
    "\u{202E}evil",
    "玩家",
    "🐉",
    "\\",
    "\"",
    "x",
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
    "%00",
    "NaN",
];

const KEYS: &[&str] = &[
    "name", "kind", "amount", "state", "type", "id", "token", "", "Name", "amount ",
];

fn random_number(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => json!(i64::MIN),
        1 => json!(i64::MAX),
        2 => json!(u64::MAX),
        3 => json!(1e308),
        4 => json!(-0.0),
        5 => json!(1.5),
        6 => json!(9_007_199_254_740_993u64),
        7 => json!(-1),
        8 => json!(0),
        _ => json!(rng.below(10_000)),
    }
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth >= 4 { 5 } else { 7 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => random_number(rng),
        3 | 4 => Value::String(rng.pick(STRINGS).to_owned()),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(rng.pick(KEYS).to_owned(), random_json(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A valid body for a route, then mutated: a field replaced, dropped, added, or the
/// whole value wrapped.
fn shaped_body(rng: &mut Rng) -> Value {
    let mut body = match rng.below(4) {
        0 => json!({ "name": "fuzz" }),
        1 => json!({ "kind": "game_won", "amount": 1 }),
        2 => json!({ "state": { "level": 1 } }),
        _ => json!({ "type": "event", "kind": "game_won", "amount": 1 }),
    };
    for _ in 0..=rng.below(2) {
        let keys: Vec<String> = body
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        match rng.below(5) {
            0 | 1 if !keys.is_empty() => {
                let k = keys[rng.index(keys.len())].clone();
                body[k.as_str()] = random_json(rng, 1);
            }
            2 if !keys.is_empty() => {
                let k = &keys[rng.index(keys.len())];
                body.as_object_mut().map(|m| m.remove(k));
            }
            3 => {
                if let Some(m) = body.as_object_mut() {
                    m.insert(rng.pick(KEYS).to_owned(), random_json(rng, 1));
                }
            }
            _ => body = json!([body]),
        }
    }
    body
}

fn random_body(rng: &mut Rng) -> Option<Vec<u8>> {
    Some(match rng.below(12) {
        0 => return None,
        1 => Vec::new(),
        2 => b"{\"name\":\"\xff\xfe\xc3\x28\"}".to_vec(),
        3 => b"\xff\xff\xff".to_vec(),
        4 => {
            let full = serde_json::to_vec(&shaped_body(rng)).unwrap();
            let cut = rng.index(full.len().max(1));
            full[..cut].to_vec()
        }
        5 => "[".repeat(5_000).into_bytes(),
        6 => format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes(),
        7 if rng.chance(20) => {
            // Larger than every route's body limit but the games route's.
            let big = "x".repeat(70 * 1024);
            serde_json::to_vec(&json!({ "name": big, "state": big })).unwrap()
        }
        8 | 9 => serde_json::to_vec(&shaped_body(rng)).unwrap(),
        _ => serde_json::to_vec(&random_json(rng, 0)).unwrap(),
    })
}

/// Ids as path segments: real ones and every kind of wrong one.
fn random_id(rng: &mut Rng, own: u64, other: u64, game: u64) -> String {
    match rng.below(16) {
        0..=2 => own.to_string(),
        3 => other.to_string(),
        4 => game.to_string(),
        5 => "0".into(),
        6 => "-1".into(),
        7 => "18446744073709551615".into(),
        8 => "18446744073709551616".into(),
        9 => "99999999999999999999999999".into(),
        10 => "abc".into(),
        11 => "1.5".into(),
        12 => "%C3%28".into(),
        13 => "%FF%FE".into(),
        14 => "1e3".into(),
        _ => "%00".into(),
    }
}

/// Paths (`{id}` filled by [`random_id`]) and the methods they serve.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/players", &["POST"]),
    ("/api/players/{id}", &["GET"]),
    ("/api/players/{id}/games", &["GET", "POST"]),
    ("/api/games/{game}", &["GET"]),
    ("/api/games/{game}/images", &["GET", "POST"]),
    ("/api/players/{id}/quests", &["GET"]),
    ("/api/players/{id}/events", &["POST"]),
    ("/api/players/{id}/quests/{any}/complete", &["POST"]),
    ("/api/players/{id}/rewards", &["GET"]),
    ("/api/players/{id}/rewards/claim", &["POST"]),
    ("/ws", &["GET"]),
    ("/", &["GET"]),
    ("/api", &["GET"]),
    ("/api/players/{id}/unknown", &["GET"]),
    ("/api//players", &["POST"]),
    ("/api/players/{id}/../../etc/passwd", &["GET"]),
];

/// One fuzzed request, as bytes, and whether it is well-formed HTTP (then an error
/// answer must be the API's JSON).
struct Fuzzed {
    bytes: Vec<u8>,
    well_formed: bool,
    /// The body is shorter than its `Content-Length`: the server waits for the rest
    /// (as it must), so the client closes its side after sending.
    short_body: bool,
    /// `HEAD`: the answer has no body, whatever its `Content-Length` says.
    head_only: bool,
    head: String,
}

fn fuzz_request(rng: &mut Rng, addr: &str, ids: (u64, u64, u64), tokens: (&str, &str)) -> Fuzzed {
    let (own, other, game) = ids;
    let methods: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    let odd_methods: &[&str] = &["get", "FOO", "G\u{e9}T", "CONNECT", ""];
    let (template, served) = ROUTES[rng.index(ROUTES.len())];
    let mut well_formed = true;
    let method = if rng.chance(5) {
        well_formed = false;
        rng.pick(odd_methods)
    } else if rng.chance(75) {
        rng.pick(served)
    } else {
        rng.pick(methods)
    };
    let mut path = template.to_owned();
    for (slot, right) in [("{id}", own), ("{game}", game), ("{any}", own)] {
        while path.contains(slot) {
            let id = if slot != "{any}" && rng.chance(50) {
                right.to_string()
            } else {
                random_id(rng, own, other, game)
            };
            path = path.replacen(slot, &id, 1);
        }
    }
    if rng.chance(15) {
        let q: &[&str] = &[
            "?token=abc",
            "?token=",
            "?x=%ZZ",
            "?%C3%28=1",
            "?a=1&a=2",
            "?token=1.0000",
        ];
        path.push_str(rng.pick(q));
    }
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    if rng.chance(3) {
        // Raw invalid UTF-8 and a space in the request target.
        well_formed = false;
        head.extend_from_slice(b"/api/players/\xff\xfe/games x");
    } else {
        head.extend_from_slice(path.as_bytes());
    }
    head.extend_from_slice(format!(" HTTP/1.1\r\nHost: {addr}\r\n").as_bytes());
    let auth: &[&str] = &[
        "",
        "own",
        "own",
        "own",
        "own",
        "own",
        "own",
        "own",
        "other",
        "Bearer",
        "Bearer 1.00",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "bearer forged",
        "garbage\u{7f}",
    ];
    match rng.pick(auth) {
        "" => {}
        "own" => {
            head.extend_from_slice(format!("Authorization: Bearer {}\r\n", tokens.0).as_bytes())
        }
        "other" => {
            head.extend_from_slice(format!("Authorization: Bearer {}\r\n", tokens.1).as_bytes())
        }
        v => {
            // A control character makes the header invalid HTTP: hyper answers 400.
            well_formed &= !v.contains('\u{7f}');
            head.extend_from_slice(format!("Authorization: {v}\r\n").as_bytes());
        }
    }
    if rng.chance(5) {
        head.extend_from_slice(b"Authorization: Bearer \xff\xfe\r\n");
    }
    let content_types: &[&str] = &[
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.game+json",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ];
    let ct = rng.pick(content_types);
    if !ct.is_empty() {
        head.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    let upgrade = path.starts_with("/ws") && rng.chance(30);
    if upgrade {
        head.extend_from_slice(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        );
        if rng.chance(70) {
            head.extend_from_slice(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
        }
    } else {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    if rng.chance(10) {
        head.extend_from_slice(b"X-Odd: \x01\x02\r\n");
        well_formed = false;
    }
    let body = random_body(rng);
    let mut short_body = false;
    if let Some(b) = &body {
        if rng.chance(5) {
            short_body = true;
            // A Content-Length that does not match.
            head.extend_from_slice(format!("Content-Length: {}\r\n", b.len() + 10).as_bytes());
            well_formed = false;
        } else {
            head.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
        }
    }
    head.extend_from_slice(b"\r\n");
    let shown = String::from_utf8_lossy(&head).into_owned();
    if let Some(b) = body {
        head.extend_from_slice(&b);
    }
    Fuzzed {
        bytes: head,
        well_formed: well_formed && method != "HEAD",
        short_body,
        head_only: method == "HEAD",
        head: shown,
    }
}

/// Sends raw bytes; returns `(status, body)` of the answer, `None` if the server closed
/// the connection without one (hyper does this for some malformed HTTP).
async fn send_raw(
    addr: std::net::SocketAddr,
    bytes: Vec<u8>,
    half_close: bool,
    head_only: bool,
) -> Option<(u16, Vec<u8>)> {
    let stream = TcpStream::connect(addr).await.expect("connect to the app");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        if half_close {
            let _ = wr.shutdown().await;
        }
        // Otherwise keep the write half open until the answer is read (no early FIN).
        wr
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rd.read(&mut buf)).await {
            Err(_) => panic!(
                "no answer within 30 s (got {:?})",
                String::from_utf8_lossy(&raw)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
        if answer_complete(&raw, head_only) {
            break;
        }
    }
    writer.abort();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    Some((status, body))
}

/// Whether `raw` holds a whole answer (the connection may stay open: keep-alive, 101).
fn answer_complete(raw: &[u8], head_only: bool) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    if head_only {
        return true;
    }
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    if head.starts_with("http/1.1 101") {
        return true;
    }
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        rest = &rest[i + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_http_requests_never_get_a_5xx_other_than_503_nor_panic_the_server() {
    // Arrange: two players (one's own token, the other's), a game, a pool timeout long
    // enough that this load never sees a 503.
    count_panics();
    let app = spawn_app().await;
    let (own, own_token) = app.new_player("fuzz").await;
    let (other, other_token) = app.new_player("other").await;
    let game = app.new_game(own, &own_token, json!({ "level": 1 })).await;
    let addr = app.api_addr;
    let host = addr.to_string();
    let started = Instant::now();

    // Act: 12,000 requests from 8 concurrent senders, each with its own seed (at most
    // 60 s).
    let senders = (0..8u64).map(|t| {
        let (own_token, other_token, host) = (own_token.clone(), other_token.clone(), host.clone());
        tokio::spawn(async move {
            let mut rng = Rng::new(0xF022_0000 + t);
            let mut seen = Vec::new();
            for _ in 0..1500 {
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let req = fuzz_request(
                    &mut rng,
                    &host,
                    (own, other, game),
                    (&own_token, &other_token),
                );
                let answer = send_raw(addr, req.bytes, req.short_body, req.head_only).await;
                seen.push((req.head, req.well_formed, answer));
            }
            seen
        })
    });
    let results: Vec<_> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flat_map(|r| r.expect("sender"))
        .collect();

    // Assert
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for (head, well_formed, answer) in &results {
        let Some((status, body)) = answer else {
            assert!(!well_formed, "no answer to a well-formed request:\n{head}");
            *statuses.entry("closed".into()).or_default() += 1;
            continue;
        };
        *statuses.entry(status.to_string()).or_default() += 1;
        assert!(
            *status < 500 || *status == 503,
            "{status} for:\n{head}\n{}",
            String::from_utf8_lossy(body)
        );
        if *well_formed && *status >= 400 {
            let text = String::from_utf8_lossy(body);
            let parsed: Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("{status} without a JSON body ({e}): {text:?}\n{head}"));
            assert!(
                parsed["error"].is_string() && parsed["message"].is_string(),
                "{status}: {parsed}\n{head}"
            );
            assert_no_leak(&text);
        }
    }
    eprintln!(
        "{} requests in {:.1} s: {statuses:?}",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
    assert!(
        statuses.len() >= 6,
        "the fuzzer reached many outcomes: {statuses:?}"
    );
    // Still serving, with the budget intact.
    let r = app
        .client
        .get(&format!("/api/players/{own}"), Some(&own_token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let budget = app.budget.clone();
    app.stop().await;
    assert_eq!(budget.in_use(), 0);
}

// ---- WebSocket messages ---------------------------------------------------------------

/// What the parser must make of a JSON value: the documented shapes only.
fn expected(v: &Value) -> Option<&'static str> {
    let m = v.as_object()?;
    match m.get("type")?.as_str()? {
        "quests" if m.len() == 1 => Some("quests"),
        "event"
            if m.len() == 3
                && m.get("kind").is_some_and(Value::is_string)
                && m.get("amount").and_then(Value::as_i64).is_some() =>
        {
            Some("event")
        }
        _ => None,
    }
}

fn random_message(rng: &mut Rng) -> Value {
    let mut m = match rng.below(3) {
        0 => json!({ "type": "quests" }),
        1 => json!({ "type": "event", "kind": rng.pick(STRINGS), "amount": 1 }),
        _ => return random_json(rng, 0),
    };
    for _ in 0..rng.below(3) {
        match rng.below(5) {
            0 => m["amount"] = random_number(rng),
            1 => m["type"] = json!(rng.pick(&["event", "quests", "Event", "", "progress"])),
            2 => m[rng.pick(KEYS)] = random_json(rng, 1),
            3 => {
                let key = rng.pick(KEYS);
                m.as_object_mut().map(|o| o.remove(key));
            }
            _ => m["kind"] = random_json(rng, 1),
        }
    }
    m
}

/// Byte-level mutations of a serialized message (may break UTF-8: then it is skipped,
/// as a text frame cannot carry it).
fn mutate_text(rng: &mut Rng, text: &str) -> Option<String> {
    let mut b = text.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let alphabet = b"{}[]\":,0123456789-.eE \\tnul\x00";
        match rng.below(3) {
            0 if !b.is_empty() => {
                let i = rng.index(b.len());
                b.remove(i);
            }
            1 => {
                let i = rng.index(b.len() + 1);
                b.insert(i, alphabet[rng.index(alphabet.len())]);
            }
            _ if !b.is_empty() => {
                let i = rng.index(b.len());
                b[i] = alphabet[rng.index(alphabet.len())];
            }
            _ => {}
        }
    }
    String::from_utf8(b).ok()
}

#[test]
fn the_websocket_message_parser_accepts_exactly_the_documented_shapes() {
    let mut rng = Rng::new(0x5EED_0057);
    let (mut accepted, mut refused, mut mutated) = (0, 0, 0);
    for _ in 0..20_000 {
        let value = random_message(&mut rng);
        let text = value.to_string();
        let parsed = std::panic::catch_unwind(|| serde_json::from_str::<ClientMessage>(&text))
            .unwrap_or_else(|_| panic!("parsing {text} panicked"));
        let want = expected(&value);
        match (&parsed, want) {
            (Ok(ClientMessage::Quests {}), Some("quests")) => accepted += 1,
            (Ok(ClientMessage::Event { kind, amount }), Some("event")) => {
                assert_eq!(Some(kind.as_str()), value["kind"].as_str(), "{text}");
                assert_eq!(Some(*amount), value["amount"].as_i64(), "{text}");
                // Validation decides the rest, without panicking.
                let _ = server::gameplay::validate_event(kind, *amount);
                accepted += 1;
            }
            (Err(_), None) => refused += 1,
            (got, want) => panic!("{text}: parsed {got:?}, expected {want:?}"),
        }
        if let Some(text) = mutate_text(&mut rng, &text) {
            mutated += 1;
            let r = std::panic::catch_unwind(|| serde_json::from_str::<ClientMessage>(&text))
                .unwrap_or_else(|_| panic!("parsing {text:?} panicked"));
            // Whatever parses must be one of the shapes, read back the same way.
            if r.is_ok() {
                let v: Value = serde_json::from_str(&text).expect("accepted text is JSON");
                assert!(expected(&v).is_some(), "accepted {text:?}");
            }
        }
    }
    assert!(
        accepted > 2_000 && refused > 2_000 && mutated > 10_000,
        "the generator explores both sides ({accepted} accepted, {refused} refused, {mutated} mutated)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_websocket_messages_get_a_reply_each_and_the_socket_stays_open() {
    // Arrange
    count_panics();
    let app = spawn_app().await;
    let (_, token) = app.new_player("ws-fuzz").await;
    let mut request = format!("ws://{}/ws", app.api_addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let mut rng = Rng::new(0x5EED_0058);

    // Act + Assert: 400 messages (valid, invalid, mutated, binary, empty).
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..400 {
        let message = match rng.below(10) {
            0 => Message::Binary(vec![0xff, 0, 1].into()),
            1 => Message::Text("".into()),
            2 => {
                let text = random_message(&mut rng).to_string();
                Message::Text(mutate_text(&mut rng, &text).unwrap_or_default().into())
            }
            _ => Message::Text(random_message(&mut rng).to_string().into()),
        };
        let shown = format!("{message:?}");
        socket.send(message).await.expect("send");
        let reply = loop {
            let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .unwrap_or_else(|_| panic!("no reply within 10 s to message {i}: {shown}"))
                .unwrap_or_else(|| panic!("socket closed after {shown}"))
                .unwrap_or_else(|e| panic!("socket error after {shown}: {e}"));
            let Message::Text(text) = next else {
                panic!("unexpected frame after {shown}: {next:?}");
            };
            let v: Value = serde_json::from_str(text.as_str()).expect("JSON reply");
            if v["type"] != "quest_completed" {
                break v;
            }
        };
        let key = match reply["type"].as_str() {
            Some("progress") => "progress".to_owned(),
            Some("error") => format!("error:{}", reply["error"].as_str().unwrap_or("?")),
            _ => panic!("reply {reply} to {shown}"),
        };
        assert!(
            !matches!(key.as_str(), "error:internal" | "error:?"),
            "{reply} to {shown}"
        );
        assert_no_leak(&reply.to_string());
        *codes.entry(key).or_default() += 1;
    }

    // An oversized message closes the socket (1009), and nothing panics.
    let big = format!(
        "{{\"type\":\"quests\",\"pad\":\"{}\"}}",
        "x".repeat(20 * 1024)
    );
    let _ = socket.send(Message::Text(big.into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the oversized message ends the session");
    eprintln!("replies: {codes:?}; oversized message: close {closed:?}");
    assert!(
        codes.contains_key("progress") && codes.len() >= 3,
        "{codes:?}"
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
    app.stop().await;
}
