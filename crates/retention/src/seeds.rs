//! Seed data defined in code: quest templates and the reward cycle, and the idempotent
//! upserts that mirror them into the database at every server start.

use std::collections::{HashMap, HashSet};

use db_async::{Conn, args};
use serde::Serialize;

use crate::error::RetentionError;
use crate::rules::tiers::CYCLE_DAYS;

/// A daily quest template. `code` is its identity: seeding updates the row with the
/// same code, so changing anything else here changes the template (for quests
/// generated afterwards), and changing the code makes a new template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuestTemplate {
    /// Stable key (at most 64 characters).
    pub code: &'static str,
    /// Shown to the player (at most 128 characters).
    pub title: &'static str,
    /// The progress event that advances it (at most 32 characters).
    pub event_kind: &'static str,
    /// Progress needed to finish (more than 0).
    pub target: u32,
    /// Coins granted on completion.
    pub reward_coins: u32,
    /// Experience granted on completion.
    pub reward_xp: u32,
}

/// The quest templates of this release.
pub const QUEST_TEMPLATES: &[QuestTemplate] = &[
    QuestTemplate {
        code: "play_3_games",
        title: "Play 3 games",
        event_kind: "game_played",
        target: 3,
        reward_coins: 50,
        reward_xp: 20,
    },
    QuestTemplate {
        code: "win_2_games",
        title: "Win 2 games",
        event_kind: "game_won",
        target: 2,
        reward_coins: 100,
        reward_xp: 40,
    },
    QuestTemplate {
        code: "score_5000",
        title: "Score 5,000 points",
        event_kind: "points_scored",
        target: 5000,
        reward_coins: 80,
        reward_xp: 30,
    },
    QuestTemplate {
        code: "collect_200_coins",
        title: "Collect 200 coins",
        event_kind: "coins_collected",
        target: 200,
        reward_coins: 60,
        reward_xp: 25,
    },
    QuestTemplate {
        code: "save_a_game",
        title: "Save a game",
        event_kind: "game_saved",
        target: 1,
        reward_coins: 20,
        reward_xp: 10,
    },
    QuestTemplate {
        code: "create_2_images",
        title: "Create 2 images",
        event_kind: "image_generated",
        target: 2,
        reward_coins: 40,
        reward_xp: 15,
    },
    QuestTemplate {
        code: "play_30_minutes",
        title: "Play for 30 minutes",
        event_kind: "minutes_played",
        target: 30,
        reward_coins: 70,
        reward_xp: 30,
    },
    QuestTemplate {
        code: "finish_a_level",
        title: "Finish a level",
        event_kind: "level_finished",
        target: 1,
        reward_coins: 90,
        reward_xp: 50,
    },
];

/// One day of the login reward cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RewardTier {
    /// Position in the cycle, 1..=7.
    pub day_number: u8,
    /// Coins granted.
    pub coins: u32,
    /// Experience granted.
    pub xp: u32,
}

/// The 7-day login reward cycle of this release (the seventh day is the big one).
pub const REWARD_TIERS: [RewardTier; CYCLE_DAYS as usize] = [
    RewardTier {
        day_number: 1,
        coins: 10,
        xp: 5,
    },
    RewardTier {
        day_number: 2,
        coins: 20,
        xp: 10,
    },
    RewardTier {
        day_number: 3,
        coins: 30,
        xp: 15,
    },
    RewardTier {
        day_number: 4,
        coins: 40,
        xp: 20,
    },
    RewardTier {
        day_number: 5,
        coins: 50,
        xp: 25,
    },
    RewardTier {
        day_number: 6,
        coins: 60,
        xp: 30,
    },
    RewardTier {
        day_number: 7,
        coins: 150,
        xp: 75,
    },
];

/// What a seeding run did. A second run with unchanged code reports only
/// `unchanged` (and wrote nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeedReport {
    /// Rows added.
    pub inserted: u32,
    /// Rows changed to match the code.
    pub updated: u32,
    /// Templates no longer in the code, marked inactive (never deleted: player
    /// quests reference them).
    pub deactivated: u32,
    /// Rows already matching the code.
    pub unchanged: u32,
}

fn validate_templates(templates: &[QuestTemplate]) -> Result<(), RetentionError> {
    let mut codes = HashSet::new();
    for t in templates {
        let bad =
            |what: &str| RetentionError::invalid(format!("quest template {:?}: {what}", t.code));
        if t.code.is_empty() || t.code.chars().count() > 64 {
            return Err(bad("code must have 1..=64 characters"));
        }
        if t.title.is_empty() || t.title.chars().count() > 128 {
            return Err(bad("title must have 1..=128 characters"));
        }
        if t.event_kind.is_empty() || t.event_kind.chars().count() > 32 {
            return Err(bad("event_kind must have 1..=32 characters"));
        }
        if t.target == 0 {
            return Err(bad("target must be more than 0"));
        }
        if !codes.insert(t.code) {
            return Err(bad("code appears twice"));
        }
    }
    Ok(())
}

