//! What a run's records add up to: the fleet's connections in every 100 ms (from the
//! instances' oracles), the server's counts, throughput and connects per request.

use super::run::{PhaseResult, Process, RunLink, RunResult};
use super::shape::Mode;

/// The width of one bucket of the connection series, in seconds.
pub const BUCKET: f64 = 0.1;

/// The fleet's connections over a run, bucket by bucket.
#[derive(Debug, Clone)]
pub struct Series {
    /// Each bucket's start.
    pub t: Vec<f64>,
    /// Per instance process: the most connections it had open at once in the bucket
    /// (exact, from its oracle), `None` while it did not run.
    pub per_process: Vec<(String, Vec<Option<i64>>)>,
    /// At every instant of the bucket the fleet had at most this many open: the
    /// largest sum, over the bucket's instants, of each process's window peak there.
    pub total: Vec<i64>,
}

/// A process's oracle windows `(from, to]` and their exact peaks. After a `kill -9`,
/// the last window's peak stands for the few milliseconds between its last line and
/// its death.
fn windows(p: &Process) -> Vec<(f64, f64, i64)> {
    let mut out = Vec::with_capacity(p.counts.len() + 1);
    let mut from = p.started;
    for c in &p.counts {
        out.push((from, c.t, c.max));
        from = c.t;
    }
    if let Some(last) = p.counts.last()
        && p.killed
        && p.ended > from
    {
        out.push((from, p.ended, last.max));
    }
    out
}

fn bucket_of(t: f64, n: usize) -> usize {
    ((t / BUCKET).floor().max(0.0) as usize).min(n.saturating_sub(1))
}

/// One process's buckets: the most it held at once in each.
fn buckets(p: &Process, n: usize) -> Vec<Option<i64>> {
    let mut out = vec![None; n];
    for (a, b, v) in windows(p) {
        for slot in &mut out[bucket_of(a, n)..=bucket_of(b, n)] {
            *slot = Some(slot.map_or(v, |s: i64| s.max(v)));
        }
    }
    out
}

/// The fleet's bound at every instant, as `(from, to, connections at most)` pieces:
/// the sum of the peaks of the windows that cover it, one per process.
fn sweep(processes: &[Process]) -> Vec<(f64, f64, i64)> {
    let all: Vec<Vec<(f64, f64, i64)>> = processes.iter().map(windows).collect();
    let mut cuts: Vec<f64> = all
        .iter()
        .flat_map(|w| w.iter().flat_map(|(a, b, _)| [*a, *b]))
        .collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut next = vec![0usize; all.len()];
    let mut out = Vec::with_capacity(cuts.len());
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let mut sum = 0;
        for (w, i) in all.iter().zip(next.iter_mut()) {
            while *i < w.len() && w[*i].1 <= a {
                *i += 1;
            }
            if let Some((from, _, v)) = w.get(*i)
                && *from < b
            {
                sum += v;
            }
        }
        out.push((a, b, sum));
    }
    out
}

/// The run's connection series.
pub fn series(run: &RunResult) -> Series {
    let end = run
        .processes
        .iter()
        .flat_map(|p| p.counts.last().map(|c| c.t))
        .fold(0.0, f64::max);
    let n = (end / BUCKET).ceil() as usize + 1;
    let per_process: Vec<(String, Vec<Option<i64>>)> = run
        .processes
        .iter()
        .map(|p| (p.label.clone(), buckets(p, n)))
        .collect();
    let mut total = vec![0i64; n];
    for (a, b, v) in sweep(&run.processes) {
        // An instant of (a, b] lies in the buckets from a's to b's.
        for slot in &mut total[bucket_of(a, n)..=bucket_of(b, n)] {
            *slot = (*slot).max(v);
        }
    }
    Series {
        t: (0..n).map(|i| i as f64 * BUCKET).collect(),
        per_process,
        total,
    }
}

