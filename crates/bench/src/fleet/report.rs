//! FLEET.md, and the JSON summary the test reads.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::figures::{self, Figures, Series, busiest, connects_per_1000, median, throughput};
use super::run::RunResult;
use super::shape::{Mode, Shape};

/// How the runs were made, for the report's text.
#[derive(Debug, Clone)]
pub struct Setup {
    pub command: String,
    pub latency_ms: f64,
    pub think_ms: u64,
    pub reps: usize,
    /// `/proc/loadavg`'s first figure before and after.
    pub load_before: String,
    pub load_after: String,
    pub minutes: f64,
}

fn fmt_s(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2} s"))
}

fn med(values: impl Iterator<Item = f64>) -> Option<f64> {
    median(&values.collect::<Vec<_>>())
}

fn of(figs: &[Figures], mode: Mode) -> Vec<&Figures> {
    figs.iter().filter(|f| f.mode == mode).collect()
}

/// Elastic over static throughput under skew, paired by repetition.
pub fn ratios(figs: &[Figures]) -> Vec<f64> {
    let elastic = of(figs, Mode::Elastic);
    elastic
        .iter()
        .filter_map(|e| {
            of(figs, Mode::Static)
                .into_iter()
                .find(|s| s.rep == e.rep)
                .map(|s| e.skew_throughput / s.skew_throughput.max(1e-9))
        })
        .collect()
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// FLEET.md.
pub fn render(shape: &Shape, setup: &Setup, runs: &[RunResult], figs: &[Figures]) -> String {
    let f = shape.fleet_budget;
    let mut s = String::new();
    let elastic = of(figs, Mode::Elastic);
    let stat = of(figs, Mode::Static);
    let _ = writeln!(
        s,
        "# The fleet, simulated: one connection budget across server instances\n"
    );
    let _ = writeln!(
        s,
        "Command: `{}` ({:.1} min here; the knobs are at the end). Issue 15's simulation on one \
         machine: {} real `server` processes, then {} (the release binary, started as child \
         processes on ports 0), against one private MariaDB, first with the fleet budget (**elastic**), \
         then with the static split (**static**), the same schedule and load in both, \
         {} times, alternating which goes first. Measured on a shared two-core machine while \
         other builds ran (load average {} before, {} after): the figures are noisy, so the \
         table gives medians of the runs and the worst run.\n",
        setup.command,
        setup.minutes,
        shape.static_instances,
        shape.labels.len(),
        setup.reps,
        setup.load_before,
        setup.load_after
    );
    let _ = writeln!(s, "## Setup\n");
    let _ = writeln!(
        s,
        "- The database server: `max_connections` {}, the application's account `game` \
         created `WITH MAX_USER_CONNECTIONS {f}` (the fence). It is {} ms away each way: a \
         relay in this program holds every packet for that long, so each statement holds its \
         connection for a round trip that costs no CPU, as across a network (on one machine \
         the CPU would be the limit and connections would never run short).",
        shape.max_connections, setup.latency_ms
    );
    let (ef, en, eb) = shape.settings(Mode::Elastic);
    let (sf, sn, _) = shape.settings(Mode::Static);
    let _ = writeln!(
        s,
        "- Elastic: `DB_FLEET_BUDGET={eb}`, `DB_INSTANCES={en}` (the surge's fifth instance \
         counted), `MAX_CONNECTIONS={ef}` (each instance's floor, its control connection \
         included), so a lease pool of {}. Static: `DB_INSTANCES={sn}`, `MAX_CONNECTIONS={sf}` \
         ({} in all). Both: `DB_SERVER_VIEW_INTERVAL=0` (this program reads the server's \
         counters itself), the server's defaults otherwise.",
        shape.pool(),
        sn * sf
    );
    let _ = writeln!(
        s,
        "- The load: `crates/loadgen`'s players (sign up, claim the daily reward, quests, \
         events, saved games), in slices of {} ({} of them sending events over a WebSocket) \
         moved between instances as a load balancer would, mean think time {} ms. {} \
         slices: one instance gets {:.0} % of the players (**skew**).",
        shape.slice_clients,
        shape.slice_clients / 4,
        setup.think_ms,
        shape.slices(),
        shape.hot_share() * 100.0
    );
    let _ = writeln!(
        s,
        "- The schedule, {} s a phase (the first {} s of each not measured):",
        shape.phase_length.as_secs_f64(),
        shape.settle.as_secs_f64()
    );
    for (i, p) in shape.phases.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}. {}{}",
            i + 1,
            p.label,
            if p.skew { " (skew)" } else { "" }
        );
    }
    let _ = writeln!(
        s,
        "- Counted: each instance's physical connections by the exact connection oracle \
         (`LD_PRELOAD`: every connect and close to the database; its exact peak in every \
         10 ms, summed over the instances wherever their 10 ms windows overlap: at every \
         instant the fleet held at most that sum); the server's own counters every 100 ms (`Threads_connected`, the \
         account's sessions in the process list, `Connections`, `Aborted_connects`, \
         `Connection_errors_max_connections`) and `Max_used_connections` after `FLUSH STATUS` \
         at each run's start (less this program's {} root sessions).\n",
        runs.first().map_or(0, |r| r.own_sessions)
    );

    // Goals.
    let worst_oracle = elastic.iter().map(|f| f.oracle_peak).max().unwrap_or(0);
    let worst_server = elastic.iter().map(|f| f.server_peak).max().unwrap_or(0);
    let worst_sampled = elastic
        .iter()
        .map(|f| f.sampled_app_peak)
        .max()
        .unwrap_or(0);
    let refused: u64 = elastic.iter().map(|f| f.aborted_connects).sum();
    let refused_1040: u64 = elastic.iter().map(|f| f.refused_1040).sum();
    let errors: u64 = elastic.iter().map(|f| f.server_errors).sum();
    let freed: Vec<f64> = elastic
        .iter()
        .filter_map(|f| f.freed.as_ref().and_then(|x| x.2))
        .collect();
    let freed_held: Vec<usize> = elastic
        .iter()
        .filter_map(|f| f.freed.as_ref().map(|x| x.1))
        .collect();
    let ratio = ratios(figs);
    let borrow_all: Vec<Option<f64>> = elastic
        .iter()
        .flat_map(|f| f.borrow.iter().map(|b| b.1))
        .collect();
    let borrow_worst = borrow_all
        .iter()
        .try_fold(0.0_f64, |m, b| b.map(|b| m.max(b)));
    let _ = writeln!(s, "## The goals\n");
    let _ = writeln!(s, "| goal | elastic | static (for comparison) | |");
    let _ = writeln!(s, "|---|---|---|---|");
    let static_oracle = stat.iter().map(|f| f.oracle_peak).max().unwrap_or(0);
    let static_server = stat.iter().map(|f| f.server_peak).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "| the fleet's physical connections ≤ {f} at every instant: each instance's oracle, summed | at most {worst_oracle} (worst run) | at most {static_oracle} | {} |",
        verdict(worst_oracle <= i64::from(f))
    );
    let static_sampled = stat.iter().map(|f| f.sampled_app_peak).max().unwrap_or(0);
    let static_refused: u64 = stat.iter().map(|f| f.aborted_connects).sum();
    let fence = |refused: u64| {
        if refused == 0 {
            format!(
                "never above {f}: the fence (`MAX_USER_CONNECTIONS` {f}) checks it at each of the account's logins and refused none (`Aborted_connects` 0)"
            )
        } else {
            format!(
                "reached {f}: the fence (`MAX_USER_CONNECTIONS` {f}) refused {refused} logins (`Aborted_connects`)"
            )
        }
    };
    let _ = writeln!(
        s,
        "| the same, the server's count of the account's sessions | {}; sampled every 100 ms, at most {worst_sampled} (all runs) | {} | {} |",
        fence(refused),
        if stat.is_empty() {
            "–".to_owned()
        } else {
            format!("{}; sampled, {static_sampled}", fence(static_refused))
        },
        verdict(refused == 0 && worst_sampled <= u64::from(f))
    );
    let _ = writeln!(
        s,
        "| (not a goal) the server's thread count, every account: `Max_used_connections` less this program's root sessions | {worst_server} (worst run){} | {} | – |",
        if worst_server > u64::from(f) {
            ": it counts a session until its teardown ends and a connect from its accept (see below)"
        } else {
            ""
        },
        if stat.is_empty() {
            "–".to_owned()
        } else {
            static_server.to_string()
        }
    );
    let static_1040: u64 = stat.iter().map(|f| f.refused_1040).sum();
    let static_errors: u64 = stat.iter().map(|f| f.server_errors).sum();
    let _ = writeln!(
        s,
        "| client-visible ERROR 1040 / 1226: 0 | {errors} 5xx answers (all runs); the server refused {refused_1040} connects with 1040 and {refused} in all (`Aborted_connects`: 1226 at the fence, each retried by its pool) | {static_errors} 5xx; {static_1040} with 1040, {static_refused} in all | {} |",
        verdict(errors == 0 && refused_1040 == 0)
    );
    let freed_worst = freed
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let _ = writeln!(
        s,
        "| a killed instance's units free within 1 s | median {}, worst {} (it held {} leases) | – | {} |",
        fmt_s(median(&freed)),
        fmt_s(freed_worst),
        freed_held
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        verdict(freed.len() == elastic.len() && freed_worst.is_some_and(|w| w <= 1.0))
    );
    let r = median(&ratio);
    let _ = writeln!(
        s,
        "| throughput under skew, elastic vs static ≥ 1.3× | median {} ({}) | {} req/s median | {} |",
        r.map_or("–".into(), |r| format!("{r:.2}×")),
        ratio
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect::<Vec<_>>()
            .join(", "),
        med(stat.iter().map(|f| f.skew_throughput)).map_or("–".into(), |v| format!("{v:.0}")),
        verdict(r.is_some_and(|r| r >= 1.3))
    );
    let _ = writeln!(
        s,
        "| the hot instance receives borrowed units within 1 s (one more than it held when its players arrived) | median {}, worst {} (every phase with a hot instance, every run) | – | {} |",
        fmt_s(med(borrow_all.iter().flatten().copied())),
        borrow_worst.map_or("none within the phase".into(), |w| format!("{w:.2} s")),
        verdict(borrow_worst.is_some_and(|w| w <= 1.0))
    );
    let _ = writeln!(s);

    let _ = writeln!(
        s,
        "![Each instance's connections and the fleet's, elastic and static](docs/fleet.svg)\n\n\
         Each instance's connections (the most it held at once in every 0.3 s, from its \
         oracle; B2 is B started again), the fleet's total (at most this many at every \
         instant) and the fleet budget, first run of each mode. Dashed lines: the phases \
         (red: the `kill -9`; green: an instance starts).\n"
    );

    // Phases.
    let _ = writeln!(s, "## Phase by phase (medians of the runs)\n");
    let _ = writeln!(
        s,
        "| phase | mode | req/s | busiest instance, req/s | its leases (mean) | the others' leases (mean) | p99 | connects per 1,000 requests | fleet's connections at most (oracle) | account's sessions at most (server, sampled) |"
    );
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (i, phase) in shape.phases.iter().enumerate() {
        for mode in [Mode::Elastic, Mode::Static] {
            let these: Vec<&RunResult> = runs.iter().filter(|r| r.mode == mode).collect();
            if these.is_empty() {
                continue;
            }
            let p = |r: &&RunResult| r.phases.get(i).cloned();
            let rows: Vec<_> = these.iter().filter_map(p).collect();
            let busy: Vec<(String, f64)> = rows.iter().filter_map(busiest).collect();
            let busy_label = busy.first().map(|b| b.0.clone()).unwrap_or_default();
            let leases: Vec<(f64, f64)> = these
                .iter()
                .filter_map(|r| {
                    let ph = r.phases.get(i)?;
                    let (label, _) = busiest(ph)?;
                    figures::mean_leases(r, ph, &label)
                })
                .collect();
            let peaks: Vec<f64> = these
                .iter()
                .filter_map(|r| {
                    let ph = r.phases.get(i)?;
                    let series = figures::series(r);
                    Some(window_peak(&series, ph.start, ph.end) as f64)
                })
                .collect();
            let sessions: Vec<f64> = these
                .iter()
                .filter_map(|r| {
                    let ph = r.phases.get(i)?;
                    r.samples
                        .iter()
                        .filter(|x| x.t >= ph.start && x.t <= ph.end)
                        .map(|x| x.status.app_sessions)
                        .max()
                        .map(|v| v as f64)
                })
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} {:.0} | {} | {} | {:.0} ms | {:.1} | {:.0} | {:.0} |",
                phase.label,
                mode.name(),
                med(rows.iter().map(throughput)).unwrap_or(0.0),
                busy_label,
                med(busy.iter().map(|b| b.1)).unwrap_or(0.0),
                match mode {
                    Mode::Elastic =>
                        med(leases.iter().map(|l| l.0)).map_or("–".into(), |v| format!("{v:.1}")),
                    Mode::Static => "–".into(),
                },
                match mode {
                    Mode::Elastic =>
                        med(leases.iter().map(|l| l.1)).map_or("–".into(), |v| format!("{v:.1}")),
                    Mode::Static => "–".into(),
                },
                med(rows
                    .iter()
                    .map(|p| p.total.latencies.quantile(0.99).as_secs_f64() * 1e3))
                .unwrap_or(0.0),
                med(rows.iter().map(connects_per_1000)).unwrap_or(0.0),
                median(&peaks).unwrap_or(0.0),
                median(&sessions).unwrap_or(0.0),
            );
        }
    }
    let _ = writeln!(s);

    // Every run.
    let _ = writeln!(s, "## Every run\n");
    let _ = writeln!(
        s,
        "| run | mode | fleet's connections at most (oracle) | `Max_used_connections` − own | 1040 | `Aborted_connects` | requests | 5xx | broken by the kill | req/s under skew (hot instance) | p99 under skew | connects per 1,000 requests (skew / run) | the hot instance's next lease after its players arrived | killed instance's leases freed | connects refused at |"
    );
    let _ = writeln!(
        s,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|---|"
    );
    for g in figs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} ({:.0}) | {:.0} ms | {:.1} / {:.1} | {} | {} | {} |",
            g.rep + 1,
            g.mode.name(),
            g.oracle_peak,
            match g.server_peak_at {
                Some((t, p)) => format!(
                    "{} (at {t:.1} s, {})",
                    g.server_peak,
                    shape.phases.get(p).map_or("?", |p| p.label)
                ),
                None => g.server_peak.to_string(),
            },
            g.refused_1040,
            g.aborted_connects,
            g.requests,
            g.server_errors,
            g.broken_by_kill,
            g.skew_throughput,
            g.skew_hot_throughput,
            g.skew_p99_ms,
            g.skew_connects_per_1000,
            g.connects_per_1000,
            if g.borrow.is_empty() {
                "–".into()
            } else {
                g.borrow
                    .iter()
                    .map(|(l, t)| format!("{l} {}", fmt_s(*t)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            g.freed.as_ref().map_or("–".into(), |(l, held, t)| format!(
                "{l}: {held} in {}",
                fmt_s(*t)
            )),
            refusals(shape, &g.refused_at),
        );
    }
    let _ = writeln!(s);
    s.push_str(&findings(shape, setup, runs, figs));
    let untracked: i64 = figs.iter().map(|f| f.untracked).sum();
    if untracked > 0 {
        let _ = writeln!(
            s,
            "\n{untracked} connects escaped the oracle (fd ≥ 65536): its counts may be low."
        );
    }
    let _ = writeln!(s);
    s
}

