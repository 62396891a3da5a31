//! The server's own environment variables: the one table of their names, defaults,
//! meanings and accepted values.
//!
//! The database variables (`DATABASE_URL`, `MAX_CONNECTIONS`, `DB_*` of the pools) are
//! [`db_budget::VARIABLES`]; the server adds these. [`Settings::resolve`] parses each
//! default from here, `--help` shows them (see [`Flags`]), and a test checks the README's
//! configuration tables against both lists.
//!
//! [`Settings::resolve`]: crate::settings::Settings::resolve
//! [`Flags`]: crate::cli::Flags

use crate::secret::MIN_SECRET_BYTES;

/// One variable of the server: what it is called, what it defaults to, what it sets.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The environment variable.
    pub name: &'static str,
    /// Its default, as written in the README (`required` when there is none).
    pub default: &'static str,
    /// What it sets, in a few words (`--help`).
    pub meaning: &'static str,
    /// The values it accepts.
    pub accepts: Accepts,
}

/// The values a [`Variable`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// A socket address, `IP:PORT`.
    Address,
    /// A key of at least [`MIN_SECRET_BYTES`] bytes.
    Secret,
    /// A duration with a unit ([`db_budget::parse_duration`]).
    Duration,
    /// A duration with a unit, or `0` for off ([`db_budget::parse_duration_or_off`]).
    DurationOrOff,
    /// A whole number from `min` to `max`.
    WholeNumber {
        /// The smallest accepted.
        min: i64,
        /// The largest accepted.
        max: i64,
    },
}

/// Every variable the server reads beside [`db_budget::VARIABLES`], in README order.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "SERVER_SECRET",
        default: "required",
        meaning: "Key that signs player tokens",
        accepts: Accepts::Secret,
    },
    Variable {
        name: "LISTEN_ADDR",
        default: "0.0.0.0:8080",
        meaning: "API listener address",
        accepts: Accepts::Address,
    },
    Variable {
        name: "ADMIN_ADDR",
        // Loopback: the admin listener takes no tokens.
        default: "127.0.0.1:9090",
        meaning: "Admin listener address (health, metrics, dashboard)",
        accepts: Accepts::Address,
    },
    Variable {
        name: "ADMIN_TOKEN",
        // Unset: the control routes (suspend, resume, evict, budget) answer 403; the
        // read-only admin routes need no token.
        default: "unset",
        meaning: "Bearer token of the admin listener's control routes (unset: they answer 403)",
        accepts: Accepts::Secret,
    },
    Variable {
        name: "DB_RESERVED_CONNECTIONS",
        // Tools and people (a shell, a migration, monitoring, a backup) and a connection
        // the server still counts after it closed (README, "The reserve").
        default: "5",
        meaning: "Connections of the database server left for others (admins, tools, other apps)",
        accepts: Accepts::WholeNumber {
            min: 0,
            max: 100_000,
        },
    },
    Variable {
        name: "DB_INSTANCES",
        default: "1",
        meaning: "Instances of this server sharing the database server; multiplies the budget \
                  in the startup check",
        accepts: Accepts::WholeNumber {
            min: 1,
            max: 10_000,
        },
    },
    Variable {
        name: "DB_FLEET_BUDGET",
        // Off: each instance keeps its own MAX_CONNECTIONS (the static split).
        default: "0",
        meaning: "Physical connections all instances together may hold; each keeps \
                  MAX_CONNECTIONS and leases the rest from the others (0: off)",
        accepts: Accepts::WholeNumber {
            min: 0,
            max: 100_000,
        },
    },
    Variable {
        name: "DB_SERVER_VIEW_INTERVAL",
        // Often enough to follow an incident, rarely enough to cost the server nothing
        // (three small reads); drift is reported after two intervals.
        default: "10s",
        meaning: "How often the database server's own view of connections is read, on one \
                  connection of the budget; 0 turns it off",
        accepts: Accepts::DurationOrOff,
    },
    Variable {
        name: "SHUTDOWN_TIMEOUT",
        default: "10s",
        meaning: "Longest wait for in-flight requests at shutdown",
        accepts: Accepts::Duration,
    },
    Variable {
        name: "DAY_RESET_HOUR",
        default: "0",
        meaning: "Hour at which the game day starts",
        accepts: Accepts::WholeNumber { min: 0, max: 23 },
    },
    Variable {
        name: "DAY_UTC_OFFSET_MINUTES",
        default: "0",
        meaning: "Offset of the game day's zone from UTC in minutes",
        accepts: Accepts::WholeNumber {
            min: -840,
            max: 840,
        },
    },
    Variable {
        name: "QUESTS_PER_DAY",
        default: "3",
        meaning: "Daily quests handed to each player",
        accepts: Accepts::WholeNumber {
            min: 1,
            max: retention::MAX_QUESTS_PER_DAY as i64,
        },
    },
];

