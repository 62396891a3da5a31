//! The request fuzzer against the running application.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use seeded_rng::Rng;
use serde_json::{Value, json};

use crate::common::{assert_no_leak, spawn_app};
use crate::requests::fuzz_request;
use crate::wire::send_raw;
use crate::{PANICS, count_panics};

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
