//! `/metrics`: the budget in the Prometheus text exposition format, version 0.0.4.
//!
//! Names follow ARCHITECTURE.md's "Observability": `db_` prefix, a `side` label (`async` / `sync`), base units
//! (seconds), counters ending in `_total`. Rendering is a pure function of one
//! [`Snapshot`], so a scrape costs one snapshot read and never a database call.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use db_budget::{HistogramSnapshot, LATENCY_BUCKETS_US, Side, SideSnapshot, Snapshot};

use super::AdminState;

/// The content type of the text format this module writes.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn handler(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = render(&state.budget.snapshot());
    if let Some(view) = &state.view {
        super::server_view::render(&mut body, view);
    }
    if let Some(fleet) = &state.fleet {
        super::fleet::render(&mut body, &fleet.snapshot());
    }
    super::controls::render_metrics(&mut body, &state);
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// Renders `snap` as Prometheus text (format 0.0.4): for each metric a `# HELP` and a
/// `# TYPE` line, then its samples; histograms as cumulative `_bucket{le="…"}` lines
/// ending with `le="+Inf"`, then `_sum` (seconds) and `_count`.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let o = &mut out;

    header(
        o,
        "db_budget_capacity",
        "gauge",
        "Physical database connections allowed, both sides together (MAX_CONNECTIONS).",
    );
    sample(o, "db_budget_capacity", &[], snap.capacity);

    header(
        o,
        "db_budget_units_in_use",
        "gauge",
        "Budget units taken: physical connections open or being opened, both sides.",
    );
    sample(o, "db_budget_units_in_use", &[], snap.in_use);

    header(
        o,
        "db_budget_units_withheld",
        "gauge",
        "Budget units a fleet has not leased to this instance (DB_FLEET_BUDGET; 0 outside a fleet).",
    );
    sample(o, "db_budget_units_withheld", &[], snap.withheld);

    header(
        o,
        "db_budget_units_lingering",
        "gauge",
        "Budget units kept in use for server sessions the client gave up on (a statement cancelled or cut off) until the server has ended them.",
    );
    sample(o, "db_budget_units_lingering", &[], snap.lingering);
    header(
        o,
        "db_budget_lingered_total",
        "counter",
        "Connections shut mid-statement whose unit was kept until the server ended the session.",
    );
    sample(o, "db_budget_lingered_total", &[], snap.lingered_total);

    per_side(
        o,
        snap,
        "db_budget_units_held",
        "gauge",
        "Budget units held by one side: its physical connections, open or being opened.",
        |s| s.held.into(),
    );
    per_side(
        o,
        snap,
        "db_budget_share",
        "gauge",
        "Budget units one side may keep against the other side's waiters (DB_HANDOVER).",
        |s| s.share.into(),
    );
    per_side(
        o,
        snap,
        "db_connections_active",
        "gauge",
        "Connections checked out by callers.",
        |s| s.active.into(),
    );
    per_side(
        o,
        snap,
        "db_connections_idle",
        "gauge",
        "Open connections waiting in the pool.",
        |s| s.idle.into(),
    );
    per_side(
        o,
        snap,
        "db_waiters",
        "gauge",
        "Callers waiting for a connection.",
        |s| s.waiting.into(),
    );

    histogram(
        o,
        snap,
        "db_acquire_duration_seconds",
        "Time callers waited for a connection.",
        |s| &s.acquire_latency,
    );
    per_side(
        o,
        snap,
        "db_acquire_timeouts_total",
        "counter",
        "Callers that gave up after the pool timeout (DB_POOL_TIMEOUT).",
        |s| s.acquire_timeouts_total,
    );
    per_side(
        o,
        snap,
        "db_acquire_shed_total",
        "counter",
        "Callers refused at once because DB_MAX_WAITERS callers already waited.",
        |s| s.acquire_shed_total,
    );
    per_side(
        o,
        snap,
        "db_connections_opened_total",
        "counter",
        "Physical connections opened.",
        |s| s.opened_total,
    );

    header(
        o,
        "db_connections_closed_total",
        "counter",
        "Physical connections closed, by reason.",
    );
    for side in Side::ALL {
        for (reason, n) in &snap.side(side).closed_total {
            sample(
                o,
                "db_connections_closed_total",
                &[("side", side.as_str()), ("reason", reason.as_str())],
                n,
            );
        }
    }

    per_side(
        o,
        snap,
        "db_leaks_suspected_total",
        "counter",
        "Checkouts held longer than the leak threshold (DB_LEAK_THRESHOLD).",
        |s| s.leaks_suspected_total,
    );
    histogram(
        o,
        snap,
        "db_query_duration_seconds",
        "Time statements took (through the pools' query helpers).",
        |s| &s.query_latency,
    );
    per_side(
        o,
        snap,
        "db_slow_queries_total",
        "counter",
        "Statements slower than DB_SLOW_QUERY.",
        |s| s.slow_queries_total,
    );
    bulkheads(o, snap);

    out
}

