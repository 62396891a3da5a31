//! The control thread: one connection to the database server that holds this
//! instance's leases as user-level locks, and the tick that reads the fleet's state and
//! acts on it ([`crate::policy`]).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use db_budget::{Budget, DatabaseUrl};
use r2d2_mysql::mysql::prelude::Queryable;
use r2d2_mysql::mysql::{self, Conn, OptsBuilder, Row};

use crate::policy::{Policy, Seen, Step, Wanting};
use crate::{FleetSettings, State};

/// How often the control thread looks at the fleet.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// On leaving the fleet, how long it waits for leased units in use to come back before
/// it frees their leases anyway (the debt stays: they leave use when they come back).
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The lock names of one fleet: `pool` lease slots and `instances` marks for
/// instances waiting for a lease. Server-wide, so prefixed with the fleet's name.
pub(crate) struct Names {
    pub(crate) slots: Vec<String>,
    pub(crate) wants: Vec<String>,
}

impl Names {
    pub(crate) fn new(fleet: &str, pool: u32, instances: u32) -> Names {
        // Lock names are at most 64 characters: `<fleet>.lease.NNNN`.
        let fleet: String = fleet.chars().take(40).collect();
        Names {
            slots: (0..pool).map(|k| format!("{fleet}.lease.{k}")).collect(),
            wants: (0..instances)
                .map(|k| format!("{fleet}.want.{k}"))
                .collect(),
        }
    }
}

/// Quotes a lock name as an SQL string (names are made here, but quote anyway).
fn quoted(name: &str) -> String {
    format!("'{}'", name.replace('\\', "\\\\").replace('\'', "''"))
}

/// Why the control connection is given up.
#[derive(Debug)]
enum Lost {
    /// A statement failed: the connection (and with it, maybe, its locks) is gone.
    Sql(mysql::Error),
    /// The server says a lease this connection took is not its own any more.
    Desynced,
}

impl From<mysql::Error> for Lost {
    fn from(e: mysql::Error) -> Lost {
        Lost::Sql(e)
    }
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Sql(e) => write!(f, "{e}"),
            Lost::Desynced => f.write_str("a lease held by this connection is not its own"),
        }
    }
}

/// The control connection and what it holds.
struct Control {
    conn: Conn,
    id: u64,
    /// Slot indexes this connection holds, their units in use here.
    held: Vec<usize>,
    /// Slots being given back: their units are owed ([`Budget::owe`]) until taken
    /// out of use.
    giving: Vec<usize>,
    /// The want mark this connection holds, if any.
    want: Option<usize>,
    /// Slots whose unit was taken out of use at the last tick, released at this one:
    /// the server counts a closed connection for a few milliseconds after it is gone,
    /// so the slot stays taken until it surely has stopped counting it.
    releasing: Vec<usize>,
}

/// Runs until `state.stop` is set: connects, ticks, and after losing the connection
/// drops to the floor before it leases again.
pub(crate) fn run(budget: Budget, url: DatabaseUrl, settings: FleetSettings, state: Arc<State>) {
    let names = Names::new(&settings.name, settings.pool(), settings.instances);
    let mut policy = Policy::default();
    let mut wanting = Wanting::default();
    let mut control: Option<Control> = None;
    while !state.stop.load(Relaxed) {
        let started = Instant::now();
        // Units owed back (a lease being given up, or every lease of a lost control
        // connection): taken out of use as they come free, returns closing meanwhile.
        let owed = if budget.owed() > 0 {
            budget.reclaim(started + TICK / 2)
        } else {
            0
        };
        match control.as_mut() {
            Some(c) => {
                // Paid back (here or as units came back): those slots can go, at the
                // next tick.
                while c.giving.len() as u32 > owed {
                    c.releasing.push(c.giving.remove(0));
                }
            }
            None => state.owed.store(owed, Relaxed),
        }
        match control.as_mut() {
            // Back at the floor: connect (again) and lease from scratch.
            None if budget.owed() == 0 => {
                control = connect(&url, &settings);
                // A new session, maybe on a new server whose session ids start again:
                // nothing seen on the last one counts (want marks by session id, the
                // window, the give-backs).
                policy = Policy::default();
                wanting = Wanting::default();
                state.owed.store(0, Relaxed);
                state.leased.store(0, Relaxed);
                state.connected.store(control.is_some(), Relaxed);
            }
            None => {}
            Some(c) => {
                if let Err(e) = tick(c, &names, &budget, (&mut policy, &mut wanting), &state) {
                    tracing::warn!(error = %e, "db-fleet: the control connection failed; dropping to the floor");
                    lost(&budget, &state, control.take());
                }
            }
        }
        std::thread::sleep(TICK.saturating_sub(started.elapsed()));
    }
    // Every leased unit leaves use first (free ones at once, the rest as they come
    // back, for a bounded time); then closing the connection ends its session, and the
    // server frees every lease at once.
    if let Some(c) = &control {
        budget.owe(c.held.len() as u32);
        let owed = budget.reclaim(Instant::now() + STOP_WAIT);
        if owed > 0 {
            tracing::warn!(
                units = owed,
                "db-fleet: leaving the fleet with leased units still in use; they leave use as they come back"
            );
        }
    }
    drop(control);
    state.connected.store(false, Relaxed);
}

