//! Running a workload for a fixed time and summarising it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use seeded_rng::Rng;

/// How long each measurement runs, after its warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// One measurement: throughput and latency of the calls completed in the window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub qps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
}

/// The run with the median throughput among several of one configuration.
pub fn median(mut runs: Vec<Stats>) -> Stats {
    runs.sort_by(|a, b| a.qps.total_cmp(&b.qps));
    runs[runs.len() / 2]
}

/// A row id in `1..=rows`: each worker has its own seeded generator, so workers ask
/// for different rows without a lock.
pub fn next_id(rng: &mut Rng, rows: u64) -> i64 {
    rng.below(rows) as i64 + 1
}

/// The shared clock of one measurement: workers run until `stop`, and record only
/// while `measuring`.
#[derive(Default)]
pub struct Window {
    stop: AtomicBool,
    measuring: AtomicBool,
    errors: AtomicU64,
}

impl Window {
    pub fn new() -> Arc<Window> {
        Arc::new(Window::default())
    }

    fn record<E: std::fmt::Display>(&self, started: Instant, r: Result<(), E>, lat: &mut Vec<u32>) {
        if !self.measuring.load(Relaxed) {
            return;
        }
        match r {
            Ok(()) => lat.push(started.elapsed().as_micros() as u32),
            Err(e) => {
                if self.errors.fetch_add(1, Relaxed) == 0 {
                    eprintln!("  first error: {e}");
                }
            }
        }
    }

    /// Starts `n` tokio tasks calling `op(id)` in a loop.
    pub fn tasks<F, Fut, E>(
        self: &Arc<Self>,
        rt: &tokio::runtime::Runtime,
        n: usize,
        rows: u64,
        op: F,
    ) -> Vec<tokio::task::JoinHandle<Vec<u32>>>
    where
        F: Fn(i64) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        (0..n)
            .map(|w| {
                let (op, win) = (op.clone(), self.clone());
                rt.spawn(async move {
                    let mut lat = Vec::with_capacity(1 << 14);
                    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1));
                    while !win.stop.load(Relaxed) {
                        let started = Instant::now();
                        let r = op(next_id(&mut rng, rows)).await;
                        win.record(started, r, &mut lat);
                    }
                    lat
                })
            })
            .collect()
    }

    /// Starts `n` OS threads calling `op(id)` in a loop.
    pub fn threads<F, E>(
        self: &Arc<Self>,
        n: usize,
        rows: u64,
        op: F,
    ) -> Vec<std::thread::JoinHandle<Vec<u32>>>
    where
        F: Fn(i64) -> Result<(), E> + Clone + Send + 'static,
        E: std::fmt::Display,
    {
        (0..n)
            .map(|w| {
                let (op, win) = (op.clone(), self.clone());
                std::thread::spawn(move || {
                    let mut lat = Vec::with_capacity(1 << 14);
                    let mut rng = Rng::new(0xD1B5_4A32_D192_ED03u64 ^ (w as u64 + 1));
                    while !win.stop.load(Relaxed) {
                        let started = Instant::now();
                        let r = op(next_id(&mut rng, rows));
                        win.record(started, r, &mut lat);
                    }
                    lat
                })
            })
            .collect()
    }

    /// Warms up, measures, stops the workers and summarises what they recorded.
    pub fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        t: Timing,
        tasks: Vec<tokio::task::JoinHandle<Vec<u32>>>,
        threads: Vec<std::thread::JoinHandle<Vec<u32>>>,
    ) -> Stats {
        self.run_sampled(rt, t, tasks, threads, || ()).0
    }

    /// [`Window::run`], calling `sample` as the measured window opens and as it
    /// closes: `(stats, [at the start, at the end])`.
    pub fn run_sampled<S>(
        &self,
        rt: &tokio::runtime::Runtime,
        t: Timing,
        tasks: Vec<tokio::task::JoinHandle<Vec<u32>>>,
        threads: Vec<std::thread::JoinHandle<Vec<u32>>>,
        sample: impl Fn() -> S,
    ) -> (Stats, [S; 2]) {
        std::thread::sleep(t.warmup);
        let first = sample();
        self.measuring.store(true, Relaxed);
        std::thread::sleep(t.measure);
        self.measuring.store(false, Relaxed);
        let last = sample();
        self.stop.store(true, Relaxed);
        let mut lat = Vec::new();
        for h in threads {
            lat.extend(h.join().expect("benchmark thread panicked"));
        }
        rt.block_on(async {
            for h in tasks {
                lat.extend(h.await.expect("benchmark task panicked"));
            }
        });
        lat.sort_unstable();
        let pick = |q: f64| {
            lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
                .map_or(0, |v| u64::from(*v))
        };
        let stats = Stats {
            qps: lat.len() as f64 / t.measure.as_secs_f64(),
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            errors: self.errors.load(Relaxed),
        };
        (stats, [first, last])
    }
}

/// `n` tasks running `op` for one measurement.
pub fn tasks<F, Fut, E>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    rows: u64,
    t: Timing,
    op: F,
) -> Stats
where
    F: Fn(i64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let w = Window::new();
    let handles = w.tasks(rt, n, rows, op);
    w.run(rt, t, handles, Vec::new())
}

/// `n` threads running `op` for one measurement.
pub fn threads<F, E>(rt: &tokio::runtime::Runtime, n: usize, rows: u64, t: Timing, op: F) -> Stats
where
    F: Fn(i64) -> Result<(), E> + Clone + Send + 'static,
    E: std::fmt::Display,
{
    let w = Window::new();
    let handles = w.threads(n, rows, op);
    w.run(rt, t, Vec::new(), handles)
}

/// Quiet time between measurements, so closing connections and the server settle.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}
