//! What `--check` and `--update` say: the rises with their fixes, the falls, what
//! was written.

use std::fmt::Write as _;

use super::super::baseline::Change;
use super::super::scan::INFRASTRUCTURE_MARKER;
use super::{Changes, Context, write_located};

const FIX: &str = "fix: port it to db-async; see MIGRATION.md\n     \
                   or, if this is intended: `cargo xtask sync-usage --update --allow-increase`\n";

const INFRA_FIX: &str = "fix: remove the marker and port the uses to db-async (see MIGRATION.md):\n     \
                         only code that builds, wires, probes or closes the blocking pool itself\n     \
                         may opt out. If this file is that: `cargo xtask sync-usage --update \
                         --allow-increase`\n     \
                         records it in the baseline's \"infrastructure\" section, for review\n";
fn write_infra_findings(out: &mut String, ctx: &Context<'_>, c: &Change) {
    let line = ctx.marker_line(&c.file).unwrap_or(0);
    let what = if c.baseline == 0 {
        "a new opt-out"
    } else {
        "more opted-out uses"
    };
    let _ = writeln!(
        out,
        "  {}:{line}: `{INFRASTRUCTURE_MARKER}` ({what}): {} uses, baseline {}",
        c.file, c.count, c.baseline
    );
    for f in ctx.findings_of(&c.file) {
        write_located(out, f);
    }
}

/// The rises, uses to port then opt-outs, each with its fix.
fn write_rises(out: &mut String, ctx: &Context<'_>, changes: &Changes<'_>) {
    for c in changes.rose {
        write_file_findings(out, ctx, c);
    }
    if !changes.rose.is_empty() {
        out.push_str(FIX);
    }
    if !changes.infra_rose.is_empty() {
        let _ = writeln!(
            out,
            "sync-usage: opted-out uses went up in {} file(s):",
            changes.infra_rose.len()
        );
        for c in changes.infra_rose {
            write_infra_findings(out, ctx, c);
        }
        out.push_str(INFRA_FIX);
    }
}

fn write_file_findings(out: &mut String, ctx: &Context<'_>, c: &Change) {
    let _ = writeln!(
        out,
        "  {}: {} uses, baseline {}",
        c.file, c.count, c.baseline
    );
    for f in ctx.findings_of(&c.file).filter(|f| !f.infrastructure) {
        write_located(out, f);
    }
}

pub fn check_failed(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sync-usage: blocking db-sync uses went up in {} file(s), opted-out uses in {} (baseline {}):",
        changes.rose.len(),
        changes.infra_rose.len(),
        ctx.baseline_display()
    );
    write_rises(&mut out, ctx, changes);
    out
}

fn fell_note(out: &mut String, changes: &Changes<'_>, advice: bool) {
    if changes.fell.is_empty() && changes.infra_fell.is_empty() {
        return;
    }
    let list: Vec<String> = changes
        .fell
        .iter()
        .map(|c| format!("{} ({} -> {})", c.file, c.baseline, c.count))
        .chain(
            changes
                .infra_fell
                .iter()
                .map(|c| format!("{} (opted out: {} -> {})", c.file, c.baseline, c.count)),
        )
        .collect();
    let tail = if advice {
        "; run --update to lower the ratchet"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "sync-usage: fewer uses than the baseline in {}{tail}",
        list.join(", ")
    );
}

pub fn check_ok(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let files = ctx.files_with_uses();
    let base = match ctx.baseline {
        Some(b) => format!("baseline {}", b.total()),
        None => "no baseline file: all counts 0".to_string(),
    };
    let _ = writeln!(
        out,
        "sync-usage: ok: {} blocking uses in {files} file(s), none above the baseline ({base}); \
         {} opted-out uses in {} file(s), none above the baseline",
        ctx.total(),
        ctx.infra_total(),
        ctx.infra_counts.len()
    );
    fell_note(&mut out, changes, true);
    out
}

pub fn update_refused(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sync-usage: refusing to raise the baseline {}:",
        ctx.baseline_display()
    );
    write_rises(&mut out, ctx, changes);
    out
}

pub fn updated(ctx: &Context<'_>, changes: &Changes<'_>) -> String {
    let mut out = String::new();
    let files = ctx.files_with_uses();
    let first = ctx.baseline.map_or(ctx.total(), |b| b.first_total);
    let _ = writeln!(
        out,
        "sync-usage: wrote {}: {} uses in {files} file(s), first_total {first}; \
         {} opted-out uses in {} file(s)",
        ctx.baseline_display(),
        ctx.total(),
        ctx.infra_total(),
        ctx.infra_counts.len()
    );
    if ctx.baseline.is_some() {
        for c in changes.rose {
            let _ = writeln!(
                out,
                "  raised (--allow-increase): {} ({} -> {})",
                c.file, c.baseline, c.count
            );
        }
        for c in changes.infra_rose {
            let _ = writeln!(
                out,
                "  opted out, raised (--allow-increase): {}:{} ({} -> {})",
                c.file,
                ctx.marker_line(&c.file).unwrap_or(0),
                c.baseline,
                c.count
            );
        }
        for c in changes.fell {
            let _ = writeln!(out, "  lowered: {} ({} -> {})", c.file, c.baseline, c.count);
        }
        for c in changes.infra_fell {
            let _ = writeln!(
                out,
                "  opted out, lowered: {} ({} -> {})",
                c.file, c.baseline, c.count
            );
        }
    }
    out
}
