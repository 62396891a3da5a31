//! Helpers of `tests/faults.rs`: a private MariaDB with the whole application on it
//! ([`Rig`]), the steady mixed load ([`load`]), the analysis of what the clients saw
//! around a fault ([`FaultReport`]) and the comparison of the clients' records with the
//! reward ledger ([`check_ledger`]).

#![allow(dead_code)]

pub mod client;
pub mod load;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use db_budget::Snapshot;
use mariadb_harness::{Server, ServerOptions};

use crate::common::{AppOptions, TestApp, spawn_app_on};
use load::{Load, LoadConfig, Outcome, Recorder, Sample, Source, Unsure};

/// `DB_POOL_TIMEOUT` of the fault tests.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(1);
/// `DB_CONNECT_TIMEOUT` of the fault tests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Allowance for scheduling on a loaded 2-core machine (200 clients, the app and
/// mariadbd share it) on top of the documented waits.
pub const MARGIN: Duration = Duration::from_secs(1);
/// `MAX_CONNECTIONS` of the fault tests.
pub const BUDGET: u32 = 20;

/// The app settings of a fault test: budget 20, pool and connect timeouts of 1 s.
pub fn app_options() -> AppOptions {
    AppOptions {
        max_connections: BUDGET,
        pool_timeout: "1s",
        env: vec![("DB_CONNECT_TIMEOUT", "1s".to_owned())],
    }
}

/// Logs of the app to the test's output: errors by default, more with
/// `FAULT_LOG=warn` (or any `tracing` filter).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("FAULT_LOG"))
        .with_test_writer()
        .try_init();
}

/// A private server and an application on it: the test may stop, pause or reconfigure
/// the server without disturbing any other test.
pub struct Rig {
    /// The private server.
    pub server: Arc<Server>,
    /// The application.
    pub app: TestApp,
}

impl Rig {
    /// Starts a private server with `server` options, and the application on it.
    pub async fn start(server: ServerOptions, app: AppOptions) -> Rig {
        init_logs();
        let server = tokio::task::spawn_blocking(move || Server::start(server))
            .await
            .expect("starting the server")
            .expect("a private MariaDB server");
        let server = Arc::new(server);
        let app = spawn_app_on(&server, app).await;
        Rig { server, app }
    }

    /// Runs a blocking administrative action on the server (stop, pause, SQL as root)
    /// off the runtime's threads.
    pub async fn admin<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Server) -> T + Send + 'static,
    ) -> T {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || f(&server))
            .await
            .expect("admin action")
    }

    /// Starts the load (200 clients, 50 of them on WebSockets) against the app.
    pub fn load(&self) -> Load {
        Load::start(self.app.api_addr, LoadConfig::default())
    }

    /// The reward ledger: `(id, player_id, source, source_id)`.
    pub async fn ledger(&self) -> Vec<LedgerRow> {
        let db = self.app.db.clone();
        let out = self
            .admin(move |s| {
                s.sql(&format!(
                    "SELECT id, player_id, source, source_id FROM `{db}`.reward_ledger"
                ))
            })
            .await
            .expect("read the ledger");
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                LedgerRow {
                    id: f[0].parse().expect("id"),
                    player_id: f[1].parse().expect("player_id"),
                    source: match f[2] {
                        "quest" => Source::Quest,
                        "daily_reward" => Source::DailyReward,
                        other => panic!("unknown ledger source {other:?}"),
                    },
                    source_id: f[3].parse().expect("source_id"),
                }
            })
            .collect()
    }

    /// Connections of the application's account the server has open.
    pub async fn server_connections(&self) -> u64 {
        self.admin(|s| {
            s.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
        })
        .await
        .expect("count connections")
        .trim()
        .parse()
        .expect("a number")
    }

    /// Once the load has stopped: no budget unit is stuck (every unit in use is an idle
    /// connection of one of the pools, nothing is checked out or waited for), the server
    /// sees no more connections than that, and after a graceful shutdown every unit is
    /// back and the server sees none of the app's connections.
    pub async fn assert_no_stuck_units_and_stop(self) {
        let budget = self.app.budget.clone();
        let settled = |s: &Snapshot| {
            s.async_side.active == 0
                && s.sync.active == 0
                && s.async_side.waiting == 0
                && s.sync.waiting == 0
                && s.in_use == s.async_side.idle + s.sync.idle
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut snap = budget.snapshot();
        while !settled(&snap) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            snap = budget.snapshot();
        }
        assert!(
            settled(&snap),
            "units stuck with no load: {snap} (held: async {}, sync {})",
            snap.async_side.held,
            snap.sync.held
        );
        // The server may count a closed socket for a moment longer (ARCHITECTURE.md, "Server-side lag").
        let mut seen = self.server_connections().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen > u64::from(budget.in_use()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen = self.server_connections().await;
        }
        assert!(
            seen <= u64::from(budget.in_use()),
            "the server sees {seen} connections of the app, the budget {}",
            budget.in_use()
        );
        let Rig { server, app } = self;
        app.stop().await;
        assert_eq!(budget.in_use(), 0, "units in use after shutdown");
        let mut seen = 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen > 0 && Instant::now() < deadline {
            seen = tokio::task::spawn_blocking({
                let server = server.clone();
                move || {
                    server.sql(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'",
                    )
                }
            })
            .await
            .unwrap()
            .expect("count connections")
            .trim()
            .parse()
            .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, 0, "the server still sees the app's connections");
    }
}

