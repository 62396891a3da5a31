//! The longest current holders, grouped by call site: who has the connections that
//! callers wait for, as `file:line` (never values or SQL).

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::cause::LiveCheckout;
use crate::error::HumanDuration;

/// The live checkouts taken at one call site.
///
/// `Display`: `src/legacy/saved_games.rs:88 held 12.3s (×6)`. JSON:
/// `{"site": "src/legacy/saved_games.rs:88", "held_ms": 12300, "count": 6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// Where the checkouts were taken (the caller of `acquire`, `get`, …); only its file
    /// and line are shown.
    pub site: &'static Location<'static>,
    /// How long the longest of them has been held.
    pub held: Duration,
    /// How many checkouts of this site are live.
    pub count: u32,
}

impl Holder {
    /// The call site as `file:line`.
    pub fn site_text(&self) -> String {
        format!("{}:{}", self.site.file(), self.site.line())
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} held {} (×{})",
            self.site.file(),
            self.site.line(),
            HumanDuration(self.held),
            self.count
        )
    }
}

impl Serialize for Holder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("Holder", 3)?;
        o.serialize_field("site", &self.site_text())?;
        o.serialize_field(
            "held_ms",
            &u64::try_from(self.held.as_millis()).unwrap_or(u64::MAX),
        )?;
        o.serialize_field("count", &self.count)?;
        o.end()
    }
}

/// The `n` call sites holding longest at `now`, longest first (then by site, so that
/// equal holds list in a stable order). Work is done on the copy, not under any lock.
pub(crate) fn longest(live: &[LiveCheckout], now: Instant, n: usize) -> Vec<Holder> {
    let mut by_site: HashMap<(&'static str, u32), Holder> = HashMap::new();
    for c in live {
        let held = now.saturating_duration_since(c.since);
        by_site
            .entry((c.site.file(), c.site.line()))
            .and_modify(|h| {
                h.held = h.held.max(held);
                h.count += 1;
            })
            .or_insert(Holder {
                site: c.site,
                held,
                count: 1,
            });
    }
    let mut holders: Vec<Holder> = by_site.into_values().collect();
    holders.sort_by(|a, b| {
        b.held
            .cmp(&a.held)
            .then_with(|| (a.site.file(), a.site.line()).cmp(&(b.site.file(), b.site.line())))
    });
    holders.truncate(n);
    holders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn here() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn holders_group_by_file_and_line_longest_first_and_keep_the_top_n() {
        let now = Instant::now();
        // One site per line: a site is its file and line.
        let a = here();
        let b = here();
        let c = here();
        let at = |site, secs| LiveCheckout {
            site,
            since: now - Duration::from_secs(secs),
            statement_since: 0,
        };
        let live = [at(a, 3), at(b, 12), at(a, 7), at(c, 1), at(b, 2), at(b, 5)];
        let top = longest(&live, now, 2);
        assert_eq!(top.len(), 2, "{top:?}");
        assert_eq!(
            (top[0].site, top[0].held, top[0].count),
            (b, Duration::from_secs(12), 3)
        );
        assert_eq!(
            (top[1].site, top[1].held, top[1].count),
            (a, Duration::from_secs(7), 2)
        );
        assert!(longest(&[], now, 3).is_empty());
    }

    #[test]
    fn a_holder_reads_file_line_duration_and_count_and_nothing_else() {
        let site = here();
        let h = Holder {
            site,
            held: Duration::from_millis(12_340),
            count: 6,
        };
        let expected_site = format!("{}:{}", file!(), site.line());
        assert_eq!(h.to_string(), format!("{expected_site} held 12.3s (×6)"));
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            serde_json::json!({"site": expected_site, "held_ms": 12_340, "count": 6})
        );
    }
}
