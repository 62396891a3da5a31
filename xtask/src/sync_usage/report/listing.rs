//! The text listing: the uses per crate and file, the opted-out files, the tests' uses,
//! the totals and the migration's progress.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::super::scan::{Finding, INFRASTRUCTURE_MARKER};
use super::{Context, group, write_aligned};

fn write_groups(out: &mut String, findings: &[&Finding]) {
    for (krate, files) in group(findings) {
        let n: usize = files.iter().map(|(_, f)| f.len()).sum();
        let _ = writeln!(out, "{krate} ({n})");
        for (file, fs) in files {
            let _ = writeln!(out, "  {file} ({})", fs.len());
            write_aligned(out, &fs.iter().collect::<Vec<_>>());
        }
    }
}

pub fn text(ctx: &Context<'_>) -> String {
    let mut out = String::new();
    let counted: Vec<&Finding> = ctx
        .scanned
        .findings
        .iter()
        .filter(|f| !f.test && !f.infrastructure)
        .collect();
    let tests: Vec<&Finding> = ctx.scanned.findings.iter().filter(|f| f.test).collect();
    let _ = writeln!(
        out,
        "Blocking db-sync API uses ({} file(s) scanned under {})\n",
        ctx.scanned.files_scanned,
        ctx.root.display()
    );
    if counted.is_empty() {
        let _ = writeln!(out, "No blocking uses (outside tests).");
    } else {
        write_groups(&mut out, &counted);
    }
    write_opted_out(&mut out, ctx);
    if !tests.is_empty() {
        let _ = writeln!(out, "\nNot counted: test code (#[cfg(test)], tests/ dirs):");
        write_groups(&mut out, &tests);
    }

    let mut per_crate: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for f in &ctx.scanned.findings {
        let e = per_crate.entry(&f.krate).or_default();
        if f.test {
            e.2 += 1;
        } else if f.infrastructure {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    let _ = writeln!(out, "\nTotals:");
    let width = per_crate
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(0)
        .max("overall".len());
    for (krate, (n, i, t)) in &per_crate {
        let _ = writeln!(
            out,
            "  {krate:<width$}  {n:>5}   (+{i} opted out, +{t} test)"
        );
    }
    let _ = writeln!(
        out,
        "  {:<width$}  {:>5}   (+{} opted out in {} file(s), +{} test)",
        "overall",
        ctx.total(),
        ctx.infra_total(),
        ctx.infra_counts.len(),
        ctx.test_total()
    );

    match ctx.baseline {
        None => {
            let _ = writeln!(
                out,
                "\nbaseline: none at {} (run `cargo xtask sync-usage --update` to create it)",
                ctx.baseline_display()
            );
        }
        Some(b) => {
            let _ = writeln!(
                out,
                "\nbaseline: {}: {} uses at the last --update, first_total {}; \
                 {} opted-out uses in {} file(s)",
                ctx.baseline_display(),
                b.total(),
                b.first_total,
                b.infrastructure_total(),
                b.infrastructure.len()
            );
            match ctx.migrated() {
                Some((overall, since)) => {
                    let _ = writeln!(
                        out,
                        "migrated: {overall:.1}% of the baseline (first_total {} -> now {}; \
                         {since:.1} points since the last --update)",
                        b.first_total,
                        ctx.total()
                    );
                }
                None => {
                    let _ = writeln!(out, "migrated: n/a (first_total is 0)");
                }
            }
        }
    }
    out
}

/// The files that opted out, each with its count, marker line, baseline
/// count and uses.
fn write_opted_out(out: &mut String, ctx: &Context<'_>) {
    if ctx.infra_counts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nOpted out: {} file(s) marked `{INFRASTRUCTURE_MARKER}`, counted apart \
         (the baseline records each; a new one or a rise fails --check):",
        ctx.infra_counts.len()
    );
    for (file, n) in ctx.infra_counts {
        let base = match ctx.baseline.and_then(|b| b.infrastructure.get(file)) {
            Some(b) => format!("baseline {b}"),
            None => "not in the baseline".to_string(),
        };
        let line = ctx.marker_line(file).unwrap_or(0);
        let _ = writeln!(out, "  {file} ({n})   marker at line {line}, {base}");
        let fs: Vec<&Finding> = ctx.findings_of(file).collect();
        write_aligned(out, &fs);
    }
}
