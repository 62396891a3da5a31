//! A real Prometheus scrapes the admin listener's /metrics and evaluates the shipped
//! rules (`ops/prometheus/alerts.yml`, only its `for:` durations shortened): the budget
//! alert goes pending, then firing while every unit is held, and resolves after.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::admin_support::load::Held;
use crate::admin_support::prometheus::{Prometheus, read_rules_file, with_for};
use crate::admin_support::start;

/// Every `for:` of the rules, shortened so that the test takes seconds, not minutes.
/// Long enough that a poll every 100 ms sees the alert pending before it fires.
const FOR: &str = "6s";

/// Longest wait for each step; a step that takes longer fails with what Prometheus saw.
const STEP_LIMIT: Duration = Duration::from_secs(60);

const ALERT: &str = "DbBudgetHigh";

/// Polls `check` every 100 ms until it returns `Some`, at most [`STEP_LIMIT`].
async fn poll<T, F, Fut>(prometheus: &Prometheus, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "waited {STEP_LIMIT:?} for {what}; last seen: {seen}\nprometheus log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_fires_the_budget_alert_while_every_unit_is_held_and_resolves_it_after() {
    // Arrange: a budget of 3 units behind the admin listener, and Prometheus scraping it
    // every second with the shipped rules (every `for:` shortened, nothing else changed).
    let admin = start("admin_alert_firing", 3).await;
    let shipped = read_rules_file("alerts.yml");
    let (rules, shortened) = with_for(&shipped, FOR);
    let fors = shipped
        .lines()
        .filter(|l| l.trim_start().starts_with("for:"))
        .count();
    assert!(
        fors > 0 && shortened == fors,
        "{shortened} of {fors} `for:` shortened"
    );
    assert_eq!(rules.lines().count(), shipped.lines().count());
    let prometheus = Prometheus::start(admin.addr, &rules);
    let instance = admin.addr.to_string();

    // Nothing held: once Prometheus has scraped and evaluated (the recording rule has a
    // value for this instance), the alert is not active.
    let ratio = poll(&prometheus, "the budget ratio recorded as 0", || async {
        let result = prometheus
            .query("instance:db_budget_units_in_use:ratio")
            .await;
        match result
            .iter()
            .find(|s| s["metric"]["instance"] == instance.as_str())
        {
            Some(s) if s["value"][1] == "0" => Ok(s.clone()),
            _ => Err(format!("{result:?}")),
        }
    })
    .await;
    assert_eq!(ratio["metric"]["job"], "game", "{ratio}");
    let idle = prometheus.alerts(ALERT).await;
    assert!(
        idle.is_empty(),
        "{ALERT} active with nothing held: {idle:?}"
    );

    // Act: every unit held (two async connections, one blocking).
    let mut held = Held::default();
    held.hold_async(&admin.async_pool, 2).await;
    held.hold_sync(&admin.sync_pool, 1).await;
    assert_eq!(admin.budget.snapshot().in_use, 3);

    // Assert: pending first, then firing, with the rule's labels and this instance's.
    let state = |want: &'static str| {
        let prometheus = &prometheus;
        move || async move {
            let alerts = prometheus.alerts(ALERT).await;
            match alerts.as_slice() {
                [a] if a["state"] == want => Ok(a.clone()),
                [a] if want == "pending" && a["state"] == "firing" => {
                    panic!("{ALERT} fired before it was seen pending: {a}")
                }
                _ => Err(format!("{alerts:?}")),
            }
        }
    };
    let pending = poll(&prometheus, "the budget alert pending", state("pending")).await;
    assert_eq!(
        pending["labels"]["instance"],
        instance.as_str(),
        "{pending}"
    );
    assert_eq!(pending["labels"]["severity"], "ticket", "{pending}");
    let firing = poll(&prometheus, "the budget alert firing", state("firing")).await;
    assert_eq!(firing["labels"]["instance"], instance.as_str(), "{firing}");
    assert_eq!(
        firing["activeAt"], pending["activeAt"],
        "one alert, pending then firing"
    );
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{instance}: 100% of the connection budget"))),
        "{firing}"
    );

    // The units come back when the idle connections close (DB_IDLE_TIMEOUT, 10 s by
    // default); then the alert resolves.
    held.release().await;
    poll(&prometheus, "the budget alert resolved", || async {
        let alerts = prometheus.alerts(ALERT).await;
        if alerts.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{alerts:?} (budget now: {})",
                admin.budget.snapshot()
            ))
        }
    })
    .await;
    assert!(admin.budget.snapshot().in_use < 3);
}
