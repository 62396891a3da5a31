//! Section 7 of BENCHMARKS.md, from a [`HandoverReport`]; kept by the full benchmark,
//! rewritten by `cargo xtask bench handover`.

use std::fmt::Write as _;

use crate::handover::{BUDGET, FirstUnit, HandoverReport, LoadRun};

/// The heading that starts the section (it runs to section 8's heading, or to the end
/// of the file).
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
         A private MariaDB ({}) with `max_connections` = {} (the budget of {BUDGET} + this program's sampler), \
         no reserve. N blocking threads and N async tasks on one budget; each takes a connection, runs the \
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
    let refused: u64 = of("damped").map(|r| r.refused_1040 + r.caller_errors).sum();
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
         `Max_used_connections` at most budget + 1 = {}: {} ({max_used}). No ERROR 1040 or caller error at `max_connections` = budget + 1: {} ({refused}). \
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

/// `old` (a BENCHMARKS.md) with its section 7 replaced by `section`, or put in before
/// section 8 (or at the end) when it has none. What follows section 7 is kept.
pub fn splice(old: &str, section: &str) -> String {
    let (head, tail) = match old.find(HEADING) {
        Some(i) => (&old[..i], &old[section_end(old, i)..]),
        None => match old.find(crate::timeout::HEADING) {
            Some(j) => (&old[..j], &old[j..]),
            None => (old, ""),
        },
    };
    let mut out = format!("{}\n\n{}\n", head.trim_end(), section.trim());
    if !tail.trim().is_empty() {
        out = format!("{out}\n{}\n", tail.trim());
    }
    out
}

/// Section 7 of `old`, if it has one (the full benchmark keeps it).
pub fn existing(old: &str) -> Option<&str> {
    old.find(HEADING).map(|i| &old[i..section_end(old, i)])
}

/// Where section 7, starting at `start`, ends: at section 8's heading, or the end.
fn section_end(old: &str, start: usize) -> usize {
    old[start..]
        .find(crate::timeout::HEADING)
        .map_or(old.len(), |j| start + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEVEN: &str = "## 7. Hand-over between the sides\n\nseven\n";
    const EIGHT: &str = "## 8. Statement timeout on vs off: x\n\neight\n";

    #[test]
    fn splicing_section_7_keeps_what_comes_before_and_after_it() {
        // Arrange
        let old = format!("# B\n\n## 6. six\n\n{SEVEN}\n{EIGHT}");

        // Act
        let new = splice(&old, "## 7. Hand-over between the sides\n\nnew seven");

        // Assert
        assert_eq!(
            new,
            format!(
                "# B\n\n## 6. six\n\n## 7. Hand-over between the sides\n\nnew seven\n\n{EIGHT}"
            )
        );
        assert_eq!(
            existing(&new).map(str::trim),
            Some("## 7. Hand-over between the sides\n\nnew seven")
        );
    }

    #[test]
    fn a_full_run_puts_the_kept_section_7_between_sections_6_and_8() {
        // Arrange: a full run's own text has sections 1 to 6 and 8.
        let run = format!("# B\n\n## 6. six\n\n{EIGHT}");

        // Act
        let new = splice(&run, SEVEN);

        // Assert
        assert_eq!(new, format!("# B\n\n## 6. six\n\n{SEVEN}\n{EIGHT}"));
    }

    #[test]
    fn a_file_without_section_8_gets_section_7_at_the_end() {
        // Arrange
        let old = "# B\n\n## 6. six\n";

        // Act
        let new = splice(old, SEVEN);

        // Assert
        assert_eq!(new, format!("# B\n\n## 6. six\n\n{SEVEN}"));
        assert_eq!(existing(&new), Some(SEVEN));
    }
}