/// When connects were refused: per phase, how many 100 ms samples saw some, and when.
fn refusals(shape: &Shape, at: &[(f64, usize)]) -> String {
    if at.is_empty() {
        return "–".into();
    }
    let mut parts = Vec::new();
    for (p, phase) in shape.phases.iter().enumerate() {
        let ts: Vec<f64> = at
            .iter()
            .filter(|(_, q)| *q == p)
            .map(|(t, _)| *t)
            .collect();
        if let (Some(first), Some(last)) = (ts.first(), ts.last()) {
            parts.push(format!(
                "{}: {first:.1}–{last:.1} s ({} samples)",
                phase.label,
                ts.len()
            ));
        }
    }
    parts.join("; ")
}

/// Who the server's thread count counted beyond the fence, from the relay's log.
fn relay_reading(elastic: &[&Figures], f: u32, latency_ms: f64, server: u64) -> String {
    let views: Vec<&super::figures::RelayView> =
        elastic.iter().filter_map(|g| g.relay.as_ref()).collect();
    if views.is_empty() || server <= u64::from(f) {
        return String::new();
    }
    let peak = views.iter().map(|v| v.peak).max().unwrap_or(0);
    let above: usize = views.iter().map(|v| v.above).sum();
    let same: usize = views.iter().map(|v| v.same_instance_reopen).sum();
    let open: usize = views.iter().map(|v| v.all_open).sum();
    let (lo, hi) = views
        .iter()
        .filter_map(|v| v.closed_ms)
        .fold((f64::INFINITY, 0.0_f64), |(a, b), (x, y)| {
            (a.min(x), b.max(y))
        });
    let mut t = format!(
        " Who those were, from the relay's log of every connection (when it connected to \
         the server, when the client closed, when the server closed its end; its own \
         reads lag, so it may see a session a little longer than the server counts it): \
         the server had at most {peak} of the fleet's sessions at once, more than {f} at \
         {above} connects (elastic runs)"
    );
    if above > 0 {
        t.push_str(&format!(
            "; at {same} of them every session beyond {f} was one its client had already \
             closed ({lo:.1}–{hi:.1} ms before; the relay passes a close on after {latency_ms} \
             ms), still being torn down at the server while the same instance opened another \
             connection"
        ));
        if above > same + open {
            t.push_str(&format!(", at {} another instance's", above - same - open));
        }
        if open > 0 {
            t.push_str(&format!(
                ", and at {open} some session beyond {f} was still open at its client as the \
                 relay timed it (its read of the client's close can lag)"
            ));
        }
    }
    t.push_str(
        ". A unit handed from one connection to the next is free at the instance when its \
         socket is closed (invariant I1); the server lets go of the old session a few \
         milliseconds later (ARCHITECTURE.md, \"Server-side lag\"), which the reserve below \
         `max_connections` absorbs.",
    );
    t
}

