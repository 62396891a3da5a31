//! [`Server::freeze`]: a SIGSTOP that returns once the server has stopped.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use crate::Server;
use crate::error::other;
use crate::paths::process_state;

/// How long the kernel may take to show the process stopped.
const STOP_BOUND: Duration = Duration::from_secs(5);

impl Server {
    /// [`Server::pause`], then waits until the kernel shows the process stopped (`T` in
    /// `/proc/<pid>/stat`): `kill` returns before every thread has stopped, and a loaded
    /// machine can answer one more packet in between. Thaw it with [`Server::resume`].
    ///
    /// # Errors
    ///
    /// If the server is not running, the signal cannot be sent, or the process is not
    /// seen stopped within 5 s.
    pub fn freeze(&self) -> io::Result<()> {
        self.pause()?;
        let deadline = Instant::now() + STOP_BOUND;
        while process_state(self.pid()) != Some('T') {
            if Instant::now() >= deadline {
                return Err(other(format!(
                    "mariadbd {} not stopped {STOP_BOUND:?} after SIGSTOP",
                    self.pid()
                )));
            }
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}
