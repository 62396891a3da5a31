//! WebSocket messages: the parser accepts exactly the documented shapes, and a live
//! socket answers each random message and stays open.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use seeded_rng::Rng;
use serde_json::{Value, json};
use server::ws::ClientMessage;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{assert_no_leak, spawn_app};
use crate::values::{KEYS, STRINGS, random_json, random_number};
use crate::{PANICS, count_panics};

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