/// One row of `reward_ledger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// `id`.
    pub id: u64,
    /// `player_id`.
    pub player_id: u64,
    /// `source`.
    pub source: Source,
    /// `source_id`.
    pub source_id: u64,
}

/// What the ledger comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerFigures {
    /// Grants the clients were told about (each found exactly once in the ledger).
    pub confirmed: usize,
    /// Ledger rows of attempts whose answer was a 503 or lost: committed although the
    /// client was not told so (allowed; the client sees them as 409 on retry).
    pub committed_unconfirmed: usize,
    /// Rows in the ledger.
    pub rows: usize,
}

/// Compares the clients' records with the ledger: every grant a client was told about
/// is there exactly once, with the player and source it was told; no source is paid
/// twice, and no client was told twice about one source; every other row belongs to an
/// attempt whose outcome its client could not know.
///
/// # Panics
///
/// On any of those violations, listing them.
pub fn check_ledger(rows: &[LedgerRow], recorders: &[&Recorder]) -> LedgerFigures {
    let grants: Vec<_> = recorders.iter().flat_map(|r| r.grants()).collect();
    let unsure: Vec<_> = recorders.iter().flat_map(|r| r.unsure_attempts()).collect();
    let mut problems = Vec::new();

    let by_id: HashMap<u64, &LedgerRow> = rows.iter().map(|r| (r.id, r)).collect();
    let mut per_source: HashMap<(Source, u64), usize> = HashMap::new();
    for r in rows {
        *per_source.entry((r.source, r.source_id)).or_default() += 1;
    }
    for ((source, id), n) in &per_source {
        if *n > 1 {
            problems.push(format!("{} {id} paid {n} times", source.as_str()));
        }
    }
    let mut daily_per_player: HashMap<u64, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.source == Source::DailyReward) {
        *daily_per_player.entry(r.player_id).or_default() += 1;
    }
    for (player, n) in daily_per_player {
        if n > 1 {
            problems.push(format!("player {player} got {n} daily rewards in one day"));
        }
    }

    let mut told_ids = HashSet::new();
    let mut told_sources = HashSet::new();
    for g in &grants {
        if !told_ids.insert(g.ledger_id) || !told_sources.insert((g.source, g.source_id)) {
            problems.push(format!("a client was told twice about {g:?}"));
        }
        match by_id.get(&g.ledger_id) {
            None => problems.push(format!("missing from the ledger: {g:?}")),
            Some(r)
                if (r.player_id, r.source, r.source_id) != (g.player_id, g.source, g.source_id) =>
            {
                problems.push(format!(
                    "ledger row {r:?} is not what the client was told: {g:?}"
                ));
            }
            Some(_) => {}
        }
    }

    let unsure_set: HashSet<&Unsure> = unsure.iter().collect();
    let mut committed_unconfirmed = 0;
    for r in rows.iter().filter(|r| !told_ids.contains(&r.id)) {
        let attempt = Unsure {
            player_id: r.player_id,
            source: r.source,
            source_id: (r.source == Source::Quest).then_some(r.source_id),
        };
        if unsure_set.contains(&attempt) {
            committed_unconfirmed += 1;
        } else {
            problems.push(format!(
                "ledger row {r:?}: no client was told of it, and none had an unanswered attempt"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ledger and client records disagree ({} problems):\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    LedgerFigures {
        confirmed: grants.len(),
        committed_unconfirmed,
        rows: rows.len(),
    }
}

/// Counts of one phase, by outcome.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests in the phase.
    pub requests: usize,
    /// By outcome label.
    pub outcomes: BTreeMap<String, usize>,
    /// The slowest request of the phase.
    pub max_latency: Duration,
}

impl Counts {
    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        *self.outcomes.entry(s.outcome.label()).or_default() += 1;
        self.max_latency = self.max_latency.max(s.took);
    }

    /// Requests that neither succeeded nor got an expected 409 (a retried grant whose
    /// first attempt committed unseen).
    pub fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(k, _)| !k.starts_with('2') && !matches!(k.as_str(), "101" | "409"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6} requests, max {:>6.0} ms: ",
            self.requests,
            self.max_latency.as_secs_f64() * 1e3
        )?;
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// What the clients saw around one fault.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The fault's name.
    pub name: &'static str,
    /// When the fault began and ended (the server back), on the samples' time base.
    pub fault: (Duration, Duration),
    /// Requests sent while the clients were still starting (not asserted on).
    pub ramp: Counts,
    /// Requests sent after the ramp and answered before the fault began.
    pub before: Counts,
    /// Requests in flight at some point of the fault.
    pub during: Counts,
    /// Requests sent after the fault ended.
    pub after: Counts,
    /// From the end of the fault to the last failed answer (zero if none came after).
    pub recovery: Duration,
    /// Failed requests, by outcome.
    pub failures: BTreeMap<String, usize>,
    /// The slowest failed request.
    pub max_failed_latency: Duration,
    /// The slowest request overall.
    pub max_latency: Duration,
    /// Requests slower than `slow` that succeeded, by route (statements that waited for
    /// a frozen server to answer).
    pub slow_successes: BTreeMap<String, usize>,
    /// The slowest failures: `(op, sent, took)`.
    pub slowest_failures: Vec<(String, Duration, Duration)>,
    /// The latest answer to a request sent during the fault.
    pub last_answer_of_fault: Duration,
    /// Failed requests of the blocking and of the async routes.
    pub failed_blocking: usize,
    /// See `failed_blocking`.
    pub failed_async: usize,
}