/// The server's variable `name`.
///
/// # Panics
///
/// When `name` is not in [`VARIABLES`] (a bug of the caller, caught by the settings
/// tests, which resolve every variable).
pub(crate) fn variable(name: &str) -> &'static Variable {
    match VARIABLES.iter().find(|v| v.name == name) {
        Some(var) => var,
        None => panic!("{name} is not in the server's VARIABLES"),
    }
}

/// The `--help` text of variable `name`, of either table: its meaning, the accepted
/// range of a number, the variable and its default.
pub(crate) fn help(name: &str) -> String {
    let (meaning, default, range) = match VARIABLES.iter().find(|v| v.name == name) {
        Some(var) => (var.meaning, var.default, range_of(var.accepts)),
        None => {
            let var = db_budget::VARIABLES
                .iter()
                .find(|v| v.name == name)
                .unwrap_or_else(|| panic!("{name} is in neither table of variables"));
            (var.meaning, var.default, String::new())
        }
    };
    let default = match default {
        "required" | "none" => "[required]".to_owned(),
        default => format!("[default: {default}]"),
    };
    format!("{meaning}{range} [env: {name}] {default}")
}

fn range_of(accepts: Accepts) -> String {
    match accepts {
        Accepts::WholeNumber { min, max } => format!(" ({min}..={max})"),
        Accepts::Secret => format!(
            ", at least {MIN_SECRET_BYTES} bytes; prefer the environment, since flags show in `ps`"
        ),
        Accepts::Address | Accepts::Duration | Accepts::DurationOrOff => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));

    /// `(line number, name, default)` of every row of the README's configuration tables
    /// (a row may list several variables: `` `A`, `B` | 0, 0 ``).
    fn readme_rows() -> Vec<(usize, String, String)> {
        let mut rows = Vec::new();
        let mut in_section = false;
        for (i, line) in README.lines().enumerate() {
            if line.starts_with("## ") {
                in_section = line == "## Configuration";
                continue;
            }
            if !in_section || !line.starts_with("| `") {
                continue;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let names: Vec<&str> = cells[1]
                .split(',')
                .map(|n| n.trim().trim_matches('`'))
                .collect();
            let defaults: Vec<&str> = if names.len() > 1 {
                cells[2].split(',').map(str::trim).collect()
            } else {
                vec![cells[2]]
            };
            for (k, name) in names.iter().enumerate() {
                let default = defaults.get(k).copied().unwrap_or("");
                rows.push((i + 1, (*name).to_owned(), default.to_owned()));
            }
        }
        rows
    }

    /// `(name, default, where it is written)` of every variable in code.
    fn code_table() -> Vec<(&'static str, &'static str, &'static str)> {
        let server = VARIABLES
            .iter()
            .map(|v| (v.name, v.default, "crates/server/src/variables.rs"));
        let db = db_budget::VARIABLES
            .iter()
            .map(|v| (v.name, v.default, "crates/db-budget/src/config.rs"));
        server.chain(db).collect()
    }

    #[test]
    fn the_readme_configuration_tables_match_the_tables_in_code() {
        let rows = readme_rows();
        let code = code_table();
        let mut wrong = Vec::new();
        for (line, name, default) in &rows {
            match code.iter().find(|(n, ..)| n == name) {
                None => wrong.push(format!(
                    "README.md:{line}: `{name}` is read by no one; remove the row, or add it \
                     to VARIABLES in crates/server/src/variables.rs"
                )),
                Some((_, code_default, path)) if code_default != default => wrong.push(format!(
                    "README.md:{line}: `{name}` defaults to {code_default} in {path}, the \
                     README says {default}; write {code_default} in the README's default \
                     column (or change the table in {path})"
                )),
                Some(_) => {}
            }
        }
        for (name, default, path) in &code {
            if !rows.iter().any(|(_, n, _)| n == name) {
                wrong.push(format!(
                    "README.md: no configuration row for `{name}` ({path}); add \
                     `| `{name}` | {default} | … |` under ## Configuration"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_variable_has_a_help_text_with_its_default() {
        for (name, default, _) in code_table() {
            let help = help(name);
            assert!(help.contains(&format!("[env: {name}]")), "{help}");
            if !matches!(default, "none" | "required") {
                assert!(help.ends_with(&format!("[default: {default}]")), "{help}");
            }
        }
        assert_eq!(
            help("DAY_RESET_HOUR"),
            "Hour at which the game day starts (0..=23) [env: DAY_RESET_HOUR] [default: 0]"
        );
    }
}
