//! Connections held on purpose: async tasks and blocking threads that take a connection
//! and keep it until released, and churners that take and give back in varying rhythm.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use db_async::{Args, AsyncPool};
use db_sync::SyncPool;

/// Connections held until [`Held::release`] (or drop).
#[derive(Default)]
pub struct Held {
    async_release: Vec<tokio::sync::oneshot::Sender<()>>,
    sync_release: Vec<mpsc::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Held {
    /// Takes `n` async connections (each in its own task); returns once all are held.
    pub async fn hold_async(&mut self, pool: &AsyncPool, n: usize) {
        for _ in 0..n {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
            let pool = pool.clone();
            self.tasks.push(tokio::spawn(async move {
                let conn = pool.acquire().await.expect("hold an async connection");
                let _ = ready_tx.send(());
                let _ = release_rx.await;
                drop(conn);
            }));
            self.async_release.push(release_tx);
            ready_rx.await.expect("async holder started");
        }
    }

    /// Takes `n` blocking connections (each on its own thread); returns once all are held.
    pub async fn hold_sync(&mut self, pool: &SyncPool, n: usize) {
        for _ in 0..n {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let pool = pool.clone();
            self.threads.push(thread::spawn(move || {
                let conn = pool.get().expect("hold a blocking connection");
                let _ = ready_tx.send(());
                let _ = release_rx.recv();
                drop(conn);
            }));
            self.sync_release.push(release_tx);
            ready_rx.await.expect("sync holder started");
        }
    }

    /// Gives every held connection back and waits for the holders to end.
    pub async fn release(mut self) {
        self.async_release.clear();
        self.sync_release.clear();
        for t in self.tasks.drain(..) {
            t.await.expect("async holder");
        }
        let threads: Vec<_> = self.threads.drain(..).collect();
        tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join().expect("sync holder");
            }
        })
        .await
        .unwrap();
    }
}

/// Tasks and threads that take a connection, run a statement, keep it for a varying
/// while and give it back, until stopped: demand that changes over time.
pub struct Churn {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Churn {
    pub fn start(
        async_pool: &AsyncPool,
        sync_pool: &SyncPool,
        tasks: usize,
        threads: usize,
    ) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let mut churn = Churn {
            stop: stop.clone(),
            tasks: Vec::new(),
            threads: Vec::new(),
        };
        for k in 0..tasks {
            let (pool, stop) = (async_pool.clone(), stop.clone());
            churn.tasks.push(tokio::spawn(async move {
                let mut i = k as u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if let Ok(mut conn) = pool.acquire().await {
                        let _ = conn.fetch_one::<(i64,)>("SELECT 1", Args::default()).await;
                        tokio::time::sleep(hold_for(i)).await;
                    }
                    tokio::time::sleep(pause_for(i)).await;
                }
            }));
        }
        for k in 0..threads {
            let (pool, stop) = (sync_pool.clone(), stop.clone());
            churn.threads.push(thread::spawn(move || {
                let mut i = 100 + k as u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if let Ok(mut conn) = pool.get() {
                        let _ = conn.fetch_one::<(i64,)>("SELECT 1", ());
                        thread::sleep(hold_for(i));
                    }
                    thread::sleep(pause_for(i));
                }
            }));
        }
        churn
    }

    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.await.expect("async churner");
        }
        let threads: Vec<_> = self.threads.drain(..).collect();
        tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join().expect("sync churner");
            }
        })
        .await
        .unwrap();
    }
}

/// 40..=290 ms, varying with the iteration.
fn hold_for(i: u64) -> Duration {
    Duration::from_millis(40 + (i * 53) % 251)
}

/// 10..=130 ms, varying with the iteration.
fn pause_for(i: u64) -> Duration {
    Duration::from_millis(10 + (i * 29) % 121)
}
