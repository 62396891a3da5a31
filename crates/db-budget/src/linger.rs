//! Sessions the client gave up on while the server may still run them: their units stay
//! in use until the server has ended them.
//!
//! # Why
//!
//! A statement that a caller cancels (its future dropped mid-statement) or that the
//! client's backstop cuts off leaves its connection out of step, so the pool shuts the
//! socket without a word. The server does not notice at once: it runs the statement on
//! until it ends (or until its `max_statement_time` stops it), and only then finds the
//! socket closed and ends the session. Until then it counts the session in
//! `Threads_connected`, against `max_connections`. Giving the unit back when the socket
//! closes would let a waiter open a new connection on it, and the server would count
//! one more than the budget (seen: 3 for a budget of 2, for the statement's whole
//! limit).
//!
//! So the unit of a connection shut mid-statement **lingers** ([`Budget::linger`]): it
//! stays in use, counted in `in_use` and by its side, until one of
//!
//! - a connection inside the budget has killed the session and seen it leave the
//!   server's process list ([`kill_statement`], [`still_running_query`],
//!   [`Budget::sessions_ended`]): the pools do this with the next connection they have
//!   to spare (the session ids come from `CONNECTION_ID()` at connect);
//! - its deadline passes, [`TEARDOWN`] after the close, which a separate thread
//!   watches ([`Budget::linger`]). The session stays on the list to kill (for
//!   [`ORPHANED`] at most), so the next connection returned still ends it.
//!
//! Session ids start again from 1 when the server restarts, so every session is known
//! by its id **and its server's start** ([`Session`], read at connect with
//! [`session_query`]): a reap only kills sessions of the server its own connection is
//! on, and a connect that finds the server restarted (started at another time, or
//! giving out an id again) forgets the sessions of the one before (they ended with it)
//! and gives their units back ([`Budget::saw_server`]).
//!
//! A connection cut off inside a module's bulkhead keeps its place there while its unit
//! lingers (the admission lingers with it): otherwise the module could take another
//! unit for the same place, and with it a unit of another module's floor.
//!
//! Why a deadline at all, and such a short one: without it, a budget with no other
//! connection (a budget of 1, or every unit cut off) could never reap, and its callers
//! would wait for a session the server may run for the statement's whole limit (or for
//! ever, without one). With it, the guarantee has one gap, stated here: a session the
//! pools cannot reap within [`TEARDOWN`] (no connection came back meanwhile) and that
//! the server still runs is counted by the server beside the connection opened on its
//! unit, until the next return kills it. Under load a connection comes back within
//! milliseconds and the gap does not open. A frozen server (SIGSTOP, a hung host) can
//! neither be reached nor stop anything: it counts the sessions until it runs again.
//! `DB_RESERVED_CONNECTIONS` leaves room for both.
//!
//! # Connections that quit
//!
//! The same lag follows every graceful close: the server lowers its count of
//! connections only after the session's thread has torn down, a moment after the client
//! saw the socket close (MariaDB's `unlink_thd` frees the session, takes it off the
//! process list, and only then lowers the count). A unit given back at the close goes
//! to a connect at once if a caller waits (a hand-over: a side yields a connection to
//! the other's waiter), or the caller whose return closed it asks again: the connect
//! lands in that moment, the server counts one more than the budget, and with every
//! slot of `max_connections` in use it refuses the login with ERROR 1040. So a unit
//! whose connection the pools close themselves ([`Unit::quits`],
//! `CloseReason::awaits_server_count`) lingers like a cut-off one, with a deadline of
//! [`QUIT_TEARDOWN`], and counts no longer in its side's `held` (the side gave it up;
//! counting it would make the side look above its share and give up another). The reap
//! that ends it is a round trip or two on a connection the pools were returning anyway.
//!
//! What is left: leaving the process list comes a few instructions before the count
//! falls, so a server thread preempted between them (a loaded machine) can still be
//! counted after a reap saw it gone; and with no other connection to look (a budget of
//! one) the deadline decides, not the server.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use crate::budget::Budget;
use crate::bulkhead::Admission;
use crate::shared::Shared;
use crate::statement_timeout::ServerFlavor;
use crate::unit::Unit;

/// One server session: its id (`CONNECTION_ID()`) and when its server started (Unix
/// seconds, from the server's `Uptime`, so within a second or two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The server's id of the session.
    pub id: u64,
    /// When the server started, in Unix seconds.
    pub boot: u64,
}

impl Session {
    /// The session of id `id` on a server up for `uptime` seconds now.
    pub fn new(id: u64, uptime: u64) -> Session {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Session {
            id,
            boot: now.saturating_sub(uptime),
        }
    }

    /// Whether a server that started at `boot` is this session's (two readings of
    /// `Uptime` a moment apart may differ by a second either way).
    pub fn on(&self, boot: u64) -> bool {
        self.boot.abs_diff(boot) <= 2
    }
}

