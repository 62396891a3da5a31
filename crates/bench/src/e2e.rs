//! The server end to end: `GET /api/players/{id}/quests` from 256 concurrent keep-alive
//! HTTP connections (a small load generator here, no external tool), against the real
//! application started in this process on a budget of 20.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use mariadb_harness::{Server, oracle};
use server::{Application, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::measure::{Stats, Timing};

/// Open connections of the load generator.
pub const CONNECTIONS: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
pub struct E2e {
    pub stats: Stats,
    pub non_2xx: u64,
    pub peak: i64,
}

/// One keep-alive HTTP/1.1 connection.
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Http> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends a request and reads the whole response; returns the status and body.
    async fn request(&mut self, head: &str, body: &str) -> std::io::Result<(u16, String)> {
        self.stream
            .write_all(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
            .await?;
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        let (header_end, length) = loop {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while self.buf.len() < header_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let status = std::str::from_utf8(&self.buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = String::from_utf8_lossy(&self.buf[header_end..header_end + length]).into_owned();
        Ok((status, body))
    }
}

/// Builds the real application on `db` (budget 20, both listeners on port 0), ready to
/// run; shared by the end-to-end benchmark and the soak.
pub fn start_app(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    db: &str,
) -> Result<Application, String> {
    let env = [
        ("DATABASE_URL", server.app_url(db)),
        ("SERVER_SECRET", "bench-secret-0123456789abcdef".to_owned()),
        ("MAX_CONNECTIONS", crate::BUDGET.to_string()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("ADMIN_ADDR", "127.0.0.1:0".to_owned()),
    ];
    let settings = Settings::from_args_and_lookup(["server"], |name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .map_err(|e| e.to_string())?;
    rt.block_on(Application::build(settings))
        .map_err(|e| e.to_string())
}

pub fn run(rt: &tokio::runtime::Runtime, server: &Server, t: Timing) -> Result<E2e, String> {
    let db = server.create_database("e2e").map_err(|e| e.to_string())?;
    let app = start_app(rt, server, &db)?;
    let addr = app.api_addr();
    let shutdown = app.shutdown_handle();
    let running = rt.spawn(app.run_until_stopped());

    // One player per connection, created through the API.
    let players: Vec<(u64, String)> = rt.block_on(async {
        let mut http = Http::connect(addr).await?;
        let mut players = Vec::with_capacity(CONNECTIONS);
        for i in 0..CONNECTIONS {
            let (status, body) = http
                .request(
                    "POST /api/players HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n",
                    &format!(r#"{{"name":"bench{i}"}}"#),
                )
                .await?;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(std::io::Error::other)?;
            if status != 201 {
                return Err(std::io::Error::other(format!("creating a player: {status} {body}")));
            }
            players.push((v["id"].as_u64().unwrap_or(0), v["token"].as_str().unwrap_or("").to_owned()));
        }
        Ok::<_, std::io::Error>(players)
    })
    .map_err(|e| e.to_string())?;

    std::thread::sleep(std::time::Duration::from_millis(200));
    oracle::reset_max();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let non_2xx = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = players
        .into_iter()
        .map(|(id, token)| {
            let (stop, measuring, non_2xx, errors) = (stop.clone(), measuring.clone(), non_2xx.clone(), errors.clone());
            rt.spawn(async move {
                let mut lat = Vec::new();
                let head = format!("GET /api/players/{id}/quests HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n");
                let Ok(mut http) = Http::connect(addr).await else {
                    errors.fetch_add(1, Relaxed);
                    return lat;
                };
                while !stop.load(Relaxed) {
                    let started = Instant::now();
                    let r = http.request(&head, "").await;
                    if !measuring.load(Relaxed) {
                        continue;
                    }
                    match r {
                        Ok((status, _)) if (200..300).contains(&status) => lat.push(started.elapsed().as_micros() as u32),
                        Ok(_) => {
                            non_2xx.fetch_add(1, Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Relaxed);
                            match Http::connect(addr).await {
                                Ok(h) => http = h,
                                Err(_) => return lat,
                            }
                        }
                    }
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(t.warmup);
    measuring.store(true, Relaxed);
    std::thread::sleep(t.measure);
    measuring.store(false, Relaxed);
    stop.store(true, Relaxed);
    let mut lat: Vec<u32> = rt.block_on(async {
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap_or_default());
        }
        all
    });
    let peak = oracle::max();
    shutdown.trigger();
    let _ = rt.block_on(running);
    lat.sort_unstable();
    let pick = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
            .map_or(0, |v| u64::from(*v))
    };
    Ok(E2e {
        stats: Stats {
            qps: lat.len() as f64 / t.measure.as_secs_f64(),
            p50_us: pick(0.5),
            p99_us: pick(0.99),
            errors: errors.load(Relaxed),
        },
        non_2xx: non_2xx.load(Relaxed),
        peak,
    })
}