/// The control connection is gone, and with it (on the server) every lease it held:
/// every unit it leased is owed back before the instance leases again.
fn lost(budget: &Budget, state: &State, control: Option<Control>) {
    if let Some(c) = control {
        // Those being given up are owed already.
        budget.owe(c.held.len() as u32);
        state.owed.store(budget.owed(), Relaxed);
        state
            .leased
            .store((c.held.len() + c.giving.len()) as u32, Relaxed);
        // Shut the socket: the session may still be alive on the server (a partition),
        // and its locks with it; a closed socket ends it as soon as the server notices.
        drop(c.conn);
    }
    state.lost.fetch_add(1, Relaxed);
    state.connected.store(false, Relaxed);
    state.wanting.store(false, Relaxed);
}

fn connect(url: &DatabaseUrl, settings: &FleetSettings) -> Option<Control> {
    let timeout = settings.connect_timeout;
    let opts = OptsBuilder::new()
        .user(Some(url.user()))
        .pass(url.password())
        .db_name(Some(url.database()))
        // One socket per connection (see db-sync's manager for why this matters).
        .prefer_socket(false)
        .tcp_connect_timeout(Some(timeout))
        .read_timeout(Some(timeout))
        .write_timeout(Some(timeout));
    let opts = match url.socket() {
        Some(path) => opts.socket(Some(path.to_string_lossy())),
        None => opts.ip_or_hostname(Some(url.host())).tcp_port(url.port()),
    };
    match Conn::new(opts) {
        Ok(conn) => {
            let id = conn.connection_id() as u64;
            Some(Control {
                conn,
                id,
                held: Vec::new(),
                giving: Vec::new(),
                want: None,
                releasing: Vec::new(),
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "db-fleet: cannot open the control connection; serving on the floor");
            None
        }
    }
}

/// One tick: read who holds what, decide, act.
fn tick(
    c: &mut Control,
    names: &Names,
    budget: &Budget,
    (policy, wanting): (&mut Policy, &mut Wanting),
    state: &State,
) -> Result<(), Lost> {
    for k in std::mem::take(&mut c.releasing) {
        c.conn
            .query_drop(format!("DO RELEASE_LOCK({})", quoted(&names.slots[k])))?;
    }
    let holders = read_holders(c, names)?;
    let (slots, wants) = holders.split_at(names.slots.len());
    // A lease this connection should hold but does not: the session was replaced
    // (cannot happen on a live connection; treat it as lost).
    if c.held
        .iter()
        .chain(&c.giving)
        .any(|&k| slots[k] != Some(c.id))
    {
        return Err(Lost::Desynced);
    }
    let mut others = std::collections::BTreeSet::new();
    let mut others_wanting = std::collections::BTreeSet::new();
    for h in slots.iter().flatten() {
        if *h != c.id {
            others.insert(*h);
        }
    }
    for h in wants.iter().flatten() {
        if *h != c.id {
            others.insert(*h);
            others_wanting.insert(*h);
        }
    }
    let now = Instant::now();
    let others_wanting_long = wanting.note(now, &others_wanting);
    // The fewest leases held by another instance that has kept its want mark.
    let fewest_wanting_long = others_wanting
        .iter()
        .filter(|&&id| wanting.long(id, now))
        .map(|&id| slots.iter().filter(|&&h| h == Some(id)).count() as u32)
        .min();
    let usable = budget.usable();
    let seen = Seen {
        free: slots.iter().filter(|h| h.is_none()).count() as u32,
        lease_slots: names.slots.len() as u32,
        others_active: others.len() as u32,
        others_wanting: others_wanting.len() as u32,
        others_wanting_long,
        fewest_wanting_long,
        leased: (c.held.len() + c.giving.len()) as u32,
        waiting: budget.waiting(),
        spare: usable.saturating_sub(budget.in_use()) + budget.idle(),
    };
    let decision = policy.decide(now, seen);
    match decision.step {
        Step::Hold => {}
        Step::Borrow(n) => borrow(c, names, slots, n, budget)?,
        Step::GiveBack => give_back(c, budget),
    }
    set_want(c, names, wants, decision.want)?;
    state
        .leased
        .store((c.held.len() + c.giving.len()) as u32, Relaxed);
    state.wanting.store(c.want.is_some(), Relaxed);
    state.others.store(others.len() as u32, Relaxed);
    Ok(())
}

/// `IS_USED_LOCK` of every slot, then every want mark: the holder's connection id.
fn read_holders(c: &mut Control, names: &Names) -> Result<Vec<Option<u64>>, Lost> {
    let columns: Vec<String> = names
        .slots
        .iter()
        .chain(&names.wants)
        .map(|n| format!("IS_USED_LOCK({})", quoted(n)))
        .collect();
    let row: Option<Row> = c
        .conn
        .query_first(format!("SELECT {}", columns.join(", ")))?;
    let row = row.ok_or(Lost::Desynced)?;
    (0..columns.len())
        .map(|i| match row.get_opt::<Option<u64>, _>(i) {
            Some(Ok(holder)) => Ok(holder),
            _ => Err(Lost::Desynced),
        })
        .collect()
}

/// Tries `n` free slots in one statement; each one won is a unit for the pools.
fn borrow(
    c: &mut Control,
    names: &Names,
    slots: &[Option<u64>],
    n: u32,
    budget: &Budget,
) -> Result<(), mysql::Error> {
    let tries: Vec<usize> = slots
        .iter()
        .enumerate()
        .filter(|(_, h)| h.is_none())
        .map(|(k, _)| k)
        .take(n as usize)
        .collect();
    if tries.is_empty() {
        return Ok(());
    }
    let calls: Vec<String> = tries
        .iter()
        .map(|&k| format!("GET_LOCK({}, 0)", quoted(&names.slots[k])))
        .collect();
    let row: Option<Row> = c.conn.query_first(format!("SELECT {}", calls.join(", ")))?;
    let Some(row) = row else {
        return Ok(());
    };
    for (i, &k) in tries.iter().enumerate() {
        // 1: this session holds it now; 0: another took it first.
        if row
            .get_opt::<Option<i64>, _>(i)
            .and_then(Result::ok)
            .flatten()
            == Some(1)
        {
            c.held.push(k);
            budget.grant(1);
        }
    }
    Ok(())
}

/// Starts giving one lease back: its unit is owed until it comes free (the run loop
/// takes it, then releases the slot). One at a time.
fn give_back(c: &mut Control, budget: &Budget) {
    if !c.giving.is_empty() {
        return;
    }
    if let Some(k) = c.held.pop() {
        c.giving.push(k);
        budget.owe(1);
    }
}

/// Holds or releases this instance's "waiting for a lease" mark.
fn set_want(
    c: &mut Control,
    names: &Names,
    wants: &[Option<u64>],
    want: bool,
) -> Result<(), mysql::Error> {
    match (want, c.want) {
        (true, None) => {
            if let Some(k) = wants.iter().position(Option::is_none) {
                let got: Option<i64> = c
                    .conn
                    .query_first(format!("SELECT GET_LOCK({}, 0)", quoted(&names.wants[k])))?;
                if got == Some(1) {
                    c.want = Some(k);
                }
            }
        }
        (false, Some(k)) => {
            c.conn
                .query_drop(format!("DO RELEASE_LOCK({})", quoted(&names.wants[k])))?;
            c.want = None;
        }
        _ => {}
    }
    Ok(())
}
