//! Property test of the configuration parser: for random and mutated values of every
//! variable, parsing never panics, a rejected value is reported against the variable it
//! came from, an accepted one is within the documented range, and a password never shows.
//! (Fixed seeds, the workspace's `seeded_rng::Rng`: reproducible.)

use std::time::Duration;

use db_budget::{Config, VARIABLES};
use seeded_rng::Rng;

const SEEDS: &[&str] = &[
    "20",
    "0",
    "-1",
    "10s",
    "250ms",
    "5m",
    "1h",
    "24h",
    "25h",
    "",
    " ",
    "1.5s",
    "1e3",
    "9999999999999999999999s",
    "mysql://app:SECRETPW@127.0.0.1:3306/game",
    "mysql://app:SECRETPW@h/db?socket=/tmp/x.sock",
    "mysql://app:SECRETPW@[::1]:3306/db",
    "mysql://app:SECRETPW@h:70000/db",
    "mysql://app:SECRETPW@/db",
    "mariadb://u@h/d",
    "ms",
    "s",
    "+5s",
    "0x10",
    "10 s",
    "١٠s",
    "10ſ",
    "\u{0}",
    "mysql://app:SECRETPW@h/db?socket=",
];

const ALPHABET: &[char] = &[
    '0', '1', '5', '9', 'm', 's', 'h', '-', '+', '.', ':', '/', '@', '?', '=', '%', ' ', 'x', 'é',
    '\u{0}', '[', ']',
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..rng.below(4) {
        match rng.below(3) {
            0 if !chars.is_empty() => {
                let i = rng.index(chars.len());
                chars.remove(i);
            }
            1 => {
                let i = rng.index(chars.len() + 1);
                chars.insert(i, ALPHABET[rng.index(ALPHABET.len())]);
            }
            _ if !chars.is_empty() => {
                let i = rng.index(chars.len());
                chars[i] = ALPHABET[rng.index(ALPHABET.len())];
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn random_values_never_panic_and_errors_name_their_variable() {
    let mut rng = Rng::new(0x5EED_CAFE);
    let mut accepted = 0;
    let mut rejected = 0;
    for _ in 0..20_000 {
        let var = VARIABLES[rng.index(VARIABLES.len())];
        let seed = SEEDS[rng.index(SEEDS.len())];
        let value = mutate(&mut rng, seed);
        let result = std::panic::catch_unwind(|| {
            Config::from_lookup(|name| (name == var.name).then(|| value.clone()))
        })
        .unwrap_or_else(|_| panic!("parsing {}={value:?} panicked", var.name));
        match result {
            Ok(c) => {
                accepted += 1;
                assert!((1..=10_000).contains(&c.max_connections), "{value:?}");
                for d in [
                    c.connect_timeout,
                    c.pool_timeout,
                    c.idle_timeout,
                    c.max_lifetime,
                    c.leak_threshold,
                    c.slow_query,
                ] {
                    assert!(
                        d > Duration::ZERO && d <= Duration::from_secs(24 * 3600),
                        "{}={value:?} gave {d:?}",
                        var.name
                    );
                }
                assert!(
                    !value.contains(":SECRETPW@") || !format!("{c:?}").contains("SECRETPW"),
                    "{}={value:?}: password in Debug",
                    var.name
                );
            }
            Err(e) => {
                rejected += 1;
                assert_eq!(e.variable(), var.name, "{value:?}");
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("invalid {}=", var.name)), "{msg}");
                // Still written as a credential (`user:password@…`): it must not show.
                if value.contains(":SECRETPW@") {
                    assert!(!msg.contains("SECRETPW"), "password echoed: {msg}");
                }
            }
        }
    }
    assert!(
        accepted > 1_000 && rejected > 1_000,
        "the generator explores both ({accepted} ok, {rejected} rejected)"
    );
}