/// One family per bulkhead figure, labelled by module (nothing when none is set).
fn bulkheads(o: &mut String, snap: &Snapshot) {
    if snap.bulkheads.is_empty() {
        return;
    }
    type Figure = fn(&db_budget::BulkheadSnapshot) -> u32;
    let families: [(&str, &str, Figure); 4] = [
        ("db_bulkhead_in_use", "Checkouts a module holds now.", |b| {
            b.in_use
        }),
        (
            "db_bulkhead_waiting",
            "Callers of a module waiting to be admitted.",
            |b| b.waiting,
        ),
        (
            "db_bulkhead_floor",
            "Checkouts reserved for a module (DB_BULKHEADS).",
            |b| b.floor,
        ),
        (
            "db_bulkhead_cap",
            "Checkouts a module may hold at most (DB_BULKHEADS).",
            |b| b.cap,
        ),
    ];
    for (name, help, figure) in families {
        header(o, name, "gauge", help);
        for b in &snap.bulkheads {
            sample(o, name, &[("bulkhead", &b.name)], figure(b));
        }
    }
    let name = "db_bulkhead_shed_total";
    header(
        o,
        name,
        "counter",
        "Callers of a module refused at once because DB_MAX_WAITERS of them waited.",
    );
    for b in &snap.bulkheads {
        sample(o, name, &[("bulkhead", &b.name)], b.shed_total);
    }
}

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A sample whose label values come from outside (user and host names): escaped as the
/// text format requires (`\\`, `\"`, `\n`).
pub(super) fn sample_labelled(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    let escaped: Vec<(&str, String)> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            (*k, v)
        })
        .collect();
    let labels: Vec<(&str, &str)> = escaped.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sample(out, name, &labels, value);
}

pub(super) fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Fixed identifiers need no escaping; outside values come through
            // `sample_labelled`.
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn per_side(
    out: &mut String,
    snap: &Snapshot,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&SideSnapshot) -> u64,
) {
    header(out, name, kind, help);
    for side in Side::ALL {
        sample(
            out,
            name,
            &[("side", side.as_str())],
            value(snap.side(side)),
        );
    }
}

fn histogram(
    out: &mut String,
    snap: &Snapshot,
    name: &str,
    help: &str,
    hist: impl Fn(&SideSnapshot) -> &HistogramSnapshot,
) {
    header(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for side in Side::ALL {
        let h = hist(snap.side(side));
        let side = side.as_str();
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let le = seconds(*bound);
            sample(out, &bucket, &[("side", side), ("le", &le)], cumulative);
        }
        // `count()` includes the overflow bucket, so `+Inf` always equals `_count`.
        let count = h.count();
        sample(out, &bucket, &[("side", side), ("le", "+Inf")], count);
        sample(
            out,
            &format!("{name}_sum"),
            &[("side", side)],
            seconds(h.sum_us),
        );
        sample(out, &format!("{name}_count"), &[("side", side)], count);
    }
}