/// The query a pool runs on every new connection: the session's id and the server's
/// `Uptime` in seconds, two columns (`BIGINT UNSIGNED`, text) for [`Session::new`].
pub fn session_query(flavor: ServerFlavor) -> &'static str {
    match flavor {
        ServerFlavor::MariaDb => {
            "SELECT CONNECTION_ID(), (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'UPTIME')"
        }
        ServerFlavor::MySql => {
            "SELECT CONNECTION_ID(), (SELECT VARIABLE_VALUE FROM performance_schema.global_status \
             WHERE VARIABLE_NAME = 'Uptime')"
        }
    }
}

/// How long a cut-off connection's unit lingers at most: time for a returning
/// connection to kill the session, and for a session whose statement had ended (or that
/// the server's limit stopped) to find its socket closed and tear down (milliseconds on
/// a running server).
pub const TEARDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the unit of a connection that quit ([`Unit::quits`]) lingers at most. A
/// session that got `COM_QUIT` is torn down within a millisecond on a running server, so
/// a reap (any connection of the budget that comes back or idles) sees it gone well
/// before; the deadline decides only when no connection of the budget can look (a
/// budget of one), and keeps a hand-over there within the 50 ms a waiting side is
/// promised (the connect comes after it).
pub const QUIT_TEARDOWN: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a session whose unit came back at its deadline stays on the list to kill.
pub const ORPHANED: std::time::Duration = std::time::Duration::from_secs(600);

/// The units of sessions the client gave up on.
#[derive(Debug, Default)]
pub(crate) struct Lingering {
    state: Mutex<State>,
    /// Wakes the deadline thread: a new, earlier deadline, or nothing left.
    changed: Condvar,
    /// Entries still holding their unit, readable without the lock.
    count: AtomicU32,
    /// All entries (sessions to kill), readable without the lock: the pools ask on
    /// every return.
    sessions: AtomicU32,
    /// Entries still holding the unit of a connection that quit ([`Unit::quits`]):
    /// units on their way to a waiter, which a waiter asking again must not count as
    /// missing (`fairness.rs`).
    quitting: AtomicU32,
    /// Units whose connection is closing to quit ([`Unit::quits`] was called, the unit
    /// has not dropped yet): on their way too.
    closing: AtomicU32,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    /// The deadline thread runs (it exits once nothing lingers).
    watching: bool,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    /// When the unit comes back (then: when the entry is forgotten).
    until: Instant,
    /// Held, and given back by being dropped (at `until`, or when the session ended).
    unit: Option<Unit>,
    /// The module's bulkhead place the connection was checked out in, held as long as
    /// the unit.
    admission: Option<Admission>,
    /// Its connection quit ([`Unit::quits`]); otherwise it was cut off.
    quit: bool,
}

