//! Starting and stopping the load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::client::Client;
use crate::recorder::Recorder;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Simulated players at once.
    pub clients: usize,
    /// Of those, how many send their gameplay events over a WebSocket.
    pub ws_clients: usize,
    /// Mean pause between one client's requests (uniform in 0..2×).
    pub think: Duration,
    /// The clients start one after another over this time.
    pub ramp: Duration,
    /// Keep every request as a [`Sample`](crate::Sample) (fault tests) or only count windows (soak).
    pub keep_samples: bool,
    /// Seed of the clients' choices.
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            clients: 200,
            ws_clients: 50,
            think: Duration::from_millis(400),
            ramp: Duration::from_secs(2),
            keep_samples: true,
            seed: 0x10AD,
        }
    }
}

/// A running load.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    /// What the clients saw.
    pub recorder: Arc<Recorder>,
}

impl Load {
    /// Starts `config.clients` clients against the API at `addr`, one after another
    /// over `config.ramp`.
    pub fn start(addr: SocketAddr, config: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let recorder = Arc::new(Recorder::new(config.keep_samples));
        let clients = (0..config.clients)
            .map(|n| {
                let client = Client::new(n, addr, &config, recorder.clone(), stop.clone());
                tokio::spawn(client.run())
            })
            .collect();
        Load {
            stop,
            clients,
            recorder,
        }
    }

    /// Stops the clients after their current request and waits for them.
    pub async fn stop(self) -> Arc<Recorder> {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            c.await.expect("a load client panicked");
        }
        self.recorder
    }
}
