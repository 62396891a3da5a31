//! Slow statements by SQL text: how often each ran slower than `DB_SLOW_QUERY`, and
//! the p99 of its recent slow runs, for the live page.
//!
//! # Memory
//!
//! Bounded whatever the workload: at most [`TRACKED`] texts per side, each cut to
//! [`TEXT_BYTES`] bytes, each with its last [`SAMPLES`] durations (about 1.5 KiB per
//! text, under 100 KiB per budget). When a side's table is full, a new text takes the
//! place of the one seen least often; a text taken out and seen again starts counting
//! anew. The snapshot lists the [`LISTED`] most frequent, which are never the ones
//! taken out while fewer than `TRACKED − LISTED` others compete for the last places.
//!
//! Only statements already found slow are recorded (the same ones the log shows), so
//! the table's lock is taken off the hot path; the text is prepared before it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::side::Side;
use crate::sql::mask_values;

/// Distinct SQL texts kept per side.
pub(crate) const TRACKED: usize = 32;
/// Slow statements a snapshot lists, both sides together, most frequent first.
pub(crate) const LISTED: usize = 20;
/// Longest SQL text kept, in bytes (cut at a character boundary, ending in `…`).
pub(crate) const TEXT_BYTES: usize = 512;
/// Recent durations kept per text, for its p99.
pub(crate) const SAMPLES: usize = 100;

/// One SQL text that ran slower than `DB_SLOW_QUERY`, as a snapshot lists it.
///
/// JSON: `{"side": "async", "sql": "DO SLEEP(0.3)", "count": 4, "p99_ms": 301.2}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SlowStatement {
    /// The side that ran it.
    pub side: Side,
    /// The SQL text as the helper was given it, with its values masked (every literal
    /// `?`, a list of them after `IN` one `?`; placeholders stay), comments dropped,
    /// runs of whitespace made one space, cut at 512 bytes (ending in `…`).
    pub sql: String,
    /// How many times it ran slow since it was first seen (or taken in again).
    pub count: u64,
    /// The 99th percentile (nearest rank) of its last 100 slow runs.
    #[serde(rename = "p99_ms", serialize_with = "as_ms")]
    pub p99: Duration,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

#[derive(Debug)]
struct Entry {
    count: u64,
    /// Microseconds, a ring of the last `SAMPLES`.
    recent: Vec<u64>,
    next: usize,
}

impl Entry {
    fn push(&mut self, us: u64) {
        self.count += 1;
        if self.recent.len() < SAMPLES {
            self.recent.push(us);
        } else {
            self.recent[self.next] = us;
        }
        self.next = (self.next + 1) % SAMPLES;
    }
}

/// The per-side tables; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct SlowStatements {
    sides: [Mutex<HashMap<Box<str>, Entry>>; 2],
}

impl SlowStatements {
    fn lock(&self, side: Side) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Entry>> {
        // A panic while holding it leaves at worst one entry's ring mid-update.
        self.sides[side.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one slow run of `sql` on `side`.
    #[cfg(test)]
    fn record(&self, side: Side, sql: &str, took: Duration) {
        self.record_shown(side, normalise(sql), took);
    }

    /// Counts one slow run on `side` of the statement shown as `text` ([`normalise`]).
    pub(crate) fn record_shown(&self, side: Side, text: String, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut table = self.lock(side);
        if let Some(entry) = table.get_mut(text.as_str()) {
            entry.push(us);
            return;
        }
        if table.len() >= TRACKED {
            let rarest = table
                .iter()
                .min_by_key(|(_, e)| e.count)
                .map(|(k, _)| k.clone());
            if let Some(rarest) = rarest {
                table.remove(&rarest);
            }
        }
        let mut entry = Entry {
            count: 0,
            recent: Vec::new(),
            next: 0,
        };
        entry.push(us);
        table.insert(text.into_boxed_str(), entry);
    }

    /// The [`LISTED`] most frequent slow statements of both sides.
    pub(crate) fn top(&self) -> Vec<SlowStatement> {
        let mut copied: Vec<(Side, String, u64, Vec<u64>)> = Vec::new();
        for side in Side::ALL {
            let table = self.lock(side);
            copied.extend(
                table
                    .iter()
                    .map(|(sql, e)| (side, sql.to_string(), e.count, e.recent.clone())),
            );
        }
        let mut listed: Vec<SlowStatement> = copied
            .into_iter()
            .map(|(side, sql, count, recent)| SlowStatement {
                side,
                sql,
                count,
                p99: Duration::from_micros(p99(recent)),
            })
            .collect();
        listed.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.sql.cmp(&b.sql)));
        listed.truncate(LISTED);
        listed
    }
}

