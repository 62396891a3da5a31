//! The admin listener's control routes, for failovers and incidents: suspend and resume
//! the budget, evict every connection, and change the budget's capacity at run time.
//!
//! | route | body | what |
//! |---|---|---|
//! | `POST /admin/suspend` | none or `{}` | new checkouts of both pools wait (up to `DB_POOL_TIMEOUT`, then 503 `suspended`), even for an idle connection; checkouts already made finish. Answers how many are still checked out |
//! | `POST /admin/resume` | none or `{}` | the waiting checkouts go on |
//! | `POST /admin/evict` | none or `{}` | idle connections of both pools are closed now; those checked out are closed when returned; connections opened afterwards are kept |
//! | `POST /admin/budget` | `{"capacity": N}` | the budget serves with `N` units, from one more than the units withheld for the server view's connection (1 without it) to the most the server's startup check accepted; shrinking closes no connection in use (units leave use as they come back) |
//!
//! Every control route needs `Authorization: Bearer <ADMIN_TOKEN>` (401 otherwise, with
//! `WWW-Authenticate: Bearer`); without an `ADMIN_TOKEN` they answer 403: a bind address
//! is not access control. Bodies are JSON objects (an empty body is `{}`); an unknown
//! field, bad JSON or a value out of range is a 400 naming the field. `/admin/budget`
//! answers 409 in a fleet (`DB_FLEET_BUDGET`: the fleet owns the capacity) and with
//! `DB_BULKHEADS` (their floors and caps are sized for `MAX_CONNECTIONS`).
//!
//! Each request is logged (`tracing` info when carried out, warn when refused; action
//! and result, never the token) and counted in `db_admin_actions_total{action, result}`
//! on `/metrics`, beside the gauges `db_budget_suspended`,
//! `db_budget_suspended_waiting` and `db_budget_units_owed`; `/api/pool` shows the state
//! under `controls`.
//!
//! The budget keeps the mechanisms (`db-budget`: `suspend.rs`, `evict.rs`,
//! `resize.rs`); these handlers only check, call and report. None of them waits on the
//! database: closes run in the pools' background.

mod auth;
mod counters;
mod reply;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use db_budget::{ResizeError, Snapshot};
use serde_json::{Map, Value, json};

use self::counters::{Action, ActionCounters};
use self::reply::Refusal;
use super::AdminState;
use crate::secret::AdminToken;

/// What the control routes need beyond the budget and the pools: the token, whether the
/// instance is in a fleet, and the counts of requests. Cheap to clone.
///
/// The default has no token: every control route answers 403.
#[derive(Clone, Debug, Default)]
pub struct Controls {
    token: Option<AdminToken>,
    in_fleet: bool,
    counters: Arc<ActionCounters>,
}

impl Controls {
    /// Controls guarded by `token` (`ADMIN_TOKEN`; `None`: off, 403). `in_fleet`: the
    /// instance is a fleet member (`DB_FLEET_BUDGET`), whose capacity `/admin/budget`
    /// must not change.
    pub fn new(token: Option<AdminToken>, in_fleet: bool) -> Controls {
        Controls {
            token,
            in_fleet,
            counters: Arc::default(),
        }
    }
}

/// The control routes, merged into the admin router.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/suspend", control(suspend))
        .route("/admin/resume", control(resume))
        .route("/admin/evict", control(evict))
        .route("/admin/budget", control(budget))
}

/// `POST` to `handler`; any other method is a JSON 405.
fn control<H, T>(handler: H) -> MethodRouter<AdminState>
where
    H: axum::handler::Handler<T, AdminState>,
    T: 'static,
{
    post(handler).fallback(|| async { Refusal::MethodNotAllowed })
}

/// Appends the controls' lines to a `/metrics` body.
pub(super) fn render_metrics(out: &mut String, state: &AdminState) {
    counters::render(out, &state.controls.counters, &state.budget);
}

/// The controls' state for `/api/pool`: `suspended`, `suspended_waiting`,
/// `evict_generation`, `capacity` (what the budget may use now), `capacity_target` (what
/// it was last set to; `null` when it cannot be resized), `capacity_limit` (the most it
/// may be set to), `owed` (units still to leave use after a shrink) and `enabled`
/// (whether `ADMIN_TOKEN` is set).
pub(super) fn state_json(state: &AdminState, snap: &Snapshot) -> Value {
    let budget = &state.budget;
    let resizable = resizable(state).is_ok();
    json!({
        "enabled": state.controls.token.is_some(),
        "suspended": budget.is_suspended(),
        "suspended_waiting": budget.suspended_waiting(),
        "evict_generation": budget.generation(),
        "capacity": snap.capacity,
        "capacity_target": resizable.then(|| budget.capacity_target()),
        "capacity_limit": budget.capacity(),
        "owed": budget.owed(),
    })
}

async fn suspend(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    act(&state, Action::Suspend, &headers, &body, |state, fields| {
        no_fields(&fields)?;
        let changed = state.budget.suspend();
        let snap = state.budget.snapshot();
        let (a, s) = (snap.async_side.active, snap.sync_side.active);
        Ok(json!({
            "action": "suspend",
            "suspended": true,
            "changed": changed,
            "checked_out": a + s,
            "async_checked_out": a,
            "sync_checked_out": s,
        }))
    })
}

