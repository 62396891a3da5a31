//! `/healthz` (the process answers) and `/readyz` (both pools reach the server).
//!
//! Readiness must not take an instance out of its load balancer for being busy. When
//! the budget is fully in use (or callers queue), a `SELECT 1` would wait behind the
//! players' requests, time out, and report a healthy but loaded instance as down, while
//! taking a unit a player needs. So a side is probed only when it can get a connection
//! at once; otherwise it is ready if statements keep finishing: the database answers.
//!
//! sync-usage: infrastructure (probes the blocking pool's readiness; goes when db-sync goes, not ported module by module).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use db_async::{Args, AsyncPool};
use db_budget::{Budget, DbError, Side, Snapshot};
use db_sync::SyncPool;
use serde_json::{Map, Value, json};

use super::AdminState;

/// How long each readiness probe may take, connecting included; also how long a busy
/// side may go without a finished statement.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a busy side's finished statements are counted.
const PROGRESS_POLL: Duration = Duration::from_millis(20);

/// Liveness: answers without touching the database, so a database outage does not get
/// the process restarted.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: `SELECT 1` through the async pool and, on a blocking thread, through the
/// blocking pool, concurrently, each bounded by [`PROBE_TIMEOUT`]. A side that cannot
/// get a connection at once (no idle one and no free unit, or callers already
/// waiting) is not probed: it is ready when a statement finishes (either side) within
/// [`PROBE_TIMEOUT`].
///
/// 200 `{"async":"ok","sync":"ok"}`, or `{"async":"suspended","sync":"suspended"}`
/// without probing while the budget is suspended; otherwise 503 with the failed side marked
/// `"failed"` and its reason (the error's `Display`, which never shows SQL, values or
/// credentials) under `errors`: `{"async":"ok","sync":"failed","errors":{"sync":"…"}}`.
pub(super) async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    let budget = &state.budget;
    if budget.is_suspended() {
        // An operator suspended the budget (`POST /admin/suspend`): requests wait to ride
        // out a failover, so the instance stays in its load balancer; a probe would wait
        // at the gate too.
        let body = json!({ "async": "suspended", "sync": "suspended" });
        return (StatusCode::OK, Json(body));
    }
    let (a, s) = tokio::join!(
        check_side(
            budget,
            Side::Async,
            state.async_pool.is_closed(),
            probe_async(state.async_pool.clone()),
        ),
        check_side(
            budget,
            Side::Sync,
            state.sync_pool.is_closed(),
            probe_sync(state.sync_pool.clone()),
        ),
    );
    let mut body = Map::new();
    let mut errors = Map::new();
    for (side, result) in [("async", a), ("sync", s)] {
        match result {
            Ok(()) => {
                body.insert(side.into(), "ok".into());
            }
            Err(why) => {
                body.insert(side.into(), "failed".into());
                errors.insert(side.into(), why.into());
            }
        }
    }
    if errors.is_empty() {
        (StatusCode::OK, Json(Value::Object(body)))
    } else {
        let errors = Value::Object(errors);
        tracing::warn!(%errors, "readiness probe failed");
        body.insert("errors".into(), errors);
        (StatusCode::SERVICE_UNAVAILABLE, Json(Value::Object(body)))
    }
}

/// One side's readiness: `probe` (not started otherwise) when a connection is to be
/// had at once, else whether statements keep finishing.
async fn check_side(
    budget: &Budget,
    side: Side,
    closed: bool,
    probe: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    if closed {
        Err(DbError::Closed.to_string())
    } else if can_connect_now(&budget.snapshot(), side) {
        probe.await
    } else {
        statements_finish(budget).await
    }
}

/// Whether a probe on `side` would get a connection without queueing.
fn can_connect_now(snap: &Snapshot, side: Side) -> bool {
    let s = snap.side(side);
    s.waiting == 0 && (s.idle > 0 || snap.in_use < snap.capacity)
}

/// Statements finished so far, both sides.
fn finished(budget: &Budget) -> u64 {
    let snap = budget.snapshot();
    snap.async_side.query_latency.count() + snap.sync_side.query_latency.count()
}

/// Ready when a statement finishes within [`PROBE_TIMEOUT`]. Takes no connection.
async fn statements_finish(budget: &Budget) -> Result<(), String> {
    let before = finished(budget);
    let started = Instant::now();
    while started.elapsed() < PROBE_TIMEOUT {
        tokio::time::sleep(PROGRESS_POLL).await;
        if finished(budget) > before {
            return Ok(());
        }
    }
    Err(format!(
        "every connection is in use and no statement finished within {} s",
        PROBE_TIMEOUT.as_secs_f64()
    ))
}

async fn probe_async(pool: AsyncPool) -> Result<(), String> {
    let probe = async move {
        let mut conn = pool.acquire().await?;
        let (one,): (i64,) = conn.fetch_one("SELECT 1", Args::default()).await?;
        Ok::<i64, DbError>(one)
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(other)) => Err(format!("SELECT 1 returned {other}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(timed_out()),
    }
}

/// The blocking probe runs on tokio's blocking pool. When it outlives the timeout it is
/// left to finish on its own (bounded by the pool timeout); its connection goes back
/// to the pool when it does.
async fn probe_sync(pool: SyncPool) -> Result<(), String> {
    let probe = tokio::task::spawn_blocking(move || {
        let (one,): (i64,) = pool.get()?.fetch_one("SELECT 1", ())?;
        Ok::<i64, DbError>(one)
    });
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(Ok(1))) => Ok(()),
        Ok(Ok(Ok(other))) => Err(format!("SELECT 1 returned {other}")),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(join)) => Err(format!("the probe thread failed: {join}")),
        Err(_) => Err(timed_out()),
    }
}

fn timed_out() -> String {
    format!("no answer within {} s", PROBE_TIMEOUT.as_secs_f64())
}
