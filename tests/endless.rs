//! A statement only a KILL ends, and the server's count of the sessions running it: the
//! ground of the tests of cut-off sessions (`lingering.rs`, `adversary7.rs`).
//!
//! The statement is a `CALL` of a procedure of short sleeps: the server's statement
//! limit never stops a `CALL`, and the server notices a closed socket only when it
//! writes, so such a session runs for its whole length (far longer than any test)
//! unless it is killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use crate::{Server, TestDb};

/// Long enough that only a KILL ends a session within any test.
pub const FOREVER_STEPS: u32 = 100_000;

/// Creates the procedure `slow()` in `db`: `FOREVER_STEPS` × `DO SLEEP(0.1)`, run with
/// the caller's rights (so the process list shows it under the app's account).
///
/// # Panics
///
/// If the server refuses it.
pub fn endless_procedure(server: &Server, db: &TestDb) {
    db.admin(
        server,
        &format!(
            "\nDELIMITER //\nCREATE PROCEDURE slow() SQL SECURITY INVOKER BEGIN DECLARE i INT DEFAULT 0; \
             WHILE i < {FOREVER_STEPS} DO SET i = i + 1; DO SLEEP(0.1); END WHILE; END //\nDELIMITER ;\n"
        ),
    );
}

/// The application's sessions in `db`, as the server counts them.
///
/// # Panics
///
/// If the process list cannot be read.
pub fn sessions(server: &Server, db: &TestDb) -> Vec<u64> {
    let out = server
        .sql(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app' AND DB = '{}'",
            db.name
        ))
        .expect("the process list");
    out.lines()
        .map(|l| l.trim().parse().expect("an id"))
        .collect()
}

/// Kills what a test left running (after its assertions are computed).
pub fn kill_all(server: &Server, db: &TestDb) {
    for id in sessions(server, db) {
        let _ = server.sql(&format!("KILL {id}"));
    }
}

/// Samples the server's count of the application's sessions in `db` until
/// [`Sampler::max`], which is the most it saw.
#[derive(Debug)]
#[must_use = "a sampler samples until `max` is called"]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling, as fast as the process list answers.
    pub fn start(server: &'static Server, db: &TestDb) -> Sampler {
        let (stop, max) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, m, db) = (stop.clone(), max.clone(), db.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(SeqCst) {
                m.fetch_max(sessions(server, &db).len() as u64, SeqCst);
            }
        });
        Sampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the most sessions seen at once.
    ///
    /// # Panics
    ///
    /// If the sampling thread panicked (the process list could not be read).
    pub fn max(mut self) -> u64 {
        self.stop.store(true, SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.max.load(SeqCst)
    }
}