/// A run's figures for the report.
#[derive(Debug, Clone)]
pub struct Figures {
    pub mode: Mode,
    pub rep: usize,
    /// The fleet's connections at every instant, at most (the instances' oracles).
    pub oracle_peak: i64,
    /// Each instance process's own exact peak.
    pub process_peaks: Vec<(String, i64)>,
    /// Connects the oracles could not track (0: every count is exact).
    pub untracked: i64,
    /// `Max_used_connections` less this program's own root sessions: the server's
    /// count of the fleet's connections at its peak.
    pub server_peak: u64,
    /// When the server first counted that peak (within 100 ms), and in which phase.
    pub server_peak_at: Option<(f64, usize)>,
    /// The most sessions of the application's account in any 100 ms sample.
    pub sampled_app_peak: u64,
    /// Connects refused with ERROR 1040 (`Connection_errors_max_connections`).
    pub refused_1040: u64,
    /// Failed connects (`Aborted_connects`: 1040, the fence's 1226, bad handshakes).
    pub aborted_connects: u64,
    /// When the server's `Aborted_connects` rose (within 100 ms), and in which phase.
    pub refused_at: Vec<(f64, usize)>,
    pub requests: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Requests broken by the kill (in flight on the killed instance).
    pub broken_by_kill: u64,
    pub surprises: usize,
    /// Successful requests per second in the phases under skew.
    pub skew_throughput: f64,
    /// The same, of the hot instance alone.
    pub skew_hot_throughput: f64,
    /// p99 latency of the phases under skew, in ms.
    pub skew_p99_ms: f64,
    /// Physical connects (the server's `Connections`) per 1,000 requests, in the phases
    /// under skew and over the whole run.
    pub skew_connects_per_1000: f64,
    pub connects_per_1000: f64,
    /// Per phase with a hot instance: its label and seconds until its first lease.
    pub borrow: Vec<(String, Option<f64>)>,
    /// After the kill: leases the killed instance held, seconds until the server freed them.
    pub freed: Option<(String, usize, Option<f64>)>,
    /// The relay's view of the server's sessions (`None` without the relay).
    pub relay: Option<RelayView>,
}

/// The fleet's sessions as the relay saw them reach and leave the server: each counted
/// from the relay's connect to the server until the server closed its end.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayView {
    /// The most relayed sessions the server had at once.
    pub peak: u64,
    /// Connects that took the server's sessions above the fence.
    pub above: usize,
    /// Of those, the ones where every session counted beyond the fence was one its own
    /// client had already closed (the server still tearing it down) and at least one
    /// of them belonged to the connecting instance.
    pub same_instance_reopen: usize,
    /// Of those, the ones where some session counted beyond the fence was still open
    /// at its client.
    pub all_open: usize,
    /// How long before such a connect the closed-but-counted sessions' clients had
    /// closed them: the shortest and longest, in ms.
    pub closed_ms: Option<(f64, f64)>,
}

/// The relay's view of `links` against `fence` sessions.
pub fn relay_view(links: &[RunLink], fence: u32) -> RelayView {
    // Openings before closings at the same instant: a tie counts as an overlap.
    let mut events: Vec<(f64, bool, usize)> = links
        .iter()
        .enumerate()
        .flat_map(|(i, l)| [(l.upstream, true, i), (l.server_closed, false, i)])
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut alive: Vec<usize> = Vec::new();
    let mut view = RelayView {
        peak: 0,
        above: 0,
        same_instance_reopen: 0,
        all_open: 0,
        closed_ms: None,
    };
    for (t, opens, i) in events {
        if !opens {
            alive.retain(|&j| j != i);
            continue;
        }
        alive.push(i);
        view.peak = view.peak.max(alive.len() as u64);
        if alive.len() <= fence as usize {
            continue;
        }
        view.above += 1;
        let closed: Vec<&RunLink> = alive
            .iter()
            .map(|&j| &links[j])
            .filter(|l| l.client_closed <= t)
            .collect();
        let excess = alive.len() - fence as usize;
        if closed.len() < excess {
            view.all_open += 1;
            continue;
        }
        if closed.iter().any(|l| l.tag == links[i].tag) {
            view.same_instance_reopen += 1;
        }
        for l in closed {
            let ms = (t - l.client_closed) * 1e3;
            view.closed_ms = Some(
                view.closed_ms
                    .map_or((ms, ms), |(a, b)| (a.min(ms), b.max(ms))),
            );
        }
    }
    view
}