fn validate_tiers(tiers: &[RewardTier]) -> Result<(), RetentionError> {
    let mut days: Vec<u8> = tiers.iter().map(|t| t.day_number).collect();
    days.sort_unstable();
    if days != (1..=CYCLE_DAYS).collect::<Vec<_>>() {
        return Err(RetentionError::invalid(format!(
            "reward tiers: need day_number 1..={CYCLE_DAYS} exactly once each, got {days:?}"
        )));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: u64,
    code: String,
    title: String,
    event_kind: String,
    target: u32,
    reward_coins: u32,
    reward_xp: u32,
    active: bool,
}

impl TemplateRow {
    fn matches(&self, t: &QuestTemplate) -> bool {
        self.active
            && self.title == t.title
            && self.event_kind == t.event_kind
            && self.target == t.target
            && self.reward_coins == t.reward_coins
            && self.reward_xp == t.reward_xp
    }
}

/// Makes the templates table say what `templates` says: inserts missing codes,
/// updates changed ones (and reactivates them), deactivates codes not in the list.
///
/// Reads first and writes only differences, so an unchanged run writes nothing
/// (no row locks, no auto-increment values burnt). Two servers seeding at once are
/// safe: the insert is an upsert on the unique `code`.
pub(crate) async fn seed_templates(
    conn: &mut Conn,
    templates: &[QuestTemplate],
) -> Result<SeedReport, RetentionError> {
    validate_templates(templates)?;
    let rows: Vec<TemplateRow> = conn
        .fetch_all(
            "SELECT id, code, title, event_kind, target, reward_coins, reward_xp, active \
             FROM daily_quest_templates",
            args![],
        )
        .await?;
    let by_code: HashMap<&str, &TemplateRow> = rows.iter().map(|r| (r.code.as_str(), r)).collect();
    let mut report = SeedReport::default();
    for t in templates {
        match by_code.get(t.code) {
            Some(row) if row.matches(t) => report.unchanged += 1,
            Some(row) => {
                conn.execute(
                    "UPDATE daily_quest_templates SET title = ?, event_kind = ?, target = ?, \
                     reward_coins = ?, reward_xp = ?, active = TRUE WHERE id = ?",
                    args![
                        t.title,
                        t.event_kind,
                        t.target,
                        t.reward_coins,
                        t.reward_xp,
                        row.id
                    ],
                )
                .await?;
                report.updated += 1;
            }
            None => {
                conn.execute(
                    "INSERT INTO daily_quest_templates \
                     (code, title, event_kind, target, reward_coins, reward_xp, active) \
                     VALUES (?, ?, ?, ?, ?, ?, TRUE) \
                     ON DUPLICATE KEY UPDATE title = VALUES(title), event_kind = VALUES(event_kind), \
                     target = VALUES(target), reward_coins = VALUES(reward_coins), \
                     reward_xp = VALUES(reward_xp), active = TRUE",
                    args![t.code, t.title, t.event_kind, t.target, t.reward_coins, t.reward_xp],
                )
                .await?;
                report.inserted += 1;
            }
        }
    }
    let in_code: HashSet<&str> = templates.iter().map(|t| t.code).collect();
    for row in rows
        .iter()
        .filter(|r| r.active && !in_code.contains(r.code.as_str()))
    {
        conn.execute(
            "UPDATE daily_quest_templates SET active = FALSE WHERE id = ?",
            args![row.id],
        )
        .await?;
        report.deactivated += 1;
    }
    Ok(report)
}

/// Makes the tiers table say what `tiers` says (same approach as templates).
pub(crate) async fn seed_tiers(
    conn: &mut Conn,
    tiers: &[RewardTier],
) -> Result<SeedReport, RetentionError> {
    validate_tiers(tiers)?;
    let rows: Vec<(u8, u32, u32)> = conn
        .fetch_all(
            "SELECT day_number, coins, xp FROM daily_reward_tiers",
            args![],
        )
        .await?;
    let by_day: HashMap<u8, (u32, u32)> = rows.iter().map(|&(d, c, x)| (d, (c, x))).collect();
    let mut report = SeedReport::default();
    for t in tiers {
        match by_day.get(&t.day_number) {
            Some(&(coins, xp)) if (coins, xp) == (t.coins, t.xp) => report.unchanged += 1,
            found => {
                conn.execute(
                    "INSERT INTO daily_reward_tiers (day_number, coins, xp) VALUES (?, ?, ?) \
                     ON DUPLICATE KEY UPDATE coins = VALUES(coins), xp = VALUES(xp)",
                    args![t.day_number, t.coins, t.xp],
                )
                .await?;
                if found.is_some() {
                    report.updated += 1;
                } else {
                    report.inserted += 1;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_seeds_are_valid() {
        validate_templates(QUEST_TEMPLATES).unwrap();
        validate_tiers(&REWARD_TIERS).unwrap();
        assert!(
            QUEST_TEMPLATES.len() >= 3,
            "enough templates for the default 3 a day"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        let good = QUEST_TEMPLATES[0];
        for bad in [
            QuestTemplate { target: 0, ..good },
            QuestTemplate { code: "", ..good },
            QuestTemplate {
                event_kind: "an_event_kind_longer_than_32_chars",
                ..good
            },
        ] {
            assert!(matches!(
                validate_templates(&[bad]),
                Err(RetentionError::InvalidInput { .. })
            ));
        }
        assert!(validate_templates(&[good, good]).is_err(), "duplicate code");
    }

    #[test]
    fn tiers_must_cover_the_cycle_exactly() {
        assert!(validate_tiers(&REWARD_TIERS[..6]).is_err());
        let mut twice = REWARD_TIERS;
        twice[6].day_number = 6;
        assert!(validate_tiers(&twice).is_err());
    }
}
