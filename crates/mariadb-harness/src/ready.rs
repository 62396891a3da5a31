//! Checking that a server accepts TCP clients.
//!
//! A bare TCP connect succeeds as soon as the port is bound; the server is
//! only usable once it sends its greeting. The probe then logs in as root
//! (empty password) and sends `COM_QUIT`, so that a readiness probe does not
//! show up in `Aborted_connects`, which tests compare.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `127.0.0.1:port` answers with a MariaDB greeting (protocol 10).
///
/// The login that follows is best effort: a failed login still means the
/// server is up.
pub(crate) fn tcp_greets(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    match read_packet(&mut stream) {
        Ok(greeting) if greeting.first() == Some(&10) => {
            let _ = login_and_quit(&mut stream);
            true
        }
        _ => false,
    }
}

/// Sends a `HandshakeResponse41` for root with an empty password, then `COM_QUIT`.
fn login_and_quit(stream: &mut TcpStream) -> io::Result<()> {
    const CLIENT_LONG_PASSWORD: u32 = 0x1;
    const CLIENT_PROTOCOL_41: u32 = 0x200;
    const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
    let caps = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
    let mut payload = Vec::with_capacity(64);
    payload.extend_from_slice(&caps.to_le_bytes());
    payload.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet size
    payload.push(45); // utf8mb4_general_ci
    payload.extend_from_slice(&[0; 23]); // filler + MariaDB extended capabilities
    payload.extend_from_slice(b"root\0");
    payload.push(0); // empty auth response
    write_packet(stream, 1, &payload)?;
    let reply = read_packet(stream)?;
    if reply.first() == Some(&0) {
        write_packet(stream, 0, &[0x01])?; // COM_QUIT
        let mut rest = [0u8; 64];
        let _ = stream.read(&mut rest); // wait for the server to close
    }
    Ok(())
}

fn read_packet(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

fn write_packet(stream: &mut TcpStream, seq: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut packet = Vec::with_capacity(payload.len() + 4);
    packet.extend_from_slice(&len.to_le_bytes()[..3]);
    packet.push(seq);
    packet.extend_from_slice(payload);
    stream.write_all(&packet)
}
