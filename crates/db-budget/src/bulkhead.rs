//! Bulkheads: sub-budgets per module inside the one budget (`DB_BULKHEADS`).
//!
//! # Why
//!
//! One budget keeps the process under the server's limit, but inside it a runaway module
//! (a legacy report running slow statements in a loop) can hold every connection and
//! starve the others. Separate pools per module would bring back the outage: their sizes
//! add up past the limit. A bulkhead instead bounds one module's **checkouts** (the
//! connections its callers hold at once) inside the one budget:
//!
//! - a **cap**: the module never holds more than this; its next caller waits for one of
//!   its own returns, whatever is free elsewhere;
//! - a **floor**: this many checkouts are the module's alone; nobody else can take them,
//!   so a runaway module never reaches below another module's floor.
//!
//! Checkouts of modules without a bulkhead, and a module's checkouts above its floor, come
//! from the **shared** part: the budget minus every floor. So the checkouts of all modules
//! together never exceed the budget, and the units behind them stay the budget's own
//! (a bulkhead admits a caller; the pool then finds it a connection as before).
//!
//! # Grammar
//!
//! `DB_BULKHEADS="retention=4..12,legacy=2..8"`: comma-separated `name=floor..cap`, a
//! name of lowercase letters, digits, `-` and `_`, `floor ≤ cap ≤ MAX_CONNECTIONS`, and
//! the floors together at most `MAX_CONNECTIONS`. Empty: no bulkheads.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::blocking::park_while;
use crate::stats::GaugeGuard;

/// Why a bulkhead did not admit a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    /// The deadline passed.
    TimedOut,
    /// The budget was closed ([`Budget::close`](crate::Budget::close)), or the caller's
    /// `keep_waiting` condition turned false (its pool closed).
    Closed,
    /// `limit` callers of this module (or of the shared part) already wait:
    /// `DB_MAX_WAITERS` refuses one more at once.
    Shed {
        /// The limit in force.
        limit: u32,
    },
}

/// One module's floor and cap, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkheadSpec {
    /// The module's name, e.g. `retention`.
    pub name: String,
    /// Checkouts reserved for this module alone.
    pub floor: u32,
    /// Checkouts this module may hold at most.
    pub cap: u32,
}

/// One bulkhead's figures, as the snapshot shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkheadSnapshot {
    /// The module's name.
    pub name: String,
    /// Checkouts reserved for it.
    pub floor: u32,
    /// Checkouts it may hold at most.
    pub cap: u32,
    /// Its checkouts now.
    pub in_use: u32,
    /// Its callers waiting to be admitted (at its cap, or with no shared place free).
    pub waiting: u32,
    /// Its callers refused at once because `DB_MAX_WAITERS` of them already waited.
    pub shed_total: u64,
}

/// Parses `DB_BULKHEADS` for a budget of `capacity` (`none` or empty: no bulkheads).
///
/// # Errors
///
/// Why the text is not a valid list, naming the offending entry.
pub fn parse_bulkheads(raw: &str, capacity: u32) -> Result<Vec<BulkheadSpec>, String> {
    let mut specs: Vec<BulkheadSpec> = Vec::new();
    if raw.trim() == "none" {
        return Ok(specs);
    }
    // Errors name an entry by its place, and by its name once that is a valid one: the
    // text itself is not echoed (a misplaced secret must not reach a log).
    for (n, entry) in raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let place = n + 1;
        let Some((name, range)) = entry.split_once('=') else {
            return Err(format!("entry {place} is not name=floor..cap"));
        };
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "entry {place} has no valid name (lowercase letters, digits, - and _)"
            ));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(format!("{name:?} is given twice"));
        }
        let Some((floor, cap)) = range.split_once("..") else {
            return Err(format!("{name:?} is not name=floor..cap"));
        };
        let number = |what: &str, v: &str| {
            crate::parse_whole_number::<u32>(v, 0..=capacity)
                .map_err(|why| format!("the {what} of {name:?}: {why} (MAX_CONNECTIONS)"))
        };
        let (floor, cap) = (number("floor", floor)?, number("cap", cap)?);
        if cap == 0 || floor > cap {
            return Err(format!(
                "{name:?}: the floor ({floor}) must be at most the cap ({cap}), and the cap at least 1"
            ));
        }
        specs.push(BulkheadSpec {
            name: name.to_owned(),
            floor,
            cap,
        });
    }
    let floors: u32 = specs.iter().map(|s| s.floor).sum();
    if floors > capacity {
        return Err(format!(
            "the floors add up to {floors}, more than the budget (MAX_CONNECTIONS={capacity})"
        ));
    }
    Ok(specs)
}

