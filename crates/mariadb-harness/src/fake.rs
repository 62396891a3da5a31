//! Stand-ins for a server, for pool tests that need none: a port nothing listens on, and
//! a listener that answers every connect as a MariaDB at `max_connections` does.
//!
//! Both pool crates test their offline behaviour (refusals, connect retries, timeouts)
//! against these, so the two sides are tested against the same fake.
//!
//! # Example
//!
//! ```
//! use mariadb_harness::fake;
//!
//! let full = fake::TooManyConnections::start().expect("bind a local port");
//! let url = fake::url(full.port()); // every connect gets ERROR 1040
//! assert!(url.contains(fake::PASSWORD));
//! assert_eq!(full.accepted(), 0);
//! let _nobody = fake::url(fake::closed_port()); // every connect is refused
//! ```

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::thread;

/// The password in [`url`]: a test checks that no error shows it.
pub const PASSWORD: &str = "hunter2";

/// `mysql://app:hunter2@127.0.0.1:{port}/game`, a URL with a password worth hiding.
pub fn url(port: u16) -> String {
    format!("mysql://app:{PASSWORD}@127.0.0.1:{port}/game")
}

/// A port nothing listens on: bound, then released, so a connect to it is refused.
///
/// # Panics
///
/// If no local port can be bound.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a local port")
        .port()
}

/// A listener on a local port that answers every connection with the error packet a
/// server at `max_connections` sends instead of its handshake (`ERROR 1040: Too many
/// connections`), and counts the connections. It serves from a thread of its own for
/// the rest of the process.
#[derive(Debug, Clone)]
pub struct TooManyConnections {
    port: u16,
    accepted: Arc<AtomicU32>,
}

impl TooManyConnections {
    /// Binds a local port and starts answering.
    ///
    /// # Errors
    ///
    /// If no local port can be bound.
    pub fn start() -> io::Result<TooManyConnections> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicU32::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream): Result<TcpStream, _> = stream else {
                    return;
                };
                count.fetch_add(1, Relaxed);
                let _ = stream.write_all(&too_many_connections_packet());
            }
        });
        Ok(TooManyConnections { port, accepted })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it has answered so far.
    pub fn accepted(&self) -> u32 {
        self.accepted.load(Relaxed)
    }
}

/// The error packet: 3-byte length, sequence id 0, `0xff`, the code 1040 little-endian,
/// the message.
fn too_many_connections_packet() -> Vec<u8> {
    let mut payload = vec![0xff, 0x10, 0x04];
    payload.extend_from_slice(b"Too many connections");
    let len = u32::try_from(payload.len()).expect("a short payload");
    let mut packet = len.to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&payload);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_connect_is_answered_with_error_1040_and_counted() {
        let full = TooManyConnections::start().unwrap();
        for n in 1..=2 {
            let mut stream = TcpStream::connect(("127.0.0.1", full.port())).unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).unwrap();
            assert_eq!(&got[4..7], &[0xff, 0x10, 0x04], "{got:?}");
            assert_eq!(&got[7..], b"Too many connections");
            assert_eq!(usize::from(got[0]), got.len() - 4);
            assert_eq!(full.accepted(), n);
        }
    }

    #[test]
    fn a_closed_port_refuses_connects() {
        let err = TcpStream::connect(("127.0.0.1", closed_port())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
