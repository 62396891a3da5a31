//! `--peaks`: the database server's count looked at every 2 ms (one root session of
//! its own), and whenever it is above a threshold or `Max_used_connections` rose, its
//! whole process list at that moment: who the server counts at its peaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2_mysql::mysql::{self, prelude::Queryable};

use super::clock::Clock;

/// How often the count is read.
const PERIOD: Duration = Duration::from_millis(2);
/// At most this many process lists are kept per run.
const KEEP: usize = 5000;

/// One session in a process list.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    pub user: String,
    pub host: String,
    pub command: String,
    pub time_ms: f64,
    pub state: String,
}

/// The process list at one moment the count was high.
#[derive(Debug, Clone)]
pub struct Peak {
    /// Seconds since the run started (the count's read).
    pub t: f64,
    pub threads_connected: u64,
    pub max_used: u64,
    pub sessions: Vec<Session>,
}

/// A running watcher.
#[derive(Debug)]
pub struct Peaks {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Peak>>,
}

fn counts(conn: &mut mysql::Conn) -> Result<(u64, u64), mysql::Error> {
    let rows: Vec<(String, u64)> = conn.query(
        "SELECT VARIABLE_NAME, CAST(VARIABLE_VALUE AS UNSIGNED) FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME IN ('THREADS_CONNECTED', 'MAX_USED_CONNECTIONS')",
    )?;
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(0, |(_, v)| *v)
    };
    Ok((get("THREADS_CONNECTED"), get("MAX_USED_CONNECTIONS")))
}

/// A process list row: id, user, host, command, ms in its state, state.
type Row = (
    u64,
    Option<String>,
    Option<String>,
    Option<String>,
    f64,
    Option<String>,
);

fn sessions(conn: &mut mysql::Conn) -> Result<Vec<Session>, mysql::Error> {
    let rows: Vec<Row> = conn.query(
        "SELECT ID, USER, HOST, COMMAND, CAST(TIME_MS AS DOUBLE), STATE \
             FROM information_schema.PROCESSLIST ORDER BY ID",
    )?;
    Ok(rows
        .into_iter()
        .map(|(id, user, host, command, time_ms, state)| Session {
            id,
            user: user.unwrap_or_default(),
            host: host.unwrap_or_default(),
            command: command.unwrap_or_default(),
            time_ms,
            state: state.unwrap_or_default(),
        })
        .collect())
}

impl Peaks {
    /// Starts watching on `conn`, a root session of its own: a process list whenever
    /// `Threads_connected` is above `threshold` or `Max_used_connections` rose.
    pub fn start(mut conn: mysql::Conn, threshold: u64, clock: Clock) -> Peaks {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peaks = Vec::new();
                let mut last_max = 0;
                while !stop.load(Relaxed) {
                    let t = clock.now();
                    let Ok((threads_connected, max_used)) = counts(&mut conn) else {
                        break;
                    };
                    let high = threads_connected > threshold || max_used > last_max;
                    if high
                        && peaks.len() < KEEP
                        && let Ok(sessions) = sessions(&mut conn)
                    {
                        peaks.push(Peak {
                            t,
                            threads_connected,
                            max_used,
                            sessions,
                        });
                    }
                    last_max = last_max.max(max_used);
                    std::thread::sleep(PERIOD);
                }
                peaks
            })
        };
        Peaks { stop, thread }
    }

    /// Stops and returns what it saw.
    pub fn finish(self) -> Vec<Peak> {
        self.stop.store(true, Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
