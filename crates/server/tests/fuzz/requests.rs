//! One fuzzed HTTP request: a random method and route, a path with random ids, random
//! headers and a random body, as bytes.

use seeded_rng::Rng;

use crate::values::{random_body, random_id};

/// Paths (`{id}` filled by [`random_id`]) and the methods they serve.
pub(crate) const ROUTES: &[(&str, &[&str])] = &[
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
pub(crate) struct Fuzzed {
    pub(crate) bytes: Vec<u8>,
    pub(crate) well_formed: bool,
    /// The body is shorter than its `Content-Length`: the server waits for the rest
    /// (as it must), so the client closes its side after sending.
    pub(crate) short_body: bool,
    /// `HEAD`: the answer has no body, whatever its `Content-Length` says.
    pub(crate) head_only: bool,
    pub(crate) head: String,
}

pub(crate) fn fuzz_request(
    rng: &mut Rng,
    addr: &str,
    ids: (u64, u64, u64),
    tokens: (&str, &str),
) -> Fuzzed {
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
