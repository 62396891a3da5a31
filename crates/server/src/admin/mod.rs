//! The admin listener: health, readiness, Prometheus metrics, the budget as JSON and a
//! live dashboard (invariant I5 in ARCHITECTURE.md).
//!
//! It is served on its own listener (127.0.0.1 by default), apart from the game API,
//! and takes no player tokens: bind it where only operators can reach it.
//!
//! | route | what |
//! |---|---|
//! | `/healthz` | the process is up (no database call) |
//! | `/readyz` | both pools reach the server: `SELECT 1` through each, bounded in time; when every connection is in use, statements finishing instead (takes no unit) |
//! | `/metrics` | Prometheus text format 0.0.4, `db_*` names; the database server's own view as `db_server_*`, the fleet membership as `db_fleet_*` |
//! | `/api/pool` | the budget [`Snapshot`](db_budget::Snapshot) as JSON, plus p50/p99 and utilisation, the server's view under `server` and the fleet membership under `fleet` |
//! | `/dashboard` | one self-contained HTML page polling `/api/pool` |
//! | `POST /admin/suspend`, `/admin/resume`, `/admin/evict`, `/admin/budget` | the controls for failovers and incidents ([`controls`]: `Authorization: Bearer <ADMIN_TOKEN>`; 403 without an `ADMIN_TOKEN`) |
//!
//! Reading the numbers never takes a budget unit: only `/readyz` touches the database,
//! and only when a connection is free. The server's view comes from its own reader
//! ([`db_view`], `DB_SERVER_VIEW_INTERVAL`), whose one connection is withheld from the
//! budget; the pages show its last reading. The read-only routes take no token; every
//! route that changes state does.
//!
//! sync-usage: infrastructure (reads the blocking pool for the admin pages; goes when db-sync goes, not ported module by module).

pub mod controls;
mod dashboard;
mod fleet;
mod health;
mod metrics;
mod pool_json;
mod server_view;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;

pub use controls::Controls;
pub use metrics::render as render_metrics;
pub use pool_json::pool_json;

/// What the admin routes read: the budget and the two pools drawing from it.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The process-wide connection budget.
    pub budget: db_budget::Budget,
    /// The async pool (probed by `/readyz`).
    pub async_pool: db_async::AsyncPool,
    /// The blocking pool (probed by `/readyz` on a blocking thread).
    pub sync_pool: db_sync::SyncPool,
    /// The database server's own view, when its reader runs (`DB_SERVER_VIEW_INTERVAL`).
    pub view: Option<db_view::ViewHandle>,
    /// This instance's fleet membership, when in a fleet (`DB_FLEET_BUDGET`).
    pub fleet: Option<db_fleet::FleetHandle>,
    /// The control routes' token and counts (`Controls::default()`: off, 403).
    pub controls: Controls,
}

/// The admin routes, ready to be served (`axum::serve`) on the admin listener.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::handler))
        .route("/api/pool", get(pool_json::handler))
        .route("/dashboard", get(dashboard::handler))
        .merge(controls::routes())
        .with_state(state)
}