/// Nearest-rank 99th percentile of `samples` (0 for none).
fn p99(mut samples: Vec<u64>) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = (samples.len() * 99).div_ceil(100).max(1);
    samples[rank - 1]
}

/// The text shown for `sql`: its values masked and its comments dropped
/// ([`mask_values`]: literals become `?`, a list of them after `IN` one `?`), runs of
/// white space as one space, trimmed, cut at [`TEXT_BYTES`] with `…`.
pub(crate) fn normalise(sql: &str) -> String {
    let mut out = mask_values(sql, TEXT_BYTES);
    if out.len() > TEXT_BYTES {
        let mut cut = TEXT_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn statements_are_counted_per_side_and_text_with_a_p99_of_their_runs() {
        let slow = SlowStatements::default();
        for i in 1..=100 {
            slow.record(Side::Async, "SELECT  *\n  FROM t WHERE id = ?", ms(i));
        }
        slow.record(Side::Sync, "SELECT * FROM t WHERE id = ?", ms(900));
        let top = slow.top();
        assert_eq!(top.len(), 2, "{top:?}");
        assert_eq!(
            (top[0].side, top[0].sql.as_str(), top[0].count, top[0].p99),
            (Side::Async, "SELECT * FROM t WHERE id = ?", 100, ms(99))
        );
        assert_eq!(
            (top[1].side, top[1].count, top[1].p99),
            (Side::Sync, 1, ms(900))
        );
        assert_eq!(
            serde_json::to_value(&top[1]).unwrap(),
            serde_json::json!({"side": "sync", "sql": "SELECT * FROM t WHERE id = ?",
                               "count": 1, "p99_ms": 900.0})
        );
    }

    #[test]
    fn the_p99_follows_the_recent_runs_only() {
        let slow = SlowStatements::default();
        slow.record(Side::Async, "DO SLEEP(?)", Duration::from_secs(60));
        for _ in 0..SAMPLES {
            slow.record(Side::Async, "DO SLEEP(?)", ms(300));
        }
        let top = slow.top();
        assert_eq!((top[0].count, top[0].p99), (SAMPLES as u64 + 1, ms(300)));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_frequent_statements() {
        // Arrange: one frequent statement, then far more distinct texts than are kept,
        // each longer than the text bound.
        let slow = SlowStatements::default();
        for _ in 0..5 {
            slow.record(Side::Sync, "SELECT frequent", ms(250));
        }
        let long = "x".repeat(TEXT_BYTES * 2);
        for i in 0..1_000 {
            slow.record(Side::Sync, &format!("SELECT c{i}_{long}"), ms(250));
        }

        // Assert
        assert_eq!(slow.lock(Side::Sync).len(), TRACKED);
        let top = slow.top();
        assert_eq!(top.len(), LISTED);
        assert_eq!((top[0].sql.as_str(), top[0].count), ("SELECT frequent", 5));
        assert!(
            top.iter()
                .all(|s| s.sql.len() <= TEXT_BYTES + '…'.len_utf8()),
            "texts are cut"
        );
        assert!(top[1].sql.ends_with('…'), "{}", top[1].sql);
    }

    #[test]
    fn a_text_is_cut_at_a_character_boundary() {
        let text = "é".repeat(TEXT_BYTES); // two bytes each
        let cut = normalise(&text);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.len(), TEXT_BYTES + '…'.len_utf8());
        assert_eq!(normalise("  DO\tSLEEP(0.3)\n"), "DO SLEEP(?)");
    }

    #[test]
    fn statements_that_differ_only_in_their_values_are_one_text_showing_none() {
        // Arrange: what legacy code writes, values and all.
        let slow = SlowStatements::default();
        let secrets = ["s3cr3t", "o''brien", "987654321", "4711", "alice"];

        // Act
        for (id, name) in [(4711, "s3cr3t"), (4712, "o''brien")] {
            slow.record(
                Side::Sync,
                &format!(
                    "SELECT * FROM players /* user=alice */ WHERE id IN ({id}, 987654321) \
                     AND name = '{name}' -- trace\n"
                ),
                ms(250),
            );
        }

        // Assert
        let top = slow.top();
        assert_eq!(top.len(), 1, "{top:?}");
        assert_eq!(
            (top[0].sql.as_str(), top[0].count),
            ("SELECT * FROM players WHERE id IN (?) AND name = ?", 2)
        );
        assert!(!secrets.iter().any(|s| top[0].sql.contains(s)));
    }
}
