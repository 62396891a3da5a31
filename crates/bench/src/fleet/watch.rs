//! Two things timed at a phase's start, each on its own thread: how long the hot
//! instance waits for its first borrowed unit, and, after a `kill -9`, how long the
//! database server keeps the killed instance's leases.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use loadgen::Http;
use r2d2_mysql::mysql::{self, prelude::Queryable};

use super::clock::Clock;
use super::sampler::pool;

/// How often the watchers look.
const POLL: Duration = Duration::from_millis(10);

/// Watches `admin`'s `/api/pool` until its capacity is above both `floor` (its capacity
/// with no lease) and what it had at the first look (the leases it held when its
/// players arrived): the seconds from `since` (on `clock`) until it received one more
/// borrowed unit, or `None` within `limit`.
pub fn first_lease(
    admin: SocketAddr,
    floor: u64,
    clock: Clock,
    since: f64,
    limit: Duration,
) -> JoinHandle<Option<f64>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let mut http = Http::new(admin);
        let mut base = None;
        while clock.now() - since < limit.as_secs_f64() {
            if let Some(p) = rt.block_on(pool(&mut http, "")) {
                let held = *base.get_or_insert(p.capacity.max(floor));
                if p.capacity > held {
                    return Some(clock.now() - since);
                }
            }
            std::thread::sleep(POLL);
        }
        None
    })
}

/// The lease locks of a fleet, as `db-fleet` names them (`<fleet>.lease.<k>`, the
/// fleet's name being the database's, cut to 40 characters).
pub fn lease_names(database: &str, pool: u32) -> Vec<String> {
    let fleet: String = database.chars().take(40).collect();
    (0..pool).map(|k| format!("{fleet}.lease.{k}")).collect()
}

/// Which session holds each lease now (`IS_USED_LOCK`).
///
/// # Errors
///
/// The statement failed (the error's text).
pub fn holders(conn: &mut mysql::Conn, names: &[String]) -> Result<Vec<Option<u64>>, String> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {}",
        names
            .iter()
            .map(|n| format!("IS_USED_LOCK('{n}')"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row: Option<mysql::Row> = conn.query_first(sql).map_err(|e| e.to_string())?;
    let row = row.ok_or("IS_USED_LOCK returned no row")?;
    Ok((0..names.len())
        .map(|i| row.get::<Option<u64>, _>(i).flatten())
        .collect())
}

fn sessions(conn: &mut mysql::Conn) -> Result<HashSet<u64>, String> {
    conn.query::<u64, _>("SELECT ID FROM information_schema.PROCESSLIST")
        .map(|ids| ids.into_iter().collect())
        .map_err(|e| e.to_string())
}

/// What the server did with a killed instance's leases.
#[derive(Debug, Clone)]
pub struct Freed {
    /// Leases the killed instance held when it was killed.
    pub held: usize,
    /// Seconds from the kill until no lease was held by its session any more.
    pub after: Option<f64>,
}

/// After a kill at `killed_at`: `before` are the lease holders just before it. The
/// killed instance's control session is the holder that leaves the process list;
/// returns when it has and holds no lease, or after `limit`. Gives back the session.
pub fn leases_freed(
    mut conn: mysql::Conn,
    names: Vec<String>,
    before: Vec<Option<u64>>,
    clock: Clock,
    killed_at: f64,
    limit: Duration,
) -> JoinHandle<(mysql::Conn, Result<Freed, String>)> {
    std::thread::spawn(move || {
        let result = (|| {
            let ids: HashSet<u64> = before.iter().flatten().copied().collect();
            let mut released: Vec<(u64, f64)> = Vec::new();
            loop {
                let now = holders(&mut conn, &names)?;
                let t = clock.now() - killed_at;
                for id in &ids {
                    if !released.iter().any(|(r, _)| r == id) && !now.contains(&Some(*id)) {
                        released.push((*id, t));
                    }
                }
                let alive = sessions(&mut conn)?;
                if let Some(dead) = ids.iter().find(|id| !alive.contains(id)) {
                    let after = released.iter().find(|(r, _)| r == dead).map(|(_, t)| *t);
                    if after.is_some() {
                        let held = before.iter().filter(|h| **h == Some(*dead)).count();
                        return Ok(Freed { held, after });
                    }
                }
                if t > limit.as_secs_f64() {
                    // No holder left the process list: the killed instance held no
                    // lease (or its session outlived the limit).
                    let dead = ids.iter().find(|id| !alive.contains(id));
                    let held =
                        dead.map_or(0, |d| before.iter().filter(|h| **h == Some(*d)).count());
                    return Ok(Freed { held, after: None });
                }
                std::thread::sleep(POLL);
            }
        })();
        (conn, result)
    })
}