async fn resume(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    act(&state, Action::Resume, &headers, &body, |state, fields| {
        no_fields(&fields)?;
        let released = state.budget.suspended_waiting();
        let changed = state.budget.resume();
        Ok(json!({
            "action": "resume",
            "suspended": false,
            "changed": changed,
            "released": released,
        }))
    })
}

async fn evict(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    act(&state, Action::Evict, &headers, &body, |state, fields| {
        no_fields(&fields)?;
        let eviction = state.budget.evict();
        Ok(json!({
            "action": "evict",
            "generation": eviction.generation,
            "idle_closed": eviction.idle_closed,
            "closing_on_return": eviction.checked_out,
        }))
    })
}

async fn budget(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    act(&state, Action::Budget, &headers, &body, |state, fields| {
        let limit = state.budget.capacity();
        let wanted = capacity_field(&fields, limit)?;
        resizable(state)?;
        // The capacity counts the units withheld for the server view's connection: the
        // pools keep at least one beside them, as the startup check requires.
        let least = 1 + state.budget.withheld();
        if wanted < u64::from(least) || wanted > u64::from(limit) {
            let counted = match least - 1 {
                0 => String::new(),
                n => format!(
                    "; it counts the {n} unit(s) withheld for the server view's connection, \
                     and the pools need one beside them"
                ),
            };
            return Err(Refusal::field(
                "capacity",
                format!(
                    "capacity must be from {least} to {limit} (the most the server's startup \
                     check accepted), not {wanted}{counted}"
                ),
            ));
        }
        let wanted = u32::try_from(wanted).unwrap_or(limit);
        let resized = state.budget.set_capacity(wanted).map_err(refusal)?;
        Ok(json!({
            "action": "budget",
            "capacity": resized.to,
            "previous": resized.from,
            "limit": limit,
            "owed": resized.owed,
            "in_use": state.budget.in_use(),
        }))
    })
}

/// Authorizes, reads the body, runs `f`; logs and counts the outcome.
fn act(
    state: &AdminState,
    action: Action,
    headers: &HeaderMap,
    body: &[u8],
    f: impl FnOnce(&AdminState, Map<String, Value>) -> Result<Value, Refusal>,
) -> Response {
    let outcome = auth::authorize(state.controls.token.as_ref(), headers)
        .and_then(|()| fields(body))
        .and_then(|fields| f(state, fields));
    let counters = &state.controls.counters;
    match outcome {
        Ok(done) => {
            counters.count(action, true);
            tracing::info!(
                action = action.as_str(),
                result = "ok",
                outcome = %done,
                "admin control carried out"
            );
            Json(done).into_response()
        }
        Err(refusal) => {
            counters.count(action, false);
            tracing::warn!(
                action = action.as_str(),
                result = "refused",
                status = refusal.status().as_u16(),
                reason = refusal.code(),
                "admin control refused: {}",
                refusal.message()
            );
            refusal.into_response()
        }
    }
}

/// The body as a JSON object; an empty body is `{}`.
fn fields(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Refusal::BadRequest {
            field: None,
            message: "the body must be a JSON object (or empty)".to_owned(),
        }),
        Err(e) => Err(Refusal::BadRequest {
            field: None,
            message: format!("the body is not JSON: {e}"),
        }),
    }
}

/// Refuses any field: the route takes none.
fn no_fields(fields: &Map<String, Value>) -> Result<(), Refusal> {
    match fields.keys().next() {
        None => Ok(()),
        Some(_) => Err(Refusal::BadRequest {
            field: None,
            message: "this route takes no fields: send an empty body or {}".to_owned(),
        }),
    }
}

/// `capacity`, the only field of `/admin/budget`, as a whole number.
fn capacity_field(fields: &Map<String, Value>, limit: u32) -> Result<u64, Refusal> {
    if let Some(other) = fields.keys().find(|k| *k != "capacity") {
        return Err(Refusal::field(
            "capacity",
            format!("unknown field {other:?}: the route takes {{\"capacity\": N}}"),
        ));
    }
    let expected = || format!("capacity must be a whole number from 1 to {limit}");
    match fields.get("capacity") {
        None => Err(Refusal::field(
            "capacity",
            format!("capacity is missing: send {{\"capacity\": N}}, N from 1 to {limit}"),
        )),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Refusal::field("capacity", expected())),
    }
}

/// Whether this instance's budget may be resized: not in a fleet, without bulkheads.
fn resizable(state: &AdminState) -> Result<(), Refusal> {
    if state.controls.in_fleet || state.fleet.is_some() {
        return Err(Refusal::Conflict {
            code: "fleet",
            message: "this instance is in a fleet (DB_FLEET_BUDGET), which owns its capacity: \
                      change DB_FLEET_BUDGET instead"
                .to_owned(),
        });
    }
    if state.budget.unassigned().is_some() {
        return Err(refusal(ResizeError::Bulkheads));
    }
    Ok(())
}

fn refusal(e: ResizeError) -> Refusal {
    match e {
        ResizeError::Bulkheads => Refusal::Conflict {
            code: "bulkheads",
            message: "the budget is divided into bulkheads (DB_BULKHEADS), whose floors and \
                      caps are sized for MAX_CONNECTIONS: change MAX_CONNECTIONS and \
                      DB_BULKHEADS instead"
                .to_owned(),
        },
        other => Refusal::field("capacity", other.to_string()),
    }
}
