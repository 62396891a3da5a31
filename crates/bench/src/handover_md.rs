//! Section 7 of BENCHMARKS.md, from a [`HandoverReport`]; kept by the full benchmark,
//! rewritten by `cargo xtask bench handover`.

use std::fmt::Write as _;

use crate::handover::{BALLAST, BUDGET, FirstUnit, HandoverReport, LoadRun};
use mariadb_harness::MIN_MAX_CONNECTIONS;

/// The heading that starts the section (everything from it to the end of the file is
/// the section).
pub const HEADING: &str = "## 7. Hand-over between the sides";

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn per_thousand(r: &LoadRun) -> f64 {
    let requests = (r.requests[0] + r.requests[1]).max(1);
    r.budget_connects as f64 * 1000.0 / requests as f64
}

fn rps(r: &LoadRun) -> f64 {
    (r.requests[0] + r.requests[1]) as f64 / r.secs
}

pub fn render(rep: &HandoverReport, secs: u64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{HEADING}\n");
    let _ = writeln!(
        o,
        "Command: `cargo xtask bench handover` (`--secs N`, default 30; this run: {secs} s per run). Each mix runs \
         eager, damped, damped, eager; a row adds up both runs of its policy (p99s and peaks: the worse of the two). \
         A private MariaDB ({}) that leaves the application's account {} connections (the budget of {BUDGET} + \
         this program's sampler), no reserve: MariaDB takes no `max_connections` below {MIN_MAX_CONNECTIONS}, so the \
         server has {MIN_MAX_CONNECTIONS} and this program holds {BALLAST} idle connection(s) of that account all \
         along, which `Max_used_connections` and `Threads_connected` below leave out. (Runs before this one set \
         `max_connections` = 9, which MariaDB quietly raised to 10: one slot more than they said.) N blocking threads and N async tasks on one budget; each takes a connection, runs the \
         point select, gives it back and pauses for 0–2 ms (the rest of a request). With N = 100 both sides \
         always have waiters; with fewer, a side is now and then without any. `eager` is the earlier policy (a unit changes side on \
         every return while the other side waits), `damped` the shares (`DB_HANDOVER`, the default). \
         The server's counters are read by the sampler after `FLUSH STATUS`; `Threads_connected` every 10 ms.\n",
        rep.mariadb_version,
        BUDGET + 1
    );
    o.push_str(
        "| N + N callers | policy | requests/s | physical connects | per 1,000 requests | server `Connections` | `Max_used_connections` | peak `Threads_connected` | ERROR 1040 (server) | `Aborted_connects` | caller errors | p99 acquire wait async / sync (µs) | shares at the end |\n",
    );
    o.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rep.runs {
        let _ = writeln!(
            o,
            "| {} + {} | {} | {:.0} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
            r.shape.callers,
            r.shape.callers,
            r.policy.as_str(),
            rps(r),
            r.budget_connects,
            per_thousand(r),
            r.server_connects,
            r.max_used,
            r.peak_threads_connected,
            r.refused_1040,
            r.aborted_connects,
            r.caller_errors,
            r.p99_acquire_us[0],
            r.p99_acquire_us[1],
            r.shares[0],
            r.shares[1],
        );
    }
    o.push_str(
        "\nTime for the async side, quiet until then, to hold its first unit (median / max of 5, ms):\n\n",
    );
    o.push_str("| policy | blocking side idle, holding the whole budget | blocking side saturated (100 threads) |\n|---|---:|---:|\n");
    for f in &rep.first_unit {
        let FirstUnit {
            policy,
            other_idle_ms,
            other_saturated_ms,
        } = f;
        let _ = writeln!(
            o,
            "| {} | {:.1} / {:.1} | {:.1} / {:.1} |",
            policy.as_str(),
            median(other_idle_ms),
            max(other_idle_ms),
            median(other_saturated_ms),
            max(other_saturated_ms),
        );
    }
    let met = |ok: bool| if ok { "**met**" } else { "**missed**" };
    let of = |p: &'static str| rep.runs.iter().filter(move |r| r.policy.as_str() == p);
    let worst = of("damped").map(per_thousand).fold(0.0, f64::max);
    let worst_eager = of("eager").map(per_thousand).fold(0.0, f64::max);
    let max_used = of("damped").map(|r| r.max_used).max().unwrap_or(0);
    // A login the server refuses for want of a slot counts in `Aborted_connects`, not
    // in `Connection_errors_max_connections` (that one counts refusals at accept).
    let refused: u64 = of("damped")
        .map(|r| r.refused_1040 + r.aborted_connects + r.caller_errors)
        .sum();
    let ratio = of("damped")
        .zip(of("eager"))
        .map(|(d, e)| rps(d) / rps(e).max(1.0))
        .fold(f64::INFINITY, f64::min);
    let first = rep
        .first_unit
        .iter()
        .find(|f| f.policy.as_str() == "damped");
    let _ = writeln!(
        o,
        "\nGoals for `damped`, over every mix: at most 2 connects per 1,000 requests: {} (worst {worst:.2}; eager's worst {worst_eager:.2}). \
         `Max_used_connections` at most budget + 1 = {}: {} ({max_used}). No ERROR 1040, aborted connect or caller error with budget + 1 slots: {} ({refused}). \
         Throughput at least eager's (within this machine's 3 % noise): {} (lowest {ratio:.2}×). \
         First unit within 50 ms with the other side idle and 1 s with it saturated: {}.",
        met(worst <= 2.0),
        BUDGET + 1,
        met(max_used <= u64::from(BUDGET) + 1),
        met(refused == 0),
        met(ratio >= 0.97),
        match first {
            Some(f) => met(max(&f.other_idle_ms) <= 50.0 && max(&f.other_saturated_ms) <= 1000.0),
            None => "not measured",
        },
    );
    shedding(&mut o, rep);
    o
}