#[derive(Debug)]
struct Head {
    spec: BulkheadSpec,
    cap: Arc<Semaphore>,
    floor: Arc<Semaphore>,
    /// Callers waiting to be admitted.
    waiting: AtomicU32,
    /// Callers refused at once (`DB_MAX_WAITERS`).
    shed: AtomicU64,
}

/// Every bulkhead of one budget, and the shared part.
#[derive(Debug)]
pub struct Bulkheads {
    heads: Vec<Head>,
    shared: Arc<Semaphore>,
    /// The floors added up.
    floors: u32,
    /// The shared part's size last set ([`Bulkheads::follow`]): the units the pools may
    /// use less the floors; negative while fewer are usable than the floors need.
    applied: Mutex<i64>,
    /// Shared places to take out of use as they are given back: the shared part shrank
    /// while they were held.
    shared_debt: AtomicU32,
    /// Callers of no bulkhead waiting for a shared place.
    shared_waiting: AtomicU32,
    /// `DB_MAX_WAITERS`: the most callers that may wait per bulkhead (and for the shared
    /// part); `u32::MAX` is no limit.
    max_waiters: AtomicU32,
}

impl Bulkheads {
    /// The bulkheads of `specs` in a budget of `capacity` (specs as
    /// [`parse_bulkheads`] accepts them).
    ///
    /// # Panics
    ///
    /// If the floors add up to more than `capacity`.
    pub fn new(capacity: u32, specs: &[BulkheadSpec]) -> Arc<Bulkheads> {
        let floors: u32 = specs.iter().map(|s| s.floor).sum();
        assert!(floors <= capacity, "bulkhead floors above the budget");
        Arc::new(Bulkheads {
            heads: specs
                .iter()
                .map(|spec| Head {
                    spec: spec.clone(),
                    cap: Arc::new(Semaphore::new(spec.cap as usize)),
                    floor: Arc::new(Semaphore::new(spec.floor as usize)),
                    waiting: AtomicU32::new(0),
                    shed: AtomicU64::new(0),
                })
                .collect(),
            shared: Arc::new(Semaphore::new((capacity - floors) as usize)),
            floors,
            applied: Mutex::new(i64::from(capacity - floors)),
            shared_debt: AtomicU32::new(0),
            shared_waiting: AtomicU32::new(0),
            // No limit until the budget passes its own on.
            max_waiters: AtomicU32::new(u32::MAX),
        })
    }

    /// Sizes the shared part for `usable` units (the budget's capacity less what is
    /// withheld: the server view's and a fleet's control connection, unleased units),
    /// so that the floors stay whole: a floor is only a guarantee if the shared part
    /// cannot hold the units it needs. Places held above the new size leave use as
    /// they are given back.
    ///
    /// `usable` is read under this call's lock: whichever of two concurrent calls comes
    /// last applies the latest figure.
    pub(crate) fn follow(&self, usable: impl Fn() -> u32) {
        // Only atomics and semaphore counts are touched under the lock.
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let target = i64::from(usable()) - i64::from(self.floors);
        let delta = target - *applied;
        *applied = target;
        if delta < 0 {
            let n = u32::try_from(-delta).unwrap_or(u32::MAX);
            let taken = self.shared.forget_permits(n as usize) as u32;
            self.shared_debt.fetch_add(n - taken, SeqCst);
        } else if delta > 0 {
            let n = u32::try_from(delta).unwrap_or(u32::MAX);
            let paid = self
                .shared_debt
                .fetch_update(SeqCst, SeqCst, |d| Some(d - d.min(n)))
                .map_or(0, |d| d.min(n));
            self.shared.add_permits((n - paid) as usize);
        }
    }

    /// A shared place given back pays the debt first: `true` if it did (the caller then
    /// forgets its permit).
    fn pay_shared_debt(&self) -> bool {
        self.shared_debt
            .fetch_update(SeqCst, SeqCst, |d| d.checked_sub(1))
            .is_ok()
    }

    /// At most `limit` callers wait per bulkhead, and for the shared part; one more is
    /// refused at once with [`AdmitError::Shed`]. `u32::MAX` is no limit.
    pub(crate) fn set_max_waiters(&self, limit: u32) {
        self.max_waiters.store(limit, Relaxed);
    }

