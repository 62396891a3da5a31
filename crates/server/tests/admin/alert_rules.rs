//! The shipped Prometheus rules (`ops/prometheus/alerts.yml`): promtool accepts them and
//! their unit tests (`alerts_test.yml`) pass; every alert has a case that fires and one
//! that must not, a severity, a summary and a description, and a line in README.md's
//! "Alerts"; every metric they read is one /metrics exports.
//!
//! Here rather than in a tidy test: the last check scrapes the admin router, and the
//! live test (`alert_firing`) shares the tools' lookup, so both live in this binary.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::admin_support::metrics::parse_metrics;
use crate::admin_support::prometheus::{promtool, read_rules_file};
use crate::admin_support::start_full;

fn assert_success(args: &[&str]) {
    let out = promtool(args);
    assert!(
        out.status.success(),
        "`promtool {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_check_rules_accepts_the_shipped_rules() {
    assert_success(&["check", "rules", "alerts.yml"]);
}

#[test]
fn promtool_unit_tests_of_the_shipped_rules_pass() {
    assert_success(&["test", "rules", "alerts_test.yml"]);
}

/// One rule of alerts.yml: its name (`alert:` or `record:`) and its lines.
struct Rule {
    alert: bool,
    name: String,
    lines: Vec<String>,
}

fn rules() -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for line in read_rules_file("alerts.yml").lines() {
        let t = line.trim();
        let head = t
            .strip_prefix("- alert:")
            .map(|n| (true, n))
            .or_else(|| t.strip_prefix("- record:").map(|n| (false, n)));
        if let Some((alert, name)) = head {
            out.push(Rule {
                alert,
                name: name.trim().to_owned(),
                lines: Vec::new(),
            });
        } else if t.starts_with("- name:") {
            continue;
        } else if let Some(rule) = out.last_mut() {
            rule.lines.push(line.to_owned());
        }
    }
    assert!(
        out.iter().filter(|r| r.alert).count() >= 5,
        "alerts.yml parsed into too few alerts"
    );
    out
}

fn alert_names() -> Vec<String> {
    rules()
        .into_iter()
        .filter(|r| r.alert)
        .map(|r| r.name)
        .collect()
}

#[test]
fn every_alert_has_a_promtool_case_that_fires_and_one_that_must_not() {
    // Arrange: in alerts_test.yml each `alertname:` is followed by its `exp_alerts:`,
    // either `[]` (must not fire) or a list (fires).
    let tests = read_rules_file("alerts_test.yml");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let mut current: Option<String> = None;
    for line in tests.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(rest) = t.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts after an alertname");
            if rest.trim() == "[]" {
                silent.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }

    // Act / Assert
    let names = alert_names();
    let missing: Vec<String> = names
        .iter()
        .flat_map(|n| {
            let mut m = Vec::new();
            if !fires.contains(n) {
                m.push(format!("{n}: no case where it fires"));
            }
            if !silent.contains(n) {
                m.push(format!("{n}: no case where it must not fire"));
            }
            m
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ops/prometheus/alerts_test.yml lacks:\n{}",
        missing.join("\n")
    );
    let unknown: Vec<&String> = fires
        .union(&silent)
        .filter(|n| !names.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "alerts_test.yml tests alerts that alerts.yml does not have: {unknown:?}"
    );
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_description_pointing_at_the_readme() {
    let mut problems = Vec::new();
    for rule in rules().into_iter().filter(|r| r.alert) {
        let text = rule.lines.join("\n");
        let severity = rule
            .lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("severity:"))
            .map(str::trim);
        if !matches!(severity, Some("page" | "ticket")) {
            problems.push(format!(
                "{}: severity {severity:?}, not page or ticket",
                rule.name
            ));
        }
        for key in ["summary:", "description:"] {
            if !rule.lines.iter().any(|l| l.trim().starts_with(key)) {
                problems.push(format!("{}: no {key}", rule.name));
            }
        }
        if !text.contains("README.md, section") {
            problems.push(format!(
                "{}: the description does not point at README.md",
                rule.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ops/prometheus/alerts.yml:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_alerts_section_names_every_alert() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Alerts\n"))
        .expect("README.md has a section `## Alerts`");
    let missing: Vec<String> = alert_names()
        .into_iter()
        .filter(|n| !section.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's Alerts section does not describe: {missing:?}"
    );
}

/// The `db_*` metric names an expression reads (recording rules' names have colons and
/// are not metric names).
fn metric_names(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("db_"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_read_is_one_metrics_exports() {
    // Arrange: an admin listener with bulkheads and the server's view, so that their
    // families are exported too (the view's once it has read).
    let admin = start_full(
        "admin_alert_names",
        4,
        "legacy=1..2",
        Some(Duration::from_millis(100)),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut body = admin.get("/metrics").await.body;
    while !body.contains("db_server_max_connections ") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        body = admin.get("/metrics").await.body;
    }
    let exported = parse_metrics(&body);
    let mut read = BTreeSet::new();
    for rule in rules() {
        // The `expr:` line and the lines indented below it (a folded block).
        let mut expr_indent = None;
        for line in &rule.lines {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            if let Some(rest) = t.strip_prefix("expr:") {
                expr_indent = Some(indent);
                read.extend(metric_names(rest).map(str::to_owned));
            } else if expr_indent.is_some_and(|e| indent > e) {
                read.extend(metric_names(t).map(str::to_owned));
            } else {
                expr_indent = None;
            }
        }
    }
    assert!(read.contains("db_budget_units_in_use"), "parsed: {read:?}");

    // Act: the family each name belongs to (a histogram's series end in _count,
    // _bucket or _sum).
    let family = |name: &str| {
        ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| exported.types.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(name)
            .to_owned()
    };
    let absent: Vec<String> = read
        .iter()
        .map(|n| family(n))
        .filter(|f| !exported.types.contains_key(f))
        .collect();

    // Assert
    assert!(
        absent.is_empty(),
        "alerts.yml reads metrics /metrics does not export (misspelled, or renamed): {absent:?}"
    );
}