/// Microseconds as a decimal number of seconds, exactly (no float rounding):
/// `50` → `0.00005`, `1_000_000` → `1`, `2_500_000` → `2.5`.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use db_budget::CloseReason;

    fn hist(counts: &[u64], sum_us: u64) -> HistogramSnapshot {
        let mut c = vec![0; LATENCY_BUCKETS_US.len() + 1];
        c[..counts.len()].copy_from_slice(counts);
        HistogramSnapshot { counts: c, sum_us }
    }

    fn side(held: u32, acquire: HistogramSnapshot) -> SideSnapshot {
        SideSnapshot {
            held,
            share: held + 1,
            active: held.saturating_sub(1),
            idle: 1.min(held),
            waiting: 2,
            opened_total: 9,
            closed_total: CloseReason::ALL.iter().map(|r| (*r, 1)).collect(),
            acquire_timeouts_total: 3,
            acquire_shed_total: 6,
            leaks_suspected_total: 4,
            acquire_latency: acquire,
            query_latency: hist(&[], 0),
            slow_queries_total: 5,
        }
    }

    fn snap() -> Snapshot {
        // async: 2 samples ≤ 50 µs, 1 in (100, 250] µs, 1 above 5 s; sync: none.
        let mut overflow = hist(&[2, 0, 1], 7_000_180);
        *overflow.counts.last_mut().unwrap() = 1;
        Snapshot {
            capacity: 20,
            in_use: 7,
            withheld: 3,
            lingering: 1,
            lingered_total: 2,
            async_side: side(5, overflow),
            bulkheads: vec![db_budget::BulkheadSnapshot {
                name: "retention".into(),
                floor: 2,
                cap: 6,
                in_use: 3,
                waiting: 1,
                shed_total: 4,
            }],
            sync_side: side(2, hist(&[], 0)),
            wait_cause: None,
            holders: vec![],
            slow_statements: vec![],
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn gauges_have_help_type_and_exact_lines() {
        let text = render(&snap());
        let l = lines(&text);
        for expected in [
            "# HELP db_budget_capacity Physical database connections allowed, both sides together (MAX_CONNECTIONS).",
            "# TYPE db_budget_capacity gauge",
            "db_budget_capacity 20",
            "# TYPE db_budget_units_in_use gauge",
            "db_budget_units_in_use 7",
            "# TYPE db_budget_units_withheld gauge",
            "db_budget_units_withheld 3",
            "# TYPE db_budget_units_lingering gauge",
            "db_budget_units_lingering 1",
            "# TYPE db_budget_lingered_total counter",
            "db_budget_lingered_total 2",
            "# TYPE db_budget_units_held gauge",
            "db_budget_units_held{side=\"async\"} 5",
            "db_budget_units_held{side=\"sync\"} 2",
            "# TYPE db_budget_share gauge",
            "db_budget_share{side=\"async\"} 6",
            "db_connections_active{side=\"async\"} 4",
            "db_connections_idle{side=\"sync\"} 1",
            "db_waiters{side=\"async\"} 2",
            "# TYPE db_acquire_timeouts_total counter",
            "db_acquire_timeouts_total{side=\"sync\"} 3",
            "db_bulkhead_in_use{bulkhead=\"retention\"} 3",
            "db_bulkhead_waiting{bulkhead=\"retention\"} 1",
            "db_bulkhead_floor{bulkhead=\"retention\"} 2",
            "db_bulkhead_cap{bulkhead=\"retention\"} 6",
            "# TYPE db_bulkhead_shed_total counter",
            "db_bulkhead_shed_total{bulkhead=\"retention\"} 4",
            "# TYPE db_acquire_shed_total counter",
            "db_acquire_shed_total{side=\"async\"} 6",
            "db_connections_opened_total{side=\"async\"} 9",
            "db_connections_closed_total{side=\"async\",reason=\"idle_timeout\"} 1",
            "db_connections_closed_total{side=\"sync\",reason=\"pool_closed\"} 1",
            "db_leaks_suspected_total{side=\"async\"} 4",
            "# TYPE db_query_duration_seconds histogram",
            "db_slow_queries_total{side=\"sync\"} 5",
        ] {
            assert!(
                l.contains(&expected),
                "missing line {expected:?} in\n{text}"
            );
        }
        // HELP then TYPE, once per metric family, and nothing but samples in between.
        let types = l.iter().filter(|x| x.starts_with("# TYPE ")).count();
        let helps = l.iter().filter(|x| x.starts_with("# HELP ")).count();
        assert_eq!(types, 23);
        assert_eq!(helps, 23);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn histogram_buckets_are_cumulative_in_seconds() {
        let text = render(&snap());
        let async_buckets: Vec<&str> = lines(&text)
            .into_iter()
            .filter(|x| x.starts_with("db_acquire_duration_seconds_bucket{side=\"async\""))
            .collect();
        assert_eq!(
            async_buckets,
            [
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.00005\"} 2",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.0001\"} 2",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.00025\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.0005\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.001\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.0025\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.005\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.01\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.025\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.05\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.1\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"0.25\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"1\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"5\"} 3",
                "db_acquire_duration_seconds_bucket{side=\"async\",le=\"+Inf\"} 4",
            ]
        );
        let l = lines(&text);
        assert!(l.contains(&"db_acquire_duration_seconds_sum{side=\"async\"} 7.00018"));
        assert!(l.contains(&"db_acquire_duration_seconds_count{side=\"async\"} 4"));
        assert!(l.contains(&"db_acquire_duration_seconds_bucket{side=\"sync\",le=\"+Inf\"} 0"));
        assert!(l.contains(&"db_acquire_duration_seconds_sum{side=\"sync\"} 0"));
        assert!(l.contains(&"db_query_duration_seconds_count{side=\"sync\"} 0"));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(250_000), "0.25");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_001), "2.500001");
    }
}