impl Lingering {
    pub(crate) fn count(&self) -> u32 {
        self.count.load(SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections only move entries; a panic cannot leave them half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the entries that `pick` selects out of the list, and the units of those
    /// past their deadline (their sessions stay listed, orphaned, until [`ORPHANED`]
    /// later); the caller drops what it gets after the lock.
    fn take(
        &self,
        now: Instant,
        mut pick: impl FnMut(&Entry) -> bool,
    ) -> Vec<(Unit, Option<Admission>)> {
        let mut state = self.lock();
        let mut units = Vec::new();
        state.entries.retain_mut(|e| {
            let expired = e.until <= now;
            if pick(e) || (expired && e.unit.is_none()) {
                units.extend(e.unit.take().map(|u| (u, e.admission.take())));
                return false;
            }
            if expired && let Some(unit) = e.unit.take() {
                units.push((unit, e.admission.take()));
                e.until = now + ORPHANED;
            }
            true
        });
        self.recount(&state);
        if !units.is_empty() {
            self.changed.notify_all();
        }
        units
    }

    /// Units of connections that quit: lingering now, or still closing. A unit counts
    /// as closing until it lingers (then it counts there), so it is never missed between
    /// the two; for that moment it may count twice.
    pub(crate) fn quitting(&self) -> u32 {
        self.quitting.load(SeqCst) + self.closing.load(SeqCst)
    }

    pub(crate) fn closing_started(&self) {
        self.closing.fetch_add(1, SeqCst);
    }

    pub(crate) fn closing_ended(&self) {
        self.closing.fetch_sub(1, SeqCst);
    }

    fn recount(&self, state: &State) {
        let held = state.entries.iter().filter(|e| e.unit.is_some()).count();
        let quitting = state
            .entries
            .iter()
            .filter(|e| e.quit && e.unit.is_some())
            .count();
        self.quitting.store(quitting as u32, SeqCst);
        self.count.store(held as u32, SeqCst);
        self.sessions.store(state.entries.len() as u32, SeqCst);
    }
}

impl Budget {
    /// Keeps `unit` (and the connection's bulkhead `admission`, if any) in use for the
    /// server session `session`, whose connection was shut while the server may still
    /// run a statement on it, until a pool has seen the session end
    /// ([`Budget::sessions_ended`]) or `until` passes (see the module docs).
    ///
    /// Returns at once; a thread of the budget's gives the unit back at `until`.
    pub fn linger(
        &self,
        unit: Unit,
        admission: Option<Admission>,
        session: Session,
        until: Instant,
    ) {
        linger(&self.shared, unit, admission, session, until, true);
    }

    /// Units held for sessions the client gave up on (see the module docs).
    pub fn lingering(&self) -> u32 {
        self.shared.lingering.count()
    }

    /// Sessions to end: those of the lingering units, and those whose units came back
    /// at their deadline less than [`ORPHANED`] ago.
    pub fn sessions_to_end(&self) -> u32 {
        self.shared.lingering.sessions.load(SeqCst)
    }

    /// The ids of the sessions of [`Budget::sessions_to_end`] on the server that
    /// started at `boot` (a reaping connection's own [`Session::boot`]), to kill and look
    /// for.
    pub fn lingering_sessions(&self, boot: u64) -> Vec<u64> {
        let state = self.shared.lingering.lock();
        state
            .entries
            .iter()
            .filter(|e| e.session.on(boot))
            .map(|e| e.session.id)
            .collect()
    }

    /// The server that started at `boot` has ended `sessions` (killed, and gone from
    /// its process list): they leave the list, and their units, if still lingering,
    /// come back. Returns how many units did; ids not on the list are ignored.
    pub fn sessions_ended(&self, boot: u64, sessions: &[u64]) -> u32 {
        let units = self.shared.lingering.take(Instant::now(), |e| {
            e.session.on(boot) && sessions.contains(&e.session.id)
        });
        let n = units.len() as u32;
        drop(units); // the units return here, after the lock
        n
    }

    /// A new connection got `session`: the sessions of any other server (one that
    /// restarted, or that a failover left behind) are no longer this one's to count or
    /// to kill. They leave the list, and their units come back. Returns how many units
    /// did.
    ///
    /// Another server is one that started at another time, or one that gave this new
    /// session an id no greater than a listed session's: a server numbers its sessions
    /// upwards, so within one run a session opened later has a greater id (this tells a
    /// restart within the second or two that `Uptime` cannot).
    pub fn saw_server(&self, session: Session) -> u32 {
        if self.sessions_to_end() == 0 {
            return 0;
        }
        let units = self.shared.lingering.take(Instant::now(), |e| {
            !e.session.on(session.boot) || session.id <= e.session.id
        });
        let n = units.len() as u32;
        drop(units);
        n
    }
}

/// Holds `unit` for `session` until it is seen ended or `until` passes; `cut_off`: the
/// client gave up on a statement (counted in `lingered_total`), not a connection that
/// the pools closed themselves ([`Unit::quits`]).
pub(crate) fn linger(
    shared: &Arc<Shared>,
    unit: Unit,
    admission: Option<Admission>,
    session: Session,
    until: Instant,
    cut_off: bool,
) {
    let lingering = &shared.lingering;
    let start_watch = {
        let mut state = lingering.lock();
        state.entries.push(Entry {
            session,
            until,
            unit: Some(unit),
            admission,
            quit: !cut_off,
        });
        lingering.recount(&state);
        lingering.changed.notify_all();
        !std::mem::replace(&mut state.watching, true)
    };
    if cut_off {
        shared
            .lingered_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // A pool with an idle connection ends the session now, without waiting for a
    // return.
    shared.shrinkers.reap_lingering();
    if start_watch {
        let weak = Arc::downgrade(shared);
        std::thread::Builder::new()
            .name("db-budget-linger".into())
            .spawn(move || watch(weak))
            .expect("spawning the budget's linger thread");
    }
}

/// The deadline thread: gives back each unit whose deadline passed and forgets orphaned
/// sessions after [`ORPHANED`]; exits when the list is empty or the budget is gone. It
/// holds the budget strongly at most a second at a time (lingering units keep the
/// budget alive until they come back anyway).
fn watch(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let lingering = &shared.lingering;
        let expired = lingering.take(Instant::now(), |_| false);
        drop(expired);
        let state = lingering.lock();
        let Some(next) = state.entries.iter().map(|e| e.until).min() else {
            let mut state = state;
            state.watching = false;
            return;
        };
        // At most a second at a time: the budget may be dropped meanwhile (orphaned
        // sessions hold no unit, so nothing else keeps it), and the thread then ends.
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(std::time::Duration::from_secs(1));
        let (state, _) = lingering
            .changed
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner);
        drop(state);
    }
}

/// The statement that ends server session `session` (run on another connection of the
/// same account: a session may kill its account's others without a privilege).
/// MariaDB answers 1094 (`ER_NO_SUCH_THREAD`) for a session already gone.
pub fn kill_statement(session: u64) -> String {
    format!("KILL CONNECTION {session}")
}

/// The query that lists which of `sessions` the server still has (one column, the id
/// as `BIGINT UNSIGNED`).
/// A session sees its own account's others without the `PROCESS` privilege.
///
/// # Panics
///
/// If `sessions` is empty.
pub fn still_running_query(sessions: &[u64]) -> String {
    assert!(!sessions.is_empty(), "no sessions to look for");
    let ids: Vec<String> = sessions.iter().map(u64::to_string).collect();
    format!(
        "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST WHERE ID IN ({})",
        ids.join(",")
    )
}

/// MariaDB's and MySQL's "Unknown thread id" (`ER_NO_SUCH_THREAD`): the session to
/// kill is gone already.
pub const NO_SUCH_THREAD: u16 = 1094;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Session;
    use crate::{Budget, Side};