fn ok(w: &loadgen::Window) -> u64 {
    w.outcomes
        .iter()
        .filter(|(o, _)| o.is_success())
        .map(|(_, n)| n)
        .sum()
}

fn measured(p: &PhaseResult) -> f64 {
    (p.end - p.measured_from).max(1e-9)
}

/// Successful requests per second of one phase, the whole fleet.
pub fn throughput(p: &PhaseResult) -> f64 {
    ok(&p.total) as f64 / measured(p)
}

/// The phase's busiest instance: its label, successful requests per second and share.
pub fn busiest(p: &PhaseResult) -> Option<(String, f64)> {
    p.per_instance
        .iter()
        .map(|(l, w)| (l.clone(), ok(w) as f64 / measured(p)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The units leased on average over the phase's measurement (budget capacity above
/// what an instance has at rest, every 100 ms): by `label`, and by all the others
/// together.
pub fn mean_leases(run: &RunResult, p: &PhaseResult, label: &str) -> Option<(f64, f64)> {
    let measured: Vec<_> = run
        .samples
        .iter()
        .filter(|s| s.t >= p.measured_from && s.t <= p.end)
        .collect();
    if measured.is_empty() {
        return None;
    }
    let leased = |q: &super::sampler::Pool| q.capacity.saturating_sub(run.floor_capacity) as f64;
    let (mut mine, mut others) = (0.0, 0.0);
    for s in &measured {
        for q in &s.pools {
            if q.label == label {
                mine += leased(q);
            } else {
                others += leased(q);
            }
        }
    }
    let n = measured.len() as f64;
    Some((mine / n, others / n))
}

/// Physical connects per 1,000 requests during one phase's measurement.
pub fn connects_per_1000(p: &PhaseResult) -> f64 {
    let connects = p
        .at_end
        .connections
        .saturating_sub(p.at_measure.connections);
    connects as f64 * 1000.0 / (p.total.requests.max(1) as f64)
}

/// The figures of one run.
/// `fence`: the account's `MAX_USER_CONNECTIONS`.
pub fn figures(run: &RunResult, fence: u32) -> Figures {
    let s = series(run);
    let skew: Vec<&PhaseResult> = run.phases.iter().filter(|p| p.skew).collect();
    let skew_secs: f64 = skew.iter().map(|p| measured(p)).sum();
    let skew_ok: u64 = skew.iter().map(|p| ok(&p.total)).sum();
    let skew_hot: f64 = skew
        .iter()
        .filter_map(|p| busiest(p).map(|(_, r)| r * measured(p)))
        .sum();
    let mut skew_window = loadgen::Window::default();
    for p in &skew {
        skew_window.merge(&p.total);
    }
    let skew_requests: u64 = skew.iter().map(|p| p.total.requests).sum();
    let skew_connects: u64 = skew
        .iter()
        .map(|p| {
            p.at_end
                .connections
                .saturating_sub(p.at_measure.connections)
        })
        .sum();
    let st = (&run.start_status, &run.end_status);
    Figures {
        mode: run.mode,
        rep: run.rep,
        oracle_peak: s.total.iter().copied().max().unwrap_or(0),
        process_peaks: run
            .processes
            .iter()
            .map(|p| {
                (
                    p.label.clone(),
                    p.counts.iter().map(|c| c.max).max().unwrap_or(0),
                )
            })
            .collect(),
        untracked: run
            .processes
            .iter()
            .flat_map(|p| p.counts.last().map(|c| c.untracked))
            .sum(),
        server_peak: st.1.max_used.saturating_sub(run.own_sessions),
        server_peak_at: run
            .samples
            .iter()
            .find(|s| s.status.max_used >= st.1.max_used)
            .map(|s| {
                (
                    s.t,
                    run.phases.iter().rposition(|p| p.start <= s.t).unwrap_or(0),
                )
            }),
        sampled_app_peak: run
            .samples
            .iter()
            .map(|s| s.status.app_sessions)
            .max()
            .unwrap_or(0),
        refused_1040: st.1.refused_1040.saturating_sub(st.0.refused_1040),
        aborted_connects: st.1.aborted_connects.saturating_sub(st.0.aborted_connects),
        refused_at: run
            .samples
            .windows(2)
            .filter(|w| w[1].status.aborted_connects > w[0].status.aborted_connects)
            .map(|w| {
                let phase = run
                    .phases
                    .iter()
                    .rposition(|p| p.start <= w[1].t)
                    .unwrap_or(0);
                (w[1].t, phase)
            })
            .collect(),
        requests: run.all.requests,
        server_errors: run.error_codes.values().map(|n| *n as u64).sum(),
        broken_by_kill: run.broken_by_kill.server_errors(),
        surprises: run.surprises,
        skew_throughput: skew_ok as f64 / skew_secs.max(1e-9),
        skew_hot_throughput: skew_hot / skew_secs.max(1e-9),
        skew_p99_ms: skew_window.latencies.quantile(0.99).as_secs_f64() * 1e3,
        skew_connects_per_1000: skew_connects as f64 * 1000.0 / skew_requests.max(1) as f64,
        connects_per_1000: st.1.connections.saturating_sub(st.0.connections) as f64 * 1000.0
            / run.all.requests.max(1) as f64,
        borrow: run.phases.iter().filter_map(|p| p.borrow.clone()).collect(),
        freed: run
            .phases
            .iter()
            .find_map(|p| p.freed.as_ref().map(|(l, f)| (l.clone(), f.held, f.after))),
        relay: (!run.links.is_empty()).then(|| relay_view(&run.links, fence)),
    }
}

/// The median (the mean of the two middle values for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::run::Count;

    fn count(t: f64, max: i64) -> Count {
        Count {
            t,
            max,
            untracked: 0,
        }
    }

    #[test]
    fn a_window_bounds_every_bucket_it_overlaps_and_a_killed_process_keeps_its_last_peak() {
        let p = Process {
            label: "A".into(),
            started: 0.05,
            ended: 0.35,
            killed: true,
            counts: vec![count(0.12, 3), count(0.13, 1), count(0.25, 2)],
        };

        let b = buckets(&p, 5);

        assert_eq!(b, vec![Some(3), Some(3), Some(2), Some(2), None]);
    }

    #[test]
    fn windows_of_two_processes_count_together_only_where_they_overlap() {
        // A holds 5 until 0.12 s, then 4; B starts at 0.12 s and holds 4 from there:
        // within one 100 ms bucket, but never 9 at once.
        let a = Process {
            label: "A".into(),
            started: 0.0,
            ended: 0.3,
            killed: false,
            counts: vec![count(0.11, 5), count(0.12, 5), count(0.3, 4)],
        };
        let b = Process {
            label: "B".into(),
            started: 0.12,
            ended: 0.3,
            killed: false,
            counts: vec![count(0.2, 4), count(0.3, 4)],
        };

        let pieces = sweep(&[a, b]);

        let peak = pieces.iter().map(|p| p.2).max();
        assert_eq!(peak, Some(8), "{pieces:?}");
        assert!(pieces.contains(&(0.11, 0.12, 5)), "{pieces:?}");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[2.0, f64::NAN, 1.0, 3.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
