//! The database server a few milliseconds away: a TCP relay in front of the private
//! MariaDB that holds every chunk of bytes, each way, for a fixed delay before passing
//! it on, as a network between the instances and their database does.
//!
//! Why: on one two-core machine every request costs CPU and almost no waiting, so
//! connections are never what a server instance runs short of, and lending them
//! changes nothing. Across a network each statement holds its connection for a round
//! trip that costs no CPU; that is what makes a connection budget the limit in
//! production, and what this relay brings back. Each connection through it is one
//! connection to the server (the relay opens one upstream per downstream and closes
//! it when the downstream closes, `kill -9` included), so the server's counts stay
//! exact.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A running relay: listens on `addr` until the runtime it was started on stops.
#[derive(Debug)]
pub struct Proxy {
    /// Where the instances connect.
    pub addr: SocketAddr,
}

impl Proxy {
    /// Starts relaying connections from a free port on 127.0.0.1 to `upstream`, each
    /// chunk held for `delay` each way.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        upstream: SocketAddr,
        delay: Duration,
    ) -> std::io::Result<Proxy> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        rt.spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay(down, upstream, delay));
            }
        });
        Ok(Proxy { addr })
    }
}

async fn relay(down: TcpStream, upstream: SocketAddr, delay: Duration) {
    // The connect travels the same network: it waits too.
    tokio::time::sleep(delay).await;
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (down_r, down_w) = down.into_split();
    let (up_r, up_w) = up.into_split();
    tokio::join!(pipe(down_r, up_w, delay), pipe(up_r, down_w, delay));
}

/// Copies one direction, each chunk delivered `delay` after it was read, in order;
/// the end of the stream (or a broken one) is passed on as a shutdown, after the delay.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            // An empty chunk marks the end.
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
                || n == 0
            {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