    const BOOT: u64 = 1_700_000_000;
    const SEVEN: Session = Session { id: 7, boot: BOOT };

    #[test]
    fn a_lingering_unit_stays_in_use_until_its_session_is_seen_ended() {
        let b = Budget::new(2, Duration::from_secs(30));
        let u = b.try_acquire(Side::Async).unwrap();
        b.linger(u, None, SEVEN, Instant::now() + Duration::from_secs(60));
        assert_eq!((b.in_use(), b.lingering()), (1, 1));
        assert_eq!(b.lingering_sessions(BOOT), vec![7]);
        assert_eq!(
            b.sessions_ended(BOOT, &[8]),
            0,
            "another session's end frees nothing"
        );
        assert_eq!(
            b.sessions_ended(BOOT + 60, &[7]),
            0,
            "another server's neither"
        );
        assert_eq!(b.in_use(), 1);
        assert_eq!(b.sessions_ended(BOOT, &[7, 8]), 1);
        assert_eq!((b.in_use(), b.lingering()), (0, 0));
    }

    #[test]
    fn a_lingering_unit_comes_back_at_its_deadline() {
        let b = Budget::new(1, Duration::from_secs(30));
        let u = b.try_acquire(Side::Sync).unwrap();
        let one = Session { id: 1, boot: BOOT };
        b.linger(u, None, one, Instant::now() + Duration::from_millis(50));
        assert!(b.try_acquire(Side::Async).is_none(), "the unit lingers");
        let deadline = Instant::now() + Duration::from_secs(30);
        let unit = b.acquire_blocking(Side::Async, deadline);
        assert!(unit.is_ok(), "the deadline gave the unit back: {unit:?}");
        assert_eq!(b.lingering(), 0);
        assert_eq!(
            (b.sessions_to_end(), b.lingering_sessions(BOOT)),
            (1, vec![1]),
            "its session is still to be ended"
        );
        assert_eq!(
            b.sessions_ended(BOOT, &[1]),
            0,
            "no unit was left to give back"
        );
        assert_eq!(b.sessions_to_end(), 0);
    }

    #[test]
    fn a_restarted_server_s_sessions_are_forgotten_and_their_units_come_back() {
        let b = Budget::new(2, Duration::from_secs(30));
        let u = b.try_acquire(Side::Async).unwrap();
        b.linger(u, None, SEVEN, Instant::now() + Duration::from_secs(60));
        let later = |id, boot| Session { id, boot };
        assert_eq!(
            b.saw_server(later(9, BOOT + 1)),
            0,
            "the same server, a second later"
        );
        assert_eq!(
            b.saw_server(later(9, BOOT + 300)),
            1,
            "a server started since"
        );
        assert_eq!((b.in_use(), b.sessions_to_end()), (0, 0));
        assert!(b.lingering_sessions(BOOT + 300).is_empty());
    }

    #[test]
    fn a_session_id_given_again_means_the_server_restarted() {
        let b = Budget::new(2, Duration::from_secs(30));
        let u = b.try_acquire(Side::Async).unwrap();
        b.linger(u, None, SEVEN, Instant::now() + Duration::from_secs(60));
        assert_eq!(b.saw_server(Session { id: 7, boot: BOOT }), 1);
        assert_eq!(b.sessions_to_end(), 0);
    }

    #[test]
    fn the_sql_names_the_sessions_and_nothing_else() {
        assert_eq!(super::kill_statement(42), "KILL CONNECTION 42");
        assert_eq!(
            super::still_running_query(&[3, 5]),
            "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST WHERE ID IN (3,5)"
        );
    }
}
