//! One run of one mode through the whole schedule: the instances started, killed and
//! started again as the phases say, the players moved between them, everything the
//! report needs recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loadgen::{Load, LoadConfig, Window};
use mariadb_harness::Server;
use r2d2_mysql::mysql::prelude::Queryable;

use super::clock::Clock;
use super::instance::{Instance, Launch};
use super::oracle;
use super::peaks::{Peak, Peaks};
use super::proxy::{Link, Proxy};
use super::sampler::{Sample, Sampler, Shared, Status, root_session, status};
use super::shape::{Action, Mode, Shape};
use super::watch::{self, Freed};

/// The application's account, created with the fence (`MAX_USER_CONNECTIONS`).
pub const USER: &str = "game";
pub const PASSWORD: &str = "game-secret";
/// `SERVER_SECRET` of every instance.
const SECRET: &str = "fleet-simulation-secret-0123456789";

/// What every run shares.
#[derive(Debug)]
pub struct Env<'a> {
    pub server: &'a Server,
    pub rt: &'a tokio::runtime::Runtime,
    /// Where the instances reach the database (the delaying relay, or the server).
    pub db_addr: SocketAddr,
    /// The delaying relay, if any (its log of connections goes beside the samples).
    pub proxy: Option<&'a Proxy>,
    /// `--peaks`: the server's process list at its peaks, beside the samples.
    pub peaks: bool,
    pub binary: &'a Path,
    /// Logs and oracle files go under here, a directory per run.
    pub dir: &'a Path,
    /// Players' mean pause between requests.
    pub think: Duration,
}

/// An instance process's life.
#[derive(Debug, Clone)]
pub struct Process {
    pub label: String,
    /// Seconds since the run's start.
    pub started: f64,
    pub ended: f64,
    pub killed: bool,
    /// Its oracle's 10 ms windows.
    pub counts: Vec<Count>,
}

/// One 10 ms window of an instance's oracle, on the run's time base.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    /// When the window ended (seconds since the run's start).
    pub t: f64,
    /// The most open at once during it (exact).
    pub max: i64,
    /// Connects the oracle could not track (nonzero: the counts may be low).
    pub untracked: i64,
}

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub skew: bool,
    /// Seconds since the run's start: the phase began, its measurement began, it ended.
    pub start: f64,
    pub measured_from: f64,
    pub end: f64,
    /// Requests answered in the measurement, per instance label.
    pub per_instance: Vec<(String, Window)>,
    pub total: Window,
    pub at_measure: Status,
    pub at_end: Status,
    /// The hot instance, and seconds until it had a borrowed unit (elastic runs).
    pub borrow: Option<(String, Option<f64>)>,
    /// After a kill: the killed instance and what became of its leases (elastic runs).
    pub freed: Option<(String, Freed)>,
}

/// Everything one run recorded.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub mode: Mode,
    pub rep: usize,
    pub phases: Vec<PhaseResult>,
    pub samples: Vec<Sample>,
    pub processes: Vec<Process>,
    /// The server's counters after `FLUSH STATUS` at the start, and at the end.
    pub start_status: Status,
    pub end_status: Status,
    /// Root sessions of this program open during the run (in the server's counts).
    pub own_sessions: u64,
    /// Every request of the run.
    pub all: Window,
    /// 5xx answers by status and error code.
    pub error_codes: BTreeMap<(u16, String), usize>,
    /// Requests in flight on an instance when it was killed.
    pub broken_by_kill: Window,
    pub surprises: usize,
    /// The capacity an instance's budget shows with no lease (`/api/pool`).
    pub floor_capacity: u64,
    /// Every connection through the relay (none without one).
    pub links: Vec<RunLink>,
}

/// One connection through the relay ([`super::proxy::Link`]), in seconds since the
/// run's start.
#[derive(Debug, Clone)]
pub struct RunLink {
    /// The instance (each has a listener of its own).
    pub tag: String,
    /// The relay's connect to the server returned: about when the server counts it.
    pub upstream: f64,
    pub client_closed: f64,
    /// The server had closed its end: it has stopped counting it, give or take the
    /// last microseconds of its teardown.
    pub server_closed: f64,
}

