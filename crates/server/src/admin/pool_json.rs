//! `/api/pool`: the budget snapshot as JSON, for the dashboard and for people with `curl`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use db_budget::{HistogramSnapshot, LATENCY_BUCKETS_US, Side, Snapshot};
use serde_json::{Value, json};

use super::AdminState;

pub(super) async fn handler(State(state): State<AdminState>) -> impl IntoResponse {
    let snap = state.budget.snapshot();
    let mut v = pool_json(&snap);
    if let Value::Object(top) = &mut v {
        top.insert(
            "controls".into(),
            super::controls::state_json(&state, &snap),
        );
        top.insert("server".into(), server_json(state.view.as_ref()));
        let fleet = state.fleet.as_ref().map(db_fleet::FleetHandle::snapshot);
        top.insert(
            "fleet".into(),
            serde_json::to_value(fleet).unwrap_or(Value::Null),
        );
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(v))
}

/// The server's view: `null` when its reader is off, else `{"status": …, "reading": …}`
/// with the last reading (`null` before the first).
fn server_json(view: Option<&db_view::ViewHandle>) -> Value {
    view.map_or(Value::Null, |view| {
        json!({
            "status": view.status(),
            "reading": view.latest(),
        })
    })
}

/// `snap` serialised as is, plus derived fields:
///
/// - top level: `utilisation` (`in_use / capacity`, 0.0..=1.0) and
///   `latency_buckets_us` (the histograms' bucket bounds, so that a client can compute
///   quantiles over a window from two snapshots' `counts`);
/// - per side: `acquire_p50_ms`, `acquire_p99_ms`, `query_p50_ms`, `query_p99_ms`
///   (since start; the upper bound of the bucket holding the quantile, `null` without
///   samples) and `closed_sum`.
pub fn pool_json(snap: &Snapshot) -> Value {
    let mut v = serde_json::to_value(snap).unwrap_or_else(|_| json!({}));
    let utilisation = if snap.capacity == 0 {
        0.0
    } else {
        f64::from(snap.in_use) / f64::from(snap.capacity)
    };
    if let Value::Object(top) = &mut v {
        for side in Side::ALL {
            let s = snap.side(side);
            if let Some(Value::Object(o)) = top.get_mut(side.as_str()) {
                o.insert("acquire_p50_ms".into(), ms(&s.acquire_latency, 0.50));
                o.insert("acquire_p99_ms".into(), ms(&s.acquire_latency, 0.99));
                o.insert("query_p50_ms".into(), ms(&s.query_latency, 0.50));
                o.insert("query_p99_ms".into(), ms(&s.query_latency, 0.99));
                o.insert("closed_sum".into(), s.closed_sum().into());
            }
        }
        top.insert("utilisation".into(), utilisation.into());
        top.insert("latency_buckets_us".into(), json!(LATENCY_BUCKETS_US));
    }
    v
}

fn ms(h: &HistogramSnapshot, q: f64) -> Value {
    h.quantile_upper_bound(q)
        .map_or(Value::Null, |d| json!(d.as_secs_f64() * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn derived_fields_sit_beside_the_snapshot() {
        let budget = db_budget::Budget::new(8, Duration::from_secs(30));
        budget
            .recorder(Side::Async)
            .record_acquire(Duration::from_micros(40));
        budget
            .recorder(Side::Async)
            .record_acquire(Duration::from_millis(3));
        let _unit = budget.try_acquire(Side::Sync).unwrap();
        let v = pool_json(&budget.snapshot());
        assert_eq!(v["capacity"], 8);
        assert_eq!(v["in_use"], 1);
        assert_eq!(v["utilisation"], 0.125);
        assert_eq!(v["sync"]["held"], 1);
        assert_eq!(v["async"]["acquire_p50_ms"], 0.05);
        assert_eq!(v["async"]["acquire_p99_ms"], 5.0);
        assert_eq!(v["sync"]["acquire_p99_ms"], Value::Null);
        assert_eq!(v["latency_buckets_us"][0], 50);
        assert_eq!(
            v["async"]["acquire_latency"]["counts"]
                .as_array()
                .unwrap()
                .len(),
            LATENCY_BUCKETS_US.len() + 1
        );
    }
}
