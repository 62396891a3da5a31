//! What the control routes count, and their lines on `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use db_budget::Budget;

/// The control actions, as the `action` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Suspend,
    Resume,
    Evict,
    Budget,
}

impl Action {
    pub(super) const ALL: [Action; 4] = [
        Action::Suspend,
        Action::Resume,
        Action::Evict,
        Action::Budget,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Evict => "evict",
            Action::Budget => "budget",
        }
    }
}

/// Control requests per action, carried out (`ok`) or not (`refused`: unauthorized, off,
/// bad input, not applicable).
#[derive(Debug, Default)]
pub(super) struct ActionCounters([[AtomicU64; 2]; 4]);

impl ActionCounters {
    pub(super) fn count(&self, action: Action, ok: bool) {
        self.0[action as usize][usize::from(!ok)].fetch_add(1, Relaxed);
    }

    fn get(&self, action: Action, ok: bool) -> u64 {
        self.0[action as usize][usize::from(!ok)].load(Relaxed)
    }
}

/// Appends `db_admin_actions_total`, `db_budget_suspended`,
/// `db_budget_suspended_waiting` and `db_budget_units_owed` to a `/metrics` body (format
/// 0.0.4).
pub(super) fn render(out: &mut String, counters: &ActionCounters, budget: &Budget) {
    let name = "db_admin_actions_total";
    let _ = writeln!(
        out,
        "# HELP {name} Control requests on the admin listener (POST /admin/...), by action and \
         result: ok (carried out) or refused (no or wrong ADMIN_TOKEN, bad input, not applicable)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for action in Action::ALL {
        for (result, ok) in [("ok", true), ("refused", false)] {
            let _ = writeln!(
                out,
                "{name}{{action=\"{}\",result=\"{result}\"}} {}",
                action.as_str(),
                counters.get(action, ok)
            );
        }
    }
    let gauges = [
        (
            "db_budget_suspended",
            "1 while the budget is suspended (POST /admin/suspend): new checkouts wait.",
            u32::from(budget.is_suspended()),
        ),
        (
            "db_budget_suspended_waiting",
            "Callers waiting for the suspended budget to resume, both sides.",
            budget.suspended_waiting(),
        ),
        (
            "db_budget_units_owed",
            "Units still to leave use after a shrink (POST /admin/budget) or a fleet lease given \
             up: each returned connection is closed until it reaches 0.",
            budget.owed(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_action_and_result_has_its_own_sample_and_the_suspension_and_the_debt_show() {
        // Arrange
        let counters = ActionCounters::default();
        counters.count(Action::Suspend, true);
        counters.count(Action::Budget, false);
        counters.count(Action::Budget, false);
        let budget = Budget::new(2, Duration::from_secs(30));
        budget.suspend();
        let _held = [
            budget.try_acquire(db_budget::Side::Async),
            budget.try_acquire(db_budget::Side::Sync),
        ];
        budget.set_capacity(1).expect("within the limit"); // both in use: 1 owed

        // Act
        let mut text = String::new();
        render(&mut text, &counters, &budget);

        // Assert
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# TYPE db_admin_actions_total counter",
            "db_admin_actions_total{action=\"suspend\",result=\"ok\"} 1",
            "db_admin_actions_total{action=\"suspend\",result=\"refused\"} 0",
            "db_admin_actions_total{action=\"budget\",result=\"refused\"} 2",
            "db_admin_actions_total{action=\"evict\",result=\"ok\"} 0",
            "# TYPE db_budget_suspended gauge",
            "db_budget_suspended 1",
            "db_budget_suspended_waiting 0",
            "# TYPE db_budget_units_owed gauge",
            "db_budget_units_owed 1",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("db_admin")).count(),
            8
        );
    }
}