/// What the figures say, in sentences that follow from them.
fn findings(shape: &Shape, setup: &Setup, runs: &[RunResult], figs: &[Figures]) -> String {
    let f = shape.fleet_budget;
    let mut s = String::from("## Reading the figures\n\n");
    let elastic = of(figs, Mode::Elastic);
    let stat = of(figs, Mode::Static);
    let oracle = elastic.iter().map(|g| g.oracle_peak).max().unwrap_or(0);
    let server = elastic.iter().map(|g| g.server_peak).max().unwrap_or(0);
    let aborted: u64 = elastic.iter().map(|g| g.aborted_connects).sum();
    let own = runs.first().map_or(0, |r| r.own_sessions);
    let _ = writeln!(
        s,
        "- **Three counts of the same connections.** The oracle counts each instance's \
         sockets from just before `connect` to just after `close`, exactly; the sum of the \
         10 ms peaks bounds the fleet at every instant, and for the elastic runs that bound \
         was {oracle} (fleet budget {f}). The server's count of the account's sessions, what \
         `MAX_USER_CONNECTIONS` enforces, grows only at a login, and each login is checked \
         against the fence ({f}): {}. The server's thread count (`Max_used_connections`, \
         every account, less this program's {own} root sessions) reached \
         {server}: it counts a connection from its accept, before the login, and a session \
         until its teardown is done, after the account's count has let it go.{}",
        if aborted == 0 {
            format!("no login was refused in the elastic runs, so that count never exceeded {f}")
        } else {
            format!(
                "{aborted} connects failed in the elastic runs (`Aborted_connects`), so it reached the fence"
            )
        },
        relay_reading(&elastic, f, setup.latency_ms, server)
    );
    if aborted > 0 {
        let _ = writeln!(
            s,
            "- **The fence at work.** The account's `MAX_USER_CONNECTIONS` is the fleet budget \
             itself, so in such a moment the server refused a connect with ERROR 1226 \
             ({aborted} in the elastic runs, `Aborted_connects`; when, in the table above). The \
             pools retry a refused connect while holding its unit, so no caller saw one (5xx \
             answers above); `DB_RESERVED_CONNECTIONS` leaves room for the same lag below \
             `max_connections`, and no ERROR 1040 happened. With the fence at the fleet \
             budget exactly, the lag alone can cause such a refusal."
        );
    }
    let static_peak = stat.iter().map(|g| g.oracle_peak).max().unwrap_or(0);
    if static_peak > i64::from(f) {
        let refused: u64 = stat.iter().map(|g| g.aborted_connects).sum();
        let _ = writeln!(
            s,
            "- **The static split has no answer to a surge.** With five instances up (the \
             deploy's fifth, then the killed one back), `DB_INSTANCES=4` × 7 is a promise \
             the fleet cannot keep: the instances held up to {static_peak} connections at once, \
             above the {f} the account may have, and the fence refused {refused} connects \
             with ERROR 1226 (each retried by its pool: hence the phase's connects per 1,000 \
             requests). No caller saw one, but only because the fence is there. The elastic \
             fleet counts the overlap in `DB_INSTANCES` and lowers every floor instead."
        );
    }
    let skew_leases: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| r.mode == Mode::Elastic)
        .flat_map(|r| {
            r.phases
                .iter()
                .filter(|p| p.skew)
                .filter_map(move |p| figures::mean_leases(r, p, &busiest(p)?.0))
        })
        .collect();
    if let (Some(hot), Some(others), Some(ratio)) = (
        med(skew_leases.iter().map(|l| l.0)),
        med(skew_leases.iter().map(|l| l.1)),
        median(&ratios(figs)),
    ) {
        let pool = shape.pool();
        let part = pool.div_ceil(shape.static_instances);
        if ratio < 1.3 {
            let _ = writeln!(
                s,
                "- **Why the throughput goal is missed: where the leases went.** Under skew the \
                 hot instance held {hot:.1} of the {pool} leases on average, the three cold \
                 instances {others:.1} together (medians over the skew phases), so it served \
                 with about {:.0} connections of its own where the static split gives it {} \
                 (an even split of the pool would be ⌈{pool}/{}⌉ = {part}). A cold instance \
                 keeps a lease while another wants only if its callers needed it in most \
                 ticks of the last second, and the hot instance gives back above its part \
                 only to an instance that has wanted for half a second \
                 (`crates/db-fleet/src/policy.rs`): read the phases below for where the \
                 leases were and how often they moved. The protocol's bound held; its \
                 sharing under skew is what falls short.",
                f64::from(shape.floor - 1) + hot,
                shape.static_max,
                shape.static_instances,
            );
        } else {
            let _ = writeln!(
                s,
                "- **Where the leases went.** Under skew the hot instance held {hot:.1} of the \
                 {pool} leases on average, the three cold instances {others:.1} together \
                 (medians over the skew phases): about {:.0} connections for the hot instance \
                 where the static split gives it {}.",
                f64::from(shape.floor - 1) + hot,
                shape.static_max,
            );
        }
    }
    if let (Some(e), Some(st)) = (
        med(elastic.iter().map(|g| g.skew_connects_per_1000)),
        med(stat.iter().map(|g| g.skew_connects_per_1000)),
    ) {
        let _ = writeln!(
            s,
            "- **Connects.** Under skew the fleet made {e:.0} physical connects per 1,000 \
             requests, the static split {st:.0} (medians): a lease that moves closes a \
             connection on one instance and opens one on another, on top of the hand-over \
             between the two sides within each instance that both modes have."
        );
    }
    let _ = writeln!(
        s,
        "- **Requests broken by the kill** are those in flight on the killed instance (its \
         players' connections were reset); its players then go to another instance, as a \
         load balancer sends them. They are not database errors and are not in the 5xx count.\n\
         - **Throughput** is closed-loop: each player waits for its answer and thinks before \
         the next request, so a starved instance shows as fewer requests per second (and a \
         higher p99) rather than as errors. Under skew the hot instance is short of \
         connections in the static split ({} of its own) while the others idle on theirs; \
         the fleet is there to lend it the idle ones.\n",
        shape.static_max
    );
    s
}

