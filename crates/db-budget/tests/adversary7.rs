//! Adversary 7: the two changes together. A module's floor is only a guarantee if the
//! units it needs cannot be held by others; a cut-off connection's unit lingers
//! (`Budget::linger`) while the pool gives its bulkhead place back at once (the
//! `Admission` lives in the connection guard, dropped with it). The shared part does
//! not follow the lingering units, so a module whose statements are cut off can hold
//! more units than its shared places, and take the floor's.
//!
//! This drives the budget exactly as the pools do: a checkout is an admission, then a
//! unit; a cut-off hands both to `Budget::linger`.

use std::time::{Duration, Instant};

use db_budget::linger::Session;
use db_budget::{Budget, BulkheadSpec, Side};

fn spec(name: &str, floor: u32, cap: u32) -> BulkheadSpec {
    BulkheadSpec {
        name: name.into(),
        floor,
        cap,
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(30)
}

#[test]
fn a_module_whose_statements_are_cut_off_cannot_take_the_units_of_another_modules_floor() {
    // Arrange: a budget of 6; retention's floor is 2; legacy (no floor) runs away and
    // holds all 4 shared places, each with its unit.
    let b = Budget::new(6, Duration::from_secs(30));
    b.set_bulkheads(&[spec("retention", 2, 6), spec("legacy", 0, 6)]);
    let (retention, legacy) = (
        b.bulkhead("retention").unwrap(),
        b.bulkhead("legacy").unwrap(),
    );
    let mut legacy_held: Vec<_> = (0..4)
        .map(|_| {
            let admission = legacy.admit_blocking(soon()).unwrap();
            let unit = b.try_acquire(Side::Async).unwrap();
            (admission, unit)
        })
        .collect();

    // Act: two of legacy's statements are cut off (their callers time out): as in the
    // pools, the unit lingers for the session, 1 s at most, and the checkout's bulkhead
    // place with it. Legacy's callers retry at once.
    for id in [101, 102] {
        let (admission, unit) = legacy_held.pop().unwrap();
        let session = Session {
            id,
            boot: 1_700_000_000,
        };
        b.linger(
            unit,
            Some(admission),
            session,
            Instant::now() + Duration::from_secs(1),
        );
        if let Ok(again) = legacy.admit_blocking(soon())
            && let Some(unit) = b.try_acquire(Side::Async)
        {
            legacy_held.push((again, unit));
        }
    }

    // Assert: retention's floor is admitted, and its two units are there.
    let floor: Vec<_> = (0..2).map(|_| retention.admit_blocking(soon())).collect();
    assert!(
        floor.iter().all(Result::is_ok),
        "retention's floor admits: {floor:?}"
    );
    let units: Vec<_> = (0..2).map(|_| b.try_acquire(Side::Async)).collect();
    let got = units.iter().filter(|u| u.is_some()).count();
    assert_eq!(
        got,
        2,
        "retention's floor of 2 got {got} units: legacy holds {} with 4 shared places and \
         {} of its cut-off units linger; {}",
        legacy_held.len(),
        b.lingering(),
        b.snapshot()
    );
}