/// The slices of players on one instance.
struct Slices {
    loads: Vec<Load>,
}

struct Totals {
    all: Window,
    error_codes: BTreeMap<(u16, String), usize>,
    broken_by_kill: Window,
    surprises: usize,
}

impl Totals {
    fn stopped(&mut self, rt: &tokio::runtime::Runtime, load: Load, killed: bool) {
        let recorder = rt.block_on(load.stop());
        let w = recorder.take_window();
        if killed {
            self.broken_by_kill.merge(&w);
        }
        self.all.merge(&w);
        for (k, n) in recorder.error_codes() {
            *self.error_codes.entry(k).or_default() += n;
        }
        self.surprises += recorder.surprises().len();
    }
}

/// Runs `shape`'s schedule in `mode`.
///
/// # Errors
///
/// The database, an instance or the sampler could not be set up (an instance that
/// does not start: the error holds the end of its log).
/// Where a run stands among all of them, for the progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// This run's index (from 0).
    pub run: usize,
    pub runs: usize,
}

impl Progress {
    fn line(self, mode: Mode, phases_done: usize, phases: usize, what: &str) -> String {
        let done = (self.run * phases + phases_done) as f64 / (self.runs * phases).max(1) as f64;
        let bar = (done * 20.0).round() as usize;
        format!(
            "[{}{}] run {}/{} {:<7} {:<34}",
            "#".repeat(bar),
            ".".repeat(20 - bar.min(20)),
            self.run + 1,
            self.runs,
            mode.name(),
            what.chars().take(34).collect::<String>()
        )
    }
}