/// The fleet's connections at most over `[from, to]`.
pub fn window_peak(series: &Series, from: f64, to: f64) -> i64 {
    series
        .t
        .iter()
        .zip(&series.total)
        .filter(|(t, _)| **t + figures::BUCKET > from && **t <= to)
        .map(|(_, v)| *v)
        .max()
        .unwrap_or(0)
}

/// The machine-readable summary (`--summary PATH`), one object per run.
pub fn summary(shape: &Shape, runs: &[RunResult], figs: &[Figures]) -> Value {
    let runs: Vec<Value> = runs
        .iter()
        .zip(figs)
        .map(|(r, g)| {
            let served: serde_json::Map<String, Value> = r
                .processes
                .iter()
                .map(|p| {
                    let ok: u64 = r
                        .phases
                        .iter()
                        .flat_map(|ph| ph.per_instance.iter())
                        .filter(|(l, _)| *l == p.label)
                        .map(|(_, w)| w.requests - w.non_2xx())
                        .sum();
                    (p.label.clone(), json!(ok))
                })
                .collect();
            json!({
                "mode": g.mode.name(),
                "rep": g.rep,
                "oracle_peak": g.oracle_peak,
                "process_peaks": g.process_peaks.iter().map(|(l, v)| json!([l, v])).collect::<Vec<_>>(),
                "untracked": g.untracked,
                "max_used_connections": r.end_status.max_used,
                "own_sessions": r.own_sessions,
                "server_peak": g.server_peak,
                "server_peak_at": g.server_peak_at.map(|(t, p)| json!([t, p])),
                "sampled_app_peak": g.sampled_app_peak,
                "refused_1040": g.refused_1040,
                "aborted_connects": g.aborted_connects,
                "requests": g.requests,
                "server_errors": g.server_errors,
                "broken_by_kill": g.broken_by_kill,
                "surprises": g.surprises,
                "served": served,
                "skew_throughput": g.skew_throughput,
                "borrow": g.borrow.iter().map(|(l, t)| json!([l, t])).collect::<Vec<_>>(),
                "freed": g.freed.as_ref().map(|(l, held, t)| json!({"instance": l, "held": held, "after": t})),
            })
        })
        .collect();
    json!({
        "fleet_budget": shape.fleet_budget,
        "instances": shape.instances,
        "floor": shape.floor,
        "runs": runs,
    })
}
