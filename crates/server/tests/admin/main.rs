//! The admin listener against a real, private MariaDB (`mariadb-harness`): health and
//! readiness, Prometheus metrics, the JSON snapshot, and the live dashboard rendered by
//! headless Chromium.
//!
//! Each test builds its own budget and pools over its own database and serves
//! `server::admin::router` on an ephemeral port; it does not need the rest of the server.
//!
//! One module per endpoint: `health` (/healthz, /readyz), `metrics`, `pool_api`
//! (/api/pool), `dashboard`, `controls` (the control routes); the Prometheus text parser
//! is the support module's `metrics`. The shipped alerting rules (`ops/prometheus/`):
//! `alert_rules` (promtool's checks and unit tests, and what the rules read) and
//! `alert_firing` (a real Prometheus evaluating them against /metrics). One test binary,
//! so that the admin router is linked once.

#[path = "../admin_support/mod.rs"]
mod admin_support;

#[allow(
    clippy::duplicate_mod,
    reason = "adversary16 loads the controls support module too, to stay in a file of its own"
)]
mod adversary16;
mod alert_firing;
mod alert_rules;
mod controls;
mod dashboard;
mod health;
mod metrics;
mod pool_api;
