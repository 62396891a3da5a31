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
//! exact. Each instance connects through a listener of its own ([`Proxy::listen`]), and
//! the relay logs every connection's life ([`Link`]): whose each session at the server
//! is, and when its client and the server closed it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::clock::monotonic_ns;

/// A running relay: listens on `addr` until the runtime it was started on stops.
#[derive(Debug)]
pub struct Proxy {
    /// Where the instances connect.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    delay: Duration,
    /// Every relayed connection that has ended, oldest first (taken by [`Proxy::take_links`]).
    links: Arc<Mutex<Vec<Link>>>,
}

/// One relayed connection's life, on `CLOCK_MONOTONIC` (ns): what the client did and
/// when the database server saw it, 2 × the delay apart at the least. The server lists
/// the session with `HOST` `127.0.0.1:<upstream_port>`.
#[derive(Debug, Clone)]
pub struct Link {
    /// The listener's tag ([`Proxy::listen`]; empty for [`Proxy::addr`]).
    pub tag: Arc<str>,
    /// The client's connect was accepted.
    pub accepted_ns: i64,
    /// The relay's own connect to the server returned (the server counts the session
    /// from about then).
    pub upstream_ns: i64,
    /// The relay's local port towards the server; 0 when that connect failed.
    pub upstream_port: u16,
    /// The client's end of the stream (its close, or its death) reached the relay.
    pub client_closed_ns: i64,
    /// The server's end of the stream (it closed the session) reached the relay.
    pub server_closed_ns: i64,
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
        let links = Arc::new(Mutex::new(Vec::new()));
        let mut proxy = Proxy {
            addr: upstream,
            upstream,
            delay,
            links,
        };
        proxy.addr = proxy.listen(rt, "")?;
        Ok(proxy)
    }

    /// One more listener, relaying like [`Proxy::addr`]'s, its connections' [`Link`]s
    /// tagged `tag` (to tell whose sessions the server counts).
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub fn listen(&self, rt: &tokio::runtime::Runtime, tag: &str) -> std::io::Result<SocketAddr> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let log = self.links.clone();
        let (upstream, delay) = (self.upstream, self.delay);
        let tag: Arc<str> = tag.into();
        rt.spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay(down, upstream, delay, tag.clone(), log.clone()));
            }
        });
        Ok(addr)
    }

    /// The connections that have ended since the last call.
    pub fn take_links(&self) -> Vec<Link> {
        std::mem::take(&mut *self.links.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

async fn relay(
    down: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    tag: Arc<str>,
    log: Arc<Mutex<Vec<Link>>>,
) {
    let accepted_ns = monotonic_ns();
    // The connect travels the same network: it waits too.
    tokio::time::sleep(delay).await;
    let up = TcpStream::connect(upstream).await;
    let upstream_ns = monotonic_ns();
    let Ok(up) = up else {
        let now = monotonic_ns();
        push(
            &log,
            Link {
                tag,
                accepted_ns,
                upstream_ns,
                upstream_port: 0,
                client_closed_ns: now,
                server_closed_ns: now,
            },
        );
        return;
    };
    let upstream_port = up.local_addr().map_or(0, |a| a.port());
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (down_r, down_w) = down.into_split();
    let (up_r, up_w) = up.into_split();
    let (client_closed_ns, server_closed_ns) =
        tokio::join!(pipe(down_r, up_w, delay), pipe(up_r, down_w, delay));
    push(
        &log,
        Link {
            tag,
            accepted_ns,
            upstream_ns,
            upstream_port,
            client_closed_ns,
            server_closed_ns,
        },
    );
}

fn push(log: &Mutex<Vec<Link>>, link: Link) {
    log.lock().unwrap_or_else(|e| e.into_inner()).push(link);
}

/// Copies one direction, each chunk delivered `delay` after it was read, in order;
/// the end of the stream (or a broken one) is passed on as a shutdown, after the delay.
/// Returns when the end was read (`CLOCK_MONOTONIC`, ns).
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) -> i64 {
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
                return monotonic_ns();
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
    tokio::join!(reader, writer).0
}
