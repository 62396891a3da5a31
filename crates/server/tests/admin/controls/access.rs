//! Who may use the control routes, what they refuse, and that a refusal changes nothing.

use crate::admin_support::metrics::parse_metrics;

use super::support::{Ctl, Setup, TOKEN, start};

const ROUTES: [(&str, &str); 4] = [
    ("/admin/suspend", ""),
    ("/admin/resume", ""),
    ("/admin/evict", "{}"),
    ("/admin/budget", r#"{"capacity": 2}"#),
];

/// Suspended, eviction generation, capacity target: what a control would change.
async fn state(ctl: &Ctl) -> (bool, u64, u32) {
    let c = ctl.controls().await;
    assert_eq!(c["suspended"], ctl.budget.is_suspended(), "{c}");
    (
        ctl.budget.is_suspended(),
        ctl.budget.generation(),
        ctl.budget.capacity_target(),
    )
}

async fn admin_actions(ctl: &Ctl, action: &str, result: &str) -> f64 {
    let r = ctl.get("/metrics").await;
    assert_eq!(r.status, 200, "{r:?}");
    parse_metrics(&r.body).get(
        "db_admin_actions_total",
        &[("action", action), ("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_a_401_json_error_and_changes_nothing() {
    // Arrange
    let ctl = start("ctl_unauthorized", Setup::default()).await;
    let before = state(&ctl).await;
    let wrong = [
        None,
        Some("Bearer not-the-admin-token-at-all".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(TOKEN.to_owned()),
    ];

    for (path, body) in ROUTES {
        for authorization in &wrong {
            // Act
            let r = ctl.post_as(path, authorization.as_deref(), body).await;

            // Assert
            assert_eq!(r.status, 401, "{path} with {authorization:?}: {r:?}");
            assert_eq!(r.json()["error"], "unauthorized", "{r:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{r:?}");
            assert!(!r.body.contains(TOKEN), "the token is not echoed: {r:?}");
        }
    }
    assert_eq!(
        state(&ctl).await,
        before,
        "a refused request changed the state"
    );
    assert_eq!(admin_actions(&ctl, "suspend", "refused").await, 6.0);
    assert_eq!(admin_actions(&ctl, "budget", "refused").await, 6.0);
    assert_eq!(admin_actions(&ctl, "suspend", "ok").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_control_routes_answer_403_naming_it_and_the_read_only_routes_still_serve()
 {
    // Arrange
    let ctl = start(
        "ctl_disabled",
        Setup {
            token: None,
            ..Setup::default()
        },
    )
    .await;
    let before = state(&ctl).await;

    for (path, body) in ROUTES {
        // Act: even a request that carries what would be the right token.
        let r = ctl
            .post_as(path, Some(&format!("Bearer {TOKEN}")), body)
            .await;

        // Assert
        assert_eq!(r.status, 403, "{path}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"], "controls_disabled", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("ADMIN_TOKEN"),
            "{v}"
        );
    }
    assert_eq!(state(&ctl).await, before);
    assert_eq!(ctl.controls().await["enabled"], false);
    for path in ["/healthz", "/readyz", "/metrics", "/api/pool"] {
        assert_eq!(ctl.get(path).await.status, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_carries_out_each_action_counted_and_shown_in_the_pool_state() {
    // Arrange
    let ctl = start("ctl_authorized", Setup::default()).await;

    // Act
    let suspended = ctl.post("/admin/suspend", "").await;
    let shown_suspended = ctl.controls().await;
    let resumed = ctl.post("/admin/resume", "{}").await;
    let evicted = ctl.post("/admin/evict", "").await;
    let resized = ctl.post("/admin/budget", r#"{"capacity": 5}"#).await;

    // Assert
    for r in [&suspended, &resumed, &evicted, &resized] {
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(suspended.json()["suspended"], true);
    assert_eq!(shown_suspended["suspended"], true, "{shown_suspended}");
    assert_eq!(resumed.json()["changed"], true);
    assert_eq!(evicted.json()["generation"], 1);
    assert_eq!(resized.json()["capacity"], 5);
    assert_eq!(resized.json()["previous"], 4);
    let c = ctl.controls().await;
    assert_eq!(c["enabled"], true, "{c}");
    assert_eq!(c["suspended"], false, "{c}");
    assert_eq!(c["evict_generation"], 1, "{c}");
    assert_eq!(
        (c["capacity"].clone(), c["capacity_target"].clone()),
        (5.into(), 5.into())
    );
    assert_eq!(c["capacity_limit"], 6, "{c}");
    for action in ["suspend", "resume", "evict", "budget"] {
        assert_eq!(admin_actions(&ctl, action, "ok").await, 1.0, "{action}");
        assert_eq!(
            admin_actions(&ctl, action, "refused").await,
            0.0,
            "{action}"
        );
    }
    let metrics = parse_metrics(&ctl.get("/metrics").await.body);
    assert_eq!(metrics.get("db_budget_suspended", &[]), 0.0);
    assert_eq!(metrics.get("db_budget_capacity", &[]), 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_json_error_naming_the_field_and_changes_nothing() {
    // Arrange
    let ctl = start("ctl_bad_input", Setup::default()).await;
    let before = state(&ctl).await;
    let budget_bodies = [
        (r#"{"capacity": 0}"#, Some("capacity")),
        (r#"{"capacity": 7}"#, Some("capacity")),
        (r#"{"capacity": 4294967297}"#, Some("capacity")),
        (r#"{"capacity": -1}"#, Some("capacity")),
        (r#"{"capacity": 2.5}"#, Some("capacity")),
        (r#"{"capacity": "3"}"#, Some("capacity")),
        (r#"{"capacity": null}"#, Some("capacity")),
        ("{}", Some("capacity")),
        ("", Some("capacity")),
        (r#"{"capacty": 3}"#, Some("capacity")),
        (r#"{"capacity": 3, "force": true}"#, Some("capacity")),
        (r#"{"capacity": 3"#, None),
        ("[3]", None),
        ("capacity=3", None),
    ];

    for (body, field) in budget_bodies {
        // Act
        let r = ctl.post("/admin/budget", body).await;

        // Assert
        assert_eq!(r.status, 400, "{body}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"], "bad_request", "{body}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        match field {
            Some(field) => {
                assert_eq!(v["field"], field, "{body}: {v}");
                assert!(message.contains(field), "{body}: {v}");
            }
            None => assert!(message.contains("JSON"), "{body}: {v}"),
        }
    }
    for (path, body) in [
        ("/admin/suspend", r#"{"now": true}"#),
        ("/admin/evict", "not json"),
        ("/admin/resume", "[]"),
    ] {
        let r = ctl.post(path, body).await;
        assert_eq!(r.status, 400, "{path} {body}: {r:?}");
        assert_eq!(r.json()["error"], "bad_request");
    }
    let r = ctl.get("/admin/suspend").await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.json()["error"], "method_not_allowed");
    assert_eq!(
        state(&ctl).await,
        before,
        "a refused request changed the state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_member_or_a_budget_with_bulkheads_refuses_to_be_resized_with_409() {
    for (setup, code) in [
        (
            Setup {
                in_fleet: true,
                ..Setup::default()
            },
            "fleet",
        ),
        (
            Setup {
                bulkheads: "legacy=1..3",
                ..Setup::default()
            },
            "bulkheads",
        ),
    ] {
        // Arrange
        let ctl = start("ctl_not_resizable", setup).await;
        let capacity = ctl.budget.snapshot().capacity;

        // Act
        let r = ctl.post("/admin/budget", r#"{"capacity": 2}"#).await;

        // Assert
        assert_eq!(r.status, 409, "{r:?}");
        assert_eq!(r.json()["error"], code, "{r:?}");
        assert_eq!(ctl.budget.snapshot().capacity, capacity);
        assert_eq!(
            ctl.controls().await["capacity_target"],
            serde_json::Value::Null
        );
        // The other controls still apply.
        assert_eq!(ctl.post("/admin/evict", "").await.status, 200);
    }
}