    /// Counts one more caller waiting on `gauge`, or refuses it when the limit's worth
    /// already wait (counted in `shed`, if given).
    fn start_waiting<'a>(
        &self,
        gauge: &'a AtomicU32,
        shed: Option<&AtomicU64>,
    ) -> Result<GaugeGuard<'a>, AdmitError> {
        let limit = self.max_waiters.load(Relaxed);
        if limit == u32::MAX {
            return Ok(GaugeGuard::new(gauge));
        }
        match gauge.fetch_update(SeqCst, Relaxed, |n| (n < limit).then_some(n + 1)) {
            Ok(_) => Ok(GaugeGuard::counted(gauge)),
            Err(_) => {
                if let Some(shed) = shed {
                    shed.fetch_add(1, Relaxed);
                }
                Err(AdmitError::Shed { limit })
            }
        }
    }

    /// Each bulkhead's figures now, in configuration order.
    pub fn snapshot(&self) -> Vec<BulkheadSnapshot> {
        self.heads
            .iter()
            .map(|h| BulkheadSnapshot {
                name: h.spec.name.clone(),
                floor: h.spec.floor,
                cap: h.spec.cap,
                in_use: h.spec.cap.saturating_sub(h.cap.available_permits() as u32),
                waiting: h.waiting.load(Relaxed),
                shed_total: h.shed.load(Relaxed),
            })
            .collect()
    }

    /// Ends every wait for admission with [`AdmitError::Closed`] (the budget closes).
    pub(crate) fn close(&self) {
        self.shared.close();
        for h in &self.heads {
            h.cap.close();
            h.floor.close();
        }
    }

    /// The admission handle of module `name`; a name without a bulkhead draws from the
    /// shared part only.
    pub fn of(self: &Arc<Self>, name: &str) -> Bulkhead {
        Bulkhead {
            all: self.clone(),
            index: self.heads.iter().position(|h| h.spec.name == name),
        }
    }
}

/// One module's way into the budget: admits a caller before its pool looks for a
/// connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bulkhead {
    all: Arc<Bulkheads>,
    index: Option<usize>,
}

/// A caller's admission: holds its place in the bulkhead until dropped (with the
/// checkout it admitted).
#[must_use = "the admission ends when this is dropped"]
#[derive(Debug)]
pub struct Admission {
    /// Below the module's cap (none for a module without a bulkhead).
    _cap: Option<OwnedSemaphorePermit>,
    /// A floor place, or a shared one (with the bulkheads, to pay their debt).
    place: Option<Place>,
}

#[derive(Debug)]
enum Place {
    Floor { _permit: OwnedSemaphorePermit },
    Shared(OwnedSemaphorePermit, Arc<Bulkheads>),
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(Place::Shared(permit, all)) = self.place.take()
            && all.pay_shared_debt()
        {
            permit.forget();
        }
    }
}

impl Bulkhead {
    /// Waits until `deadline` for a place: below the cap, then one of the module's
    /// floor or, failing that, a shared one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future takes nothing.
    ///
    /// # Errors
    ///
    /// [`AdmitError::TimedOut`] at the deadline, [`AdmitError::Closed`] once the budget
    /// is closed, [`AdmitError::Shed`] at once when `DB_MAX_WAITERS` callers of this
    /// module already wait.
    pub async fn admit(&self, deadline: Instant) -> Result<Admission, AdmitError> {
        tokio::time::timeout_at(deadline.into(), self.places())
            .await
            .map_err(|_| AdmitError::TimedOut)?
    }

    /// [`Bulkhead::admit`] for a thread without a runtime.
    ///
    /// # Errors
    ///
    /// As [`Bulkhead::admit`].
    pub fn admit_blocking(&self, deadline: Instant) -> Result<Admission, AdmitError> {
        self.admit_blocking_while(deadline, || true)
    }

    /// [`Bulkhead::admit_blocking`] that also gives up, with [`AdmitError::Closed`], once
    /// `keep_waiting` (checked at least every 5 ms) returns false: a pool passes "not
    /// closed", so that closing it ends its callers' admission waits.
    ///
    /// # Errors
    ///
    /// As [`Bulkhead::admit`].
    pub fn admit_blocking_while(
        &self,
        deadline: Instant,
        keep_waiting: impl Fn() -> bool,
    ) -> Result<Admission, AdmitError> {
        match park_while(self.places(), deadline, &keep_waiting) {
            Some(admitted) => admitted,
            None if !keep_waiting() => Err(AdmitError::Closed),
            None => Err(AdmitError::TimedOut),
        }
    }

    async fn places(&self) -> Result<Admission, AdmitError> {
        let all = &self.all;
        let shared = all.shared.clone();
        let Some(head) = self.index.map(|i| &all.heads[i]) else {
            let permit = match shared.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    let _waiting = all.start_waiting(&all.shared_waiting, None)?;
                    acquired(shared.acquire_owned().await)?
                }
            };
            return Ok(Admission {
                _cap: None,
                place: Some(Place::Shared(permit, all.clone())),
            });
        };
        let cap = match head.cap.clone().try_acquire_owned() {
            Ok(cap) => cap,
            Err(_) => {
                let _waiting = all.start_waiting(&head.waiting, Some(&head.shed))?;
                acquired(head.cap.clone().acquire_owned().await)?
            }
        };
        let place = match head.floor.clone().try_acquire_owned() {
            Ok(floor) => Place::Floor { _permit: floor },
            Err(_) => match shared.clone().try_acquire_owned() {
                Ok(shared) => Place::Shared(shared, all.clone()),
                Err(_) => {
                    let _waiting = all.start_waiting(&head.waiting, Some(&head.shed))?;
                    tokio::select! {
                        floor = head.floor.clone().acquire_owned() => Place::Floor { _permit: acquired(floor)? },
                        shared = shared.acquire_owned() => Place::Shared(acquired(shared)?, all.clone()),
                    }
                }
            },
        };
        Ok(Admission {
            _cap: Some(cap),
            place: Some(place),
        })
    }
}