fn shedding(o: &mut String, rep: &HandoverReport) {
    let _ = writeln!(
        o,
        "\n### Load shedding under overload\n\n{} blocking threads and {} async tasks (ten times the budget) \
         run `SELECT SLEEP(0.01)` in a loop; a shed caller pauses {} ms and asks again. Latency is acquire + statement.\n",
        crate::shedding::CALLERS,
        crate::shedding::CALLERS,
        5
    );
    o.push_str("| `DB_MAX_WAITERS` | admitted/s | admitted p50 / p99 (ms) | shed/s | shed p50 / p99 (µs) | other errors |\n|---:|---:|---:|---:|---:|---:|\n");
    for r in &rep.shedding {
        let _ = writeln!(
            o,
            "| {} | {:.0} | {:.1} / {:.1} | {:.0} | {} / {} | {} |",
            r.limit.map_or("0 (no limit)".to_owned(), |n| n.to_string()),
            r.admitted as f64 / r.secs,
            r.admitted_us.0 as f64 / 1e3,
            r.admitted_us.1 as f64 / 1e3,
            r.shed as f64 / r.secs,
            r.shed_us.0,
            r.shed_us.1,
            r.other_errors,
        );
    }
    if let (Some(open), Some(limited)) = (
        rep.shedding.iter().find(|r| r.limit.is_none()),
        rep.shedding.iter().find(|r| r.limit.is_some()),
    ) {
        let met = |ok: bool| if ok { "**met**" } else { "**missed**" };
        let _ = writeln!(
            o,
            "\nGoals: shed callers answered within 5 ms (p99): {} ({} µs). Admitted p99 bounded by the queue the limit allows \
             instead of growing with the callers: {:.1} ms with the limit, {:.1} ms without.",
            met(limited.shed_us.1 < 5_000),
            limited.shed_us.1,
            limited.admitted_us.1 as f64 / 1e3,
            open.admitted_us.1 as f64 / 1e3,
        );
    }
}

/// `old` (a BENCHMARKS.md) with its section 7 replaced by `section` (or appended).
pub fn splice(old: &str, section: &str) -> String {
    splice_section(old, HEADING, section)
}

/// `old` with the section under `heading` (up to the next `## ` heading) replaced by
/// `section`, or `section` appended when `old` has none.
pub fn splice_section(old: &str, heading: &str, section: &str) -> String {
    let Some(start) = old.find(heading) else {
        return format!("{}\n\n{}", old.trim_end(), section.trim_end()) + "\n";
    };
    let after = start + heading.len();
    let tail = old[after..]
        .find("\n## ")
        .map_or("", |i| &old[after + i + 1..]);
    let head = old[..start].trim_end();
    if tail.is_empty() {
        format!("{head}\n\n{}\n", section.trim_end())
    } else {
        format!("{head}\n\n{}\n\n{tail}", section.trim_end())
    }
}

/// The section of `old` under `heading`, up to the next `## ` heading, if it has one.
pub fn section<'a>(old: &'a str, heading: &str) -> Option<&'a str> {
    let start = old.find(heading)?;
    let after = start + heading.len();
    let end = old[after..]
        .find("\n## ")
        .map_or(old.len(), |i| after + i + 1);
    Some(&old[start..end])
}

/// A full run's file: its own sections (`own`), then each of `kept` that `old` has, in
/// that order, then `last` (heading, text).
pub fn assemble(own: &str, old: &str, kept: &[&str], last: (&str, &str)) -> String {
    let mut text = own.trim_end().to_owned() + "\n";
    for heading in kept {
        if let Some(s) = section(old, heading) {
            text = splice_section(&text, heading, s);
        }
    }
    splice_section(&text, last.0, last.1)
}

#[cfg(test)]
mod tests {
    use super::{assemble, splice_section};

    #[test]
    fn a_full_run_keeps_the_sections_other_commands_write_between_its_own() {
        // Arrange: the file has 6, 7, 8 and an old 9; the run wrote a new 6 and a new 9.
        let old = "# B\n\n## 6. Six\n\nold six\n\n## 7. Seven\n\nseven\n\n## 8. Eight\n\neight\n\n## 9. Nine\n\nold nine\n";

        // Act
        let new = assemble(
            "# B\n\n## 6. Six\n\nnew six\n",
            old,
            &["## 7. Seven", "## 8. Eight"],
            ("## 9. Nine", "## 9. Nine\n\nnew nine\n"),
        );

        // Assert
        assert_eq!(
            new,
            "# B\n\n## 6. Six\n\nnew six\n\n## 7. Seven\n\nseven\n\n## 8. Eight\n\neight\n\n## 9. Nine\n\nnew nine\n"
        );
    }

    #[test]
    fn a_section_is_replaced_up_to_the_next_heading_and_later_sections_are_kept() {
        // Arrange: a file with sections 7 and 8.
        let old = "# B\n\n## 7. Seven\n\nold seven\n\n### Sub\n\nold sub\n\n## 8. Eight\n\neight\n";

        // Act: section 7 replaced; then a section 9 that is not there yet.
        let new = splice_section(old, "## 7. Seven", "## 7. Seven\n\nnew seven\n");
        let more = splice_section(&new, "## 9. Nine", "## 9. Nine\n\nnine\n");

        // Assert: 7's subsection went with it, 8 stayed, 9 was appended.
        assert_eq!(
            new,
            "# B\n\n## 7. Seven\n\nnew seven\n\n## 8. Eight\n\neight\n"
        );
        assert_eq!(more, format!("{}\n## 9. Nine\n\nnine\n", new));
    }
}
