//! The JSON document (`--json`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::baseline::Baseline;
use super::super::scan::Finding;
use super::{Changes, Context, group};

pub fn json_result(mode: &str, ok: bool, changes: &Changes<'_>, written: bool) -> Value {
    json!({
        "mode": mode,
        "ok": ok,
        "increased": changes.rose,
        "decreased": changes.fell,
        "infrastructure_increased": changes.infra_rose,
        "infrastructure_decreased": changes.infra_fell,
        "baseline_written": written,
    })
}

pub fn json(ctx: &Context<'_>, result: Option<Value>) -> String {
    let all: Vec<&Finding> = ctx.scanned.findings.iter().collect();
    let crates: Vec<Value> = group(&all)
        .into_iter()
        .map(|(krate, files)| {
            let uses = |fs: &[Finding]| fs.iter().filter(|f| !f.test && !f.infrastructure).count();
            let infra = |fs: &[Finding]| fs.iter().filter(|f| !f.test && f.infrastructure).count();
            let tests = |fs: &[Finding]| fs.iter().filter(|f| f.test).count();
            let sum = |n: &dyn Fn(&[Finding]) -> usize| -> usize {
                files.iter().map(|(_, fs)| n(fs)).sum()
            };
            let (n_uses, n_infra, n_tests) = (sum(&uses), sum(&infra), sum(&tests));
            let files: Vec<Value> = files
                .iter()
                .map(|(file, fs)| {
                    json!({
                        "file": file,
                        "uses": uses(fs),
                        "infrastructure_uses": infra(fs),
                        "test_uses": tests(fs),
                        "findings": fs,
                    })
                })
                .collect();
            json!({
                "crate": krate,
                "uses": n_uses,
                "infrastructure_uses": n_infra,
                "test_uses": n_tests,
                "files": files,
            })
        })
        .collect();
    let migrated = ctx.migrated();
    let mut doc = json!({
        "root": ctx.root.display().to_string(),
        "files_scanned": ctx.scanned.files_scanned,
        "parse_errors": ctx.scanned.errors,
        "crates": crates,
        "total": ctx.total(),
        "test_total": ctx.test_total(),
        "counts": ctx.counts.iter().filter(|(_, n)| **n > 0).collect::<BTreeMap<_, _>>(),
        "infrastructure": ctx.scanned.markers.iter().map(|m| {
            (m.file.clone(), json!({
                "uses": ctx.infra_counts.get(&m.file).copied().unwrap_or(0),
                "marker_line": m.line,
                "baseline": ctx.baseline.and_then(|b| b.infrastructure.get(&m.file)),
            }))
        }).collect::<serde_json::Map<_, _>>(),
        "infrastructure_total": ctx.infra_total(),
        "baseline": {
            "path": ctx.baseline_display(),
            "exists": ctx.baseline.is_some(),
            "first_total": ctx.baseline.map(|b| b.first_total),
            "total": ctx.baseline.map(Baseline::total),
            "infrastructure_total": ctx.baseline.map(Baseline::infrastructure_total),
        },
        "migrated_percent": migrated.map(|m| m.0),
        "migrated_since_update_percent": migrated.map(|m| m.1),
    });
    if let Some(r) = result {
        doc["result"] = r;
    }
    serde_json::to_string_pretty(&doc).expect("JSON values serialise")
}