/// A permit, or [`AdmitError::Closed`]: the bulkheads' semaphores close with the budget.
fn acquired(
    permit: Result<OwnedSemaphorePermit, tokio::sync::AcquireError>,
) -> Result<OwnedSemaphorePermit, AdmitError> {
    permit.map_err(|_| AdmitError::Closed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(30)
    }

    #[test]
    fn the_grammar_reads_names_floors_and_caps() {
        let specs = parse_bulkheads(" retention=4..12, legacy-games=2..8 ,", 20).unwrap();
        assert_eq!(
            specs,
            vec![
                BulkheadSpec {
                    name: "retention".into(),
                    floor: 4,
                    cap: 12
                },
                BulkheadSpec {
                    name: "legacy-games".into(),
                    floor: 2,
                    cap: 8
                },
            ]
        );
        assert_eq!(parse_bulkheads("", 20).unwrap(), vec![]);
        assert_eq!(parse_bulkheads("none", 20).unwrap(), vec![]);
    }

    #[test]
    fn bad_lists_are_refused_naming_the_entry() {
        for (raw, says) in [
            ("retention", "entry 1 is not name=floor..cap"),
            ("a=1..2,retention=4", "\"retention\" is not name=floor..cap"),
            ("Retention=1..2", "entry 1 has no valid name"),
            ("=1..2", "entry 1 has no valid name"),
            ("a=1..2,a=1..2", "given twice"),
            ("a=3..2", "at most the cap"),
            ("a=0..0", "the cap at least 1"),
            ("a=1..21", "it must be at most 20"),
            ("a=x..2", "it is not a whole number"),
            ("a=11..12,b=10..10", "floors add up to 21"),
        ] {
            let err = parse_bulkheads(raw, 20).unwrap_err();
            assert!(err.contains(says), "{raw:?}: {err}");
        }
    }

    #[test]
    fn a_module_at_its_cap_waits_even_with_shared_places_free() {
        let all = Bulkheads::new(10, &parse_bulkheads("legacy=0..2", 10).unwrap());
        let legacy = all.of("legacy");
        let held = [legacy.admit_blocking(soon()), legacy.admit_blocking(soon())];
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(
            legacy.admit_blocking(soon()).unwrap_err(),
            AdmitError::TimedOut
        );
        let snap = &all.snapshot()[0];
        assert_eq!((snap.in_use, snap.waiting, snap.cap), (2, 0, 2), "{snap:?}");
        drop(held);
        assert!(legacy.admit_blocking(soon()).is_ok());
    }

    #[test]
    fn a_runaway_module_never_reaches_another_module_s_floor() {
        // Budget 6: retention's floor is 2, legacy may take up to 6.
        let all = Bulkheads::new(
            6,
            &parse_bulkheads("retention=2..6,legacy=0..6", 6).unwrap(),
        );
        let (legacy, retention, other) = (all.of("legacy"), all.of("retention"), all.of("images"));
        let runaway: Vec<_> = std::iter::from_fn(|| legacy.admit_blocking(soon()).ok()).collect();
        assert_eq!(
            runaway.len(),
            4,
            "the shared part: 6 minus retention's floor"
        );
        assert!(
            other.admit_blocking(soon()).is_err(),
            "no shared place left"
        );
        let floor: Vec<_> = (0..2).map(|_| retention.admit_blocking(soon())).collect();
        assert!(
            floor.iter().all(Result::is_ok),
            "retention's floor is still there"
        );
        assert!(
            retention.admit_blocking(soon()).is_err(),
            "above its floor it shares"
        );
        drop(runaway);
        assert!(retention.admit_blocking(soon()).is_ok());
    }

    #[tokio::test]
    async fn a_waiter_takes_its_own_floor_or_a_shared_place_whichever_frees_first() {
        let all = Bulkheads::new(2, &parse_bulkheads("a=1..2", 2).unwrap());
        let (a, b) = (all.of("a"), all.of("b"));
        let a_floor = a.admit(soon()).await.unwrap();
        let b_shared = b.admit(soon()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.admit(deadline).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a_floor);
        assert!(waiter.await.unwrap().is_ok(), "its floor came back");
        drop(b_shared);
    }
}