pub fn run(
    env: &Env<'_>,
    shape: &Shape,
    mode: Mode,
    rep: usize,
    progress: Progress,
) -> Result<RunResult, String> {
    let sql = |e: r2d2_mysql::mysql::Error| e.to_string();
    let mut admin = root_session(env.server)?;
    let watcher = root_session(env.server)?;
    let db = env
        .server
        .create_database("fleet")
        .map_err(|e| format!("cannot create the run's database: {e}"))?;
    admin
        .query_drop(format!("GRANT ALL ON `{db}`.* TO '{USER}'@'%'"))
        .map_err(sql)?;
    let dir = env.dir.join(format!("{}-{rep}", mode.name()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (max_connections, instances, fleet_budget) = shape.settings(mode);
    let mut settings = vec![
        (
            "DATABASE_URL".to_owned(),
            format!("mysql://{USER}:{PASSWORD}@{}/{db}", env.db_addr),
        ),
        ("SERVER_SECRET".into(), SECRET.into()),
        ("MAX_CONNECTIONS".into(), max_connections.to_string()),
        ("DB_INSTANCES".into(), instances.to_string()),
        // The simulation reads the server's counters itself; each instance's floor is
        // all for its requests.
        ("DB_SERVER_VIEW_INTERVAL".into(), "0".into()),
    ];
    if fleet_budget > 0 {
        settings.push(("DB_FLEET_BUDGET".into(), fleet_budget.to_string()));
    }
    let launch = Launch {
        binary: env.binary.to_path_buf(),
        env: settings,
        dir: dir.clone(),
    };
    let oracle_env = oracle::environment(env.db_addr.port())?;
    let names = watch::lease_names(&db, shape.pool());

    // Every root session of this program is open before the server's counters are
    // reset: `Max_used_connections` starts from them.
    let sampling = root_session(env.server)?;
    let peaks_session = if env.peaks {
        Some(root_session(env.server)?)
    } else {
        None
    };
    if let Some(p) = env.proxy {
        p.take_links();
    }
    admin.query_drop("FLUSH STATUS").map_err(sql)?;
    let start_status = status(&mut admin, USER).map_err(sql)?;
    let own_sessions = start_status.threads_connected;
    let clock = Clock::start();
    let shared = Arc::new(Shared::default());
    let sampler = Sampler::start(sampling, USER, clock, shared.clone());
    let peaks = peaks_session
        .map(|conn| Peaks::start(conn, own_sessions + u64::from(shape.fleet_budget), clock));

    let n = shape.labels.len();
    let mut live: Vec<Option<Instance>> = (0..n).map(|_| None).collect();
    let mut generation = vec![0usize; n];
    let mut slices: Vec<Slices> = (0..n).map(|_| Slices { loads: Vec::new() }).collect();
    let mut processes: Vec<Process> = Vec::new();
    let mut totals = Totals {
        all: Window::default(),
        error_codes: BTreeMap::new(),
        broken_by_kill: Window::default(),
        surprises: 0,
    };
    let mut seed = 0xF1EE_7000_u64 ^ (rep as u64) << 8;
    let mut watcher = Some(watcher);
    let mut floor_capacity = 0;
    let mut phases = Vec::new();
    let publish = |live: &[Option<Instance>]| {
        *shared.instances.lock().unwrap_or_else(|e| e.into_inner()) = live
            .iter()
            .flatten()
            .map(|i| (i.label.clone(), i.admin))
            .collect();
    };

    for (k, phase) in shape.phases.iter().enumerate() {
        *shared.progress.lock().unwrap_or_else(|e| e.into_inner()) =
            progress.line(mode, k, shape.phases.len(), phase.label);
        let start = clock.now();
        let mut freed = None;
        for action in &phase.actions {
            match *action {
                Action::Start(i) => {
                    generation[i] += 1;
                    let label = match generation[i] {
                        1 => shape.labels[i].to_owned(),
                        g => format!("{}{g}", shape.labels[i]),
                    };
                    let started = clock.now();
                    let instance = match env.proxy {
                        // Each instance through a listener of its own, so that the
                        // relay's log tells whose each session is.
                        Some(proxy) => {
                            let addr = proxy
                                .listen(env.rt, &label)
                                .map_err(|e| format!("cannot start a relay listener: {e}"))?;
                            let mut own = launch.clone();
                            for (k, v) in &mut own.env {
                                if k == "DATABASE_URL" {
                                    *v = format!("mysql://{USER}:{PASSWORD}@{addr}/{db}");
                                }
                            }
                            Instance::start(&own, &label, &oracle::environment(addr.port())?)?
                        }
                        None => Instance::start(&launch, &label, &oracle_env)?,
                    };
                    if floor_capacity == 0 {
                        floor_capacity = resting_capacity(env.rt, instance.admin);
                    }
                    processes.push(Process {
                        label,
                        started,
                        ended: f64::NAN,
                        killed: false,
                        counts: Vec::new(),
                    });
                    live[i] = Some(instance);
                    publish(&live);
                }
                Action::Kill(i) => {
                    let Some(instance) = live[i].take() else {
                        return Err(format!(
                            "the schedule kills {}, which is not running",
                            shape.labels[i]
                        ));
                    };
                    let label = instance.label.clone();
                    let before = match (&mut watcher, mode) {
                        (Some(conn), Mode::Elastic) => Some(watch::holders(conn, &names)?),
                        _ => None,
                    };
                    let killed_at = clock.now();
                    instance.kill();
                    if let Some(p) = processes.iter_mut().rev().find(|p| p.label == label) {
                        p.ended = killed_at;
                        p.killed = true;
                    }
                    publish(&live);
                    if let (Some(before), Some(conn)) = (before, watcher.take()) {
                        let limit = shape.phase_length.min(Duration::from_secs(5));
                        freed = Some((
                            label,
                            watch::leases_freed(
                                conn,
                                names.clone(),
                                before,
                                clock,
                                killed_at,
                                limit,
                            ),
                        ));
                    }
                    for load in std::mem::take(&mut slices[i].loads) {
                        totals.stopped(env.rt, load, true);
                    }
                }
                Action::Move {
                    from,
                    to,
                    slices: k,
                } => {
                    if let Some(f) = from {
                        for _ in 0..k {
                            if let Some(load) = slices[f].loads.pop() {
                                totals.stopped(env.rt, load, false);
                            }
                        }
                    }
                    let Some(target) = &live[to] else {
                        return Err(format!(
                            "the schedule moves players to {}, which is not running",
                            shape.labels[to]
                        ));
                    };
                    let _entered = env.rt.enter();
                    for _ in 0..k {
                        seed = seed.wrapping_add(0x9E37_79B9);
                        slices[to].loads.push(Load::start(
                            target.api,
                            LoadConfig {
                                clients: shape.slice_clients,
                                ws_clients: shape.slice_clients / 4,
                                think: env.think,
                                ramp: Duration::from_millis(200),
                                keep_samples: false,
                                seed,
                            },
                        ));
                    }
                }
            }
        }
        let moved_at = clock.now();
        let borrow = match (mode, phase.hot.and_then(|h| live[h].as_ref())) {
            (Mode::Elastic, Some(hot)) => Some((
                hot.label.clone(),
                watch::first_lease(
                    hot.admin,
                    floor_capacity,
                    clock,
                    moved_at,
                    shape.phase_length,
                ),
            )),
            _ => None,
        };
        sleep_until(&clock, moved_at + shape.settle.as_secs_f64());
        for s in &slices {
            for load in &s.loads {
                totals.all.merge(&load.recorder.take_window());
            }
        }
        let measured_from = clock.now();
        let at_measure = status(&mut admin, USER).map_err(sql)?;
        sleep_until(&clock, moved_at + shape.phase_length.as_secs_f64());
        let mut per_instance = Vec::new();
        let mut total = Window::default();
        for (i, s) in slices.iter().enumerate() {
            let Some(instance) = &live[i] else { continue };
            let mut w = Window::default();
            for load in &s.loads {
                w.merge(&load.recorder.take_window());
            }
            total.merge(&w);
            totals.all.merge(&w);
            per_instance.push((instance.label.clone(), w));
        }
        let end = clock.now();
        let at_end = status(&mut admin, USER).map_err(sql)?;
        let borrow = borrow.map(|(label, h)| (label, h.join().ok().flatten()));
        let freed = match freed {
            Some((label, h)) => {
                let (conn, result) = h.join().map_err(|_| "the lease watcher panicked")?;
                watcher = Some(conn);
                Some((label, result?))
            }
            None => None,
        };
        phases.push(PhaseResult {
            skew: phase.skew,
            start,
            measured_from,
            end,
            per_instance,
            total,
            at_measure,
            at_end,
            borrow,
            freed,
        });
    }

    *shared.progress.lock().unwrap_or_else(|e| e.into_inner()) =
        progress.line(mode, shape.phases.len(), shape.phases.len(), "stopping");
    for s in &mut slices {
        for load in std::mem::take(&mut s.loads) {
            totals.stopped(env.rt, load, false);
        }
    }
    for instance in live.iter_mut().filter_map(Option::take) {
        let label = instance.label.clone();
        instance.stop();
        let at = clock.now();
        if let Some(p) = processes.iter_mut().rev().find(|p| p.label == label) {
            p.ended = at;
        }
    }
    publish(&live);
    let samples = sampler.finish();
    write_samples(&dir.join("samples.csv"), &samples);
    let peaks = peaks.map(Peaks::finish);
    let end_status = status(&mut admin, USER).map_err(sql)?;
    let links = match env.proxy {
        Some(p) => {
            // The stopped instances' last connections end at the server in a moment.
            std::thread::sleep(Duration::from_millis(300));
            p.take_links()
        }
        None => Vec::new(),
    };
    write_links(&dir.join("links.csv"), &links, &clock);
    if let Some(peaks) = &peaks {
        write_peaks(&dir.join("peaks.csv"), peaks, &links, &clock);
    }
    // On the run's time base from here on.
    let links: Vec<RunLink> = links
        .iter()
        .map(|l| RunLink {
            tag: l.tag.to_string(),
            upstream: clock.seconds(l.upstream_ns),
            client_closed: clock.seconds(l.client_closed_ns),
            server_closed: clock.seconds(l.server_closed_ns),
        })
        .collect();
    for p in &mut processes {
        let file = dir.join(format!("{}.oracle", p.label));
        let records = oracle::read(&file)?;
        if records.is_empty() {
            return Err(format!(
                "instance {} wrote no oracle counts to {}: the LD_PRELOAD reporter did not load",
                p.label,
                file.display()
            ));
        }
        p.counts = records
            .iter()
            .map(|r| Count {
                t: clock.seconds(r.t_ns),
                max: r.max,
                untracked: r.untracked,
            })
            .collect();
    }
    Ok(RunResult {
        mode,
        rep,
        phases,
        samples,
        processes,
        start_status,
        end_status,
        own_sessions,
        all: totals.all,
        error_codes: totals.error_codes,
        broken_by_kill: totals.broken_by_kill,
        surprises: totals.surprises,
        floor_capacity,
        links,
    })
}

/// The samples as CSV beside the logs (kept with `--keep-files`): one line per sample
/// and live instance.
fn write_samples(path: &Path, samples: &[Sample]) {
    let mut text = String::from(
        "t,threads_connected,app_sessions,max_used,connections,aborted_connects,instance,capacity,in_use,waiting\n",
    );
    for s in samples {
        for p in &s.pools {
            let st = &s.status;
            text.push_str(&format!(
                "{:.2},{},{},{},{},{},{},{},{},{}\n",
                s.t,
                st.threads_connected,
                st.app_sessions,
                st.max_used,
                st.connections,
                st.aborted_connects,
                p.label,
                p.capacity,
                p.in_use,
                p.waiting
            ));
        }
    }
    let _ = std::fs::write(path, text);
}

/// The relay's connections as CSV (seconds since the run's start).
fn write_links(path: &Path, links: &[Link], clock: &Clock) {
    let mut text = format!(
        "# clock start {} ns\ntag,accepted,upstream,upstream_port,client_closed,server_closed\n",
        clock.start_ns()
    );
    for l in links {
        text.push_str(&format!(
            "{},{:.4},{:.4},{},{:.4},{:.4}\n",
            l.tag,
            clock.seconds(l.accepted_ns),
            clock.seconds(l.upstream_ns),
            l.upstream_port,
            clock.seconds(l.client_closed_ns),
            clock.seconds(l.server_closed_ns),
        ));
    }
    let _ = std::fs::write(path, text);
}

/// The process lists at the server's peaks as CSV, one line per session, each with its
/// relayed connection where there is one: how long before the look its client had
/// closed it (empty: it had not), and when it was accepted.
fn write_peaks(path: &Path, peaks: &[Peak], links: &[Link], clock: &Clock) {
    let mut text = String::from(
        "t,threads_connected,max_used,id,user,host,command,time_ms,state,instance,accepted,client_closed_ms_before\n",
    );
    for p in peaks {
        for s in &p.sessions {
            let port: Option<u16> = s
                .host
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok());
            let link = port.and_then(|port| {
                links.iter().find(|l| {
                    l.upstream_port == port
                        && clock.seconds(l.upstream_ns) <= p.t + 0.001
                        && clock.seconds(l.server_closed_ns) >= p.t - 0.001
                })
            });
            let (tag, accepted, closed_before) = match link {
                Some(l) => {
                    let closed = clock.seconds(l.client_closed_ns);
                    (
                        l.tag.to_string(),
                        format!("{:.4}", clock.seconds(l.accepted_ns)),
                        if closed <= p.t {
                            format!("{:.1}", (p.t - closed) * 1000.0)
                        } else {
                            String::new()
                        },
                    )
                }
                None => (String::new(), String::new(), String::new()),
            };
            text.push_str(&format!(
                "{:.4},{},{},{},{},{},{},{:.0},{},{},{},{}\n",
                p.t,
                p.threads_connected,
                p.max_used,
                s.id,
                s.user,
                s.host,
                s.command,
                s.time_ms,
                s.state.replace(',', ";"),
                tag,
                accepted,
                closed_before
            ));
        }
    }
    let _ = std::fs::write(path, text);
}

fn sleep_until(clock: &Clock, t: f64) {
    let wait = t - clock.now();
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
}

/// An instance's capacity right after it started, before any caller: its floor.
fn resting_capacity(rt: &tokio::runtime::Runtime, admin: SocketAddr) -> u64 {
    let mut http = loadgen::Http::new(admin);
    rt.block_on(super::sampler::pool(&mut http, ""))
        .map_or(0, |p| p.capacity)
}
