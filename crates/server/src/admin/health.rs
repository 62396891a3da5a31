//! `/healthz` (the process answers) and `/readyz` (both pools reach the server).
//!
//! sync-usage: infrastructure (probes the blocking pool's readiness; goes when db-sync goes, not ported module by module).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use db_async::{Args, AsyncPool};
use db_budget::DbError;
use db_sync::SyncPool;
use serde_json::{Map, Value, json};

use super::AdminState;

/// How long each readiness probe may take, connecting included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: answers without touching the database, so a database outage does not get
/// the process restarted.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: `SELECT 1` through the async pool and, on a blocking thread, through the
/// blocking pool, concurrently, each bounded by [`PROBE_TIMEOUT`].
///
/// 200 `{"async":"ok","sync":"ok"}`; otherwise 503 with the failed side marked
/// `"failed"` and its reason (the error's `Display`, which never shows SQL, values or
/// credentials) under `errors`: `{"async":"ok","sync":"failed","errors":{"sync":"…"}}`.
pub(super) async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    let (a, s) = tokio::join!(
        probe_async(state.async_pool.clone()),
        probe_sync(state.sync_pool.clone())
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
