//! Random values: JSON of every shape, request bodies (shaped like the API's, mutated,
//! invalid UTF-8, truncated, oversized) and path ids.

use seeded_rng::Rng;
use serde_json::{Map, Value, json};

pub(crate) const STRINGS: &[&str] = &[
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

pub(crate) const KEYS: &[&str] = &[
    "name", "kind", "amount", "state", "type", "id", "token", "", "Name", "amount ",
];

pub(crate) fn random_number(rng: &mut Rng) -> Value {
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

pub(crate) fn random_json(rng: &mut Rng, depth: usize) -> Value {
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
pub(crate) fn shaped_body(rng: &mut Rng) -> Value {
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

pub(crate) fn random_body(rng: &mut Rng) -> Option<Vec<u8>> {
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
pub(crate) fn random_id(rng: &mut Rng, own: u64, other: u64, game: u64) -> String {
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