fn is_failure(o: &Outcome) -> bool {
    !o.is_success() && *o != Outcome::Status(409)
}

impl FaultReport {
    /// Sorts `samples` into ramp (sent before `steady`) / before / during / after the
    /// fault `[begin, end]`.
    pub fn new(
        name: &'static str,
        samples: &[Sample],
        steady: Duration,
        begin: Duration,
        end: Duration,
    ) -> Self {
        let slow = POOL_TIMEOUT + CONNECT_TIMEOUT + MARGIN;
        let mut r = FaultReport {
            slow_successes: BTreeMap::new(),
            slowest_failures: Vec::new(),
            last_answer_of_fault: Duration::ZERO,
            name,
            fault: (begin, end),
            ramp: Counts::default(),
            before: Counts::default(),
            during: Counts::default(),
            after: Counts::default(),
            recovery: Duration::ZERO,
            failures: BTreeMap::new(),
            max_failed_latency: Duration::ZERO,
            max_latency: Duration::ZERO,
            failed_blocking: 0,
            failed_async: 0,
        };
        for s in samples {
            if s.start < steady && s.end() < begin {
                r.ramp.add(s);
                continue;
            }
            if s.end() < begin {
                r.before.add(s);
            } else if s.start <= end {
                r.during.add(s);
                r.last_answer_of_fault = r.last_answer_of_fault.max(s.end());
            } else {
                r.after.add(s);
            }
            r.max_latency = r.max_latency.max(s.took);
            if s.outcome.is_success() && s.took > slow {
                *r.slow_successes.entry(format!("{:?}", s.op)).or_default() += 1;
            }
            if is_failure(&s.outcome) {
                *r.failures.entry(s.outcome.label()).or_default() += 1;
                r.max_failed_latency = r.max_failed_latency.max(s.took);
                if s.op.is_blocking() {
                    r.failed_blocking += 1;
                } else {
                    r.failed_async += 1;
                }
                r.recovery = r.recovery.max(s.end().saturating_sub(end));
                r.slowest_failures
                    .push((format!("{:?}", s.op), s.start, s.took));
            }
        }
        r.slowest_failures.sort_by_key(|f| std::cmp::Reverse(f.2));
        r.slowest_failures.truncate(5);
        r
    }

