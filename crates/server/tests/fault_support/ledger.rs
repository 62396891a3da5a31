//! The reward ledger against the clients' records: every grant a client was told about
//! is in the ledger exactly once, and every other row has an explanation.

use std::collections::{HashMap, HashSet};

use loadgen::{Recorder, Source, Unsure};

use super::Rig;

/// One row of `reward_ledger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// `id`.
    pub id: u64,
    /// `player_id`.
    pub player_id: u64,
    /// `source`.
    pub source: Source,
    /// `source_id`.
    pub source_id: u64,
}

/// What the ledger comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerFigures {
    /// Grants the clients were told about (each found exactly once in the ledger).
    pub confirmed: usize,
    /// Ledger rows of attempts whose answer was a 503 or lost: committed although the
    /// client was not told so (allowed; the client sees them as 409 on retry).
    pub committed_unconfirmed: usize,
    /// Rows in the ledger.
    pub rows: usize,
}

/// Compares the clients' records with the ledger: every grant a client was told about
/// is there exactly once, with the player and source it was told; no source is paid
/// twice, and no client was told twice about one source; every other row belongs to an
/// attempt whose outcome its client could not know.
///
/// # Panics
///
/// On any of those violations, listing them.
pub fn check_ledger(rows: &[LedgerRow], recorders: &[&Recorder]) -> LedgerFigures {
    let grants: Vec<_> = recorders.iter().flat_map(|r| r.grants()).collect();
    let unsure: Vec<_> = recorders.iter().flat_map(|r| r.unsure_attempts()).collect();
    let mut problems = Vec::new();

    let by_id: HashMap<u64, &LedgerRow> = rows.iter().map(|r| (r.id, r)).collect();
    let mut per_source: HashMap<(Source, u64), usize> = HashMap::new();
    for r in rows {
        *per_source.entry((r.source, r.source_id)).or_default() += 1;
    }
    for ((source, id), n) in &per_source {
        if *n > 1 {
            problems.push(format!("{} {id} paid {n} times", source.as_str()));
        }
    }
    let mut daily_per_player: HashMap<u64, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.source == Source::DailyReward) {
        *daily_per_player.entry(r.player_id).or_default() += 1;
    }
    for (player, n) in daily_per_player {
        if n > 1 {
            problems.push(format!("player {player} got {n} daily rewards in one day"));
        }
    }

    let mut told_ids = HashSet::new();
    let mut told_sources = HashSet::new();
    for g in &grants {
        if !told_ids.insert(g.ledger_id) || !told_sources.insert((g.source, g.source_id)) {
            problems.push(format!("a client was told twice about {g:?}"));
        }
        match by_id.get(&g.ledger_id) {
            None => problems.push(format!("missing from the ledger: {g:?}")),
            Some(r)
                if (r.player_id, r.source, r.source_id) != (g.player_id, g.source, g.source_id) =>
            {
                problems.push(format!(
                    "ledger row {r:?} is not what the client was told: {g:?}"
                ));
            }
            Some(_) => {}
        }
    }

    let unsure_set: HashSet<&Unsure> = unsure.iter().collect();
    let mut committed_unconfirmed = 0;
    for r in rows.iter().filter(|r| !told_ids.contains(&r.id)) {
        let attempt = Unsure {
            player_id: r.player_id,
            source: r.source,
            source_id: (r.source == Source::Quest).then_some(r.source_id),
        };
        if unsure_set.contains(&attempt) {
            committed_unconfirmed += 1;
        } else {
            problems.push(format!(
                "ledger row {r:?}: no client was told of it, and none had an unanswered attempt"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ledger and client records disagree ({} problems):\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    LedgerFigures {
        confirmed: grants.len(),
        committed_unconfirmed,
        rows: rows.len(),
    }
}

impl Rig {
    /// The reward ledger: `(id, player_id, source, source_id)`.
    pub async fn ledger(&self) -> Vec<LedgerRow> {
        let db = self.app.db.clone();
        let out = self
            .admin(move |s| {
                s.sql(&format!(
                    "SELECT id, player_id, source, source_id FROM `{db}`.reward_ledger"
                ))
            })
            .await
            .expect("read the ledger");
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                LedgerRow {
                    id: f[0].parse().expect("id"),
                    player_id: f[1].parse().expect("player_id"),
                    source: match f[2] {
                        "quest" => Source::Quest,
                        "daily_reward" => Source::DailyReward,
                        other => panic!("unknown ledger source {other:?}"),
                    },
                    source_id: f[3].parse().expect("source_id"),
                }
            })
            .collect()
    }
}

/// The ledger check over everything `recorders` saw, printed.
pub async fn check_and_print_ledger(rig: &Rig, recorders: &[&Recorder]) -> LedgerFigures {
    let rows = rig.ledger().await;
    let figures = check_ledger(&rows, recorders);
    eprintln!(
        "   ledger: {} rows; {} grants confirmed to clients, each exactly once; {} committed while the client got a 503 or lost the answer; unsure attempts {}",
        figures.rows,
        figures.confirmed,
        figures.committed_unconfirmed,
        recorders
            .iter()
            .map(|r| r.unsure_attempts().len())
            .sum::<usize>()
    );
    figures
}