    /// Prints the figures (visible with `--no-capture`, and on failure).
    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "== {}: fault from {:.2} s to {:.2} s ({:.0} ms)",
            self.name,
            self.fault.0.as_secs_f64(),
            self.fault.1.as_secs_f64(),
            ms(self.fault.1 - self.fault.0)
        );
        eprintln!("   ramp:   {}", self.ramp);
        eprintln!("   before: {}", self.before);
        eprintln!("   during: {}", self.during);
        eprintln!("   after:  {}", self.after);
        eprintln!(
            "   failures {:?} (async routes {}, blocking routes {}); slowest failure {:.0} ms; slowest request {:.0} ms; last failure {:.0} ms after the fault ended",
            self.failures,
            self.failed_async,
            self.failed_blocking,
            ms(self.max_failed_latency),
            ms(self.max_latency),
            ms(self.recovery)
        );
        let slowest: Vec<String> = self
            .slowest_failures
            .iter()
            .map(|(op, sent, took)| {
                format!(
                    "{op} sent at {:.2} s took {:.0} ms",
                    sent.as_secs_f64(),
                    ms(*took)
                )
            })
            .collect();
        eprintln!("   slowest failures: {}", slowest.join("; "));
        if !self.slow_successes.is_empty() {
            eprintln!(
                "   succeeded after more than {:.0} ms (waiting for the server's answer): {:?}",
                ms(POOL_TIMEOUT + CONNECT_TIMEOUT + MARGIN),
                self.slow_successes
            );
        }
    }

    /// The steady state was clean: nothing failed before the fault.
    pub fn assert_clean_before(&self) {
        assert_eq!(
            self.before.failures(),
            0,
            "{}: failures before the fault: {}",
            self.name,
            self.before
        );
        assert!(
            self.before.requests > 0,
            "{}: no load before the fault",
            self.name
        );
    }

    /// Every failure was a 503 (no 500, no broken connection, no hang).
    pub fn assert_only_503(&self) {
        let others: Vec<_> = self.failures.keys().filter(|k| *k != "503").collect();
        assert!(
            others.is_empty(),
            "{}: failures other than 503: {:?}",
            self.name,
            self.failures
        );
    }

    /// Every failed request failed within `bound`.
    pub fn assert_failed_within(&self, bound: Duration) {
        assert!(
            self.max_failed_latency <= bound,
            "{}: a request took {:?} to fail (bound {bound:?})",
            self.name,
            self.max_failed_latency
        );
    }

    /// No failed answer came later than `bound` after the fault ended.
    pub fn assert_recovered_within(&self, bound: Duration) {
        assert!(
            self.recovery <= bound,
            "{}: failures until {:?} after the fault ended (bound {bound:?}); after: {}",
            self.name,
            self.recovery,
            self.after
        );
        assert!(
            self.after.requests > 0,
            "{}: no load after the fault",
            self.name
        );
    }
}

/// Asserts the load met no surprise (an answer the clients did not expect).
pub fn assert_no_surprises(recorder: &Recorder) {
    let surprises = recorder.surprises();
    assert!(
        surprises.is_empty(),
        "{} unexpected answers, e.g.:\n{}",
        surprises.len(),
        surprises
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The ledger check over everything `recorders` saw, printed.
pub async fn check_and_print_ledger(rig: &Rig, recorders: &[&Recorder]) -> LedgerFigures {
    let rows = rig.ledger().await;
    let figures = check_ledger(&rows, recorders);
    eprintln!(
        "   ledger: {} rows; {} grants confirmed to clients, each exactly once; {} committed while the client got a 503 or lost the answer; unsure attempts {}",
        figures.rows,
        figures.confirmed,
        figures.committed_unconfirmed,
        recorders
            .iter()
            .map(|r| r.unsure_attempts().len())
            .sum::<usize>()
    );
    figures
}
