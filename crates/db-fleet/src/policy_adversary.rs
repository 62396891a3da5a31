//! An outside adversary's tests of the lease policy (`policy.rs`): adversarial tick
//! schedules run through [`Policy`] and [`Wanting`] the way the control thread uses them
//! (`control.rs`): a lease given back is counted as held until the giver's next tick,
//! which frees its slot; a want mark is held by the instance's control session id.
//! Tests that fail on purpose say which claim they break.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::policy::{CONTEST, Policy, Seen, Step, Wanting};

const TICK: Duration = Duration::from_millis(100);

/// Instances sharing one lease pool, each ticking every 100 ms in turn, as the control
/// thread does: a lease given back stays taken (and counted in `leased`) until the
/// giver's next tick releases it; a want mark is seen by the others from their next look.
struct Fleet {
    slots: u32,
    /// Units of each instance's own (its floor, less the control connection).
    own: u32,
    members: Vec<Member>,
    t0: Instant,
    tick: u32,
}

struct Member {
    id: u64,
    policy: Policy,
    wanting: Wanting,
    held: u32,
    /// A lease being given back: its slot is freed at this member's next tick.
    giving: u32,
    want: bool,
    /// Whether this member takes part (a member that has not joined yet, or has
    /// left, holds nothing and does not tick).
    present: bool,
}

impl Fleet {
    fn new(instances: usize, slots: u32, own: u32) -> Fleet {
        Fleet {
            slots,
            own,
            members: (0..instances)
                .map(|i| Member {
                    id: 100 + i as u64,
                    policy: Policy::default(),
                    wanting: Wanting::default(),
                    held: 0,
                    giving: 0,
                    want: false,
                    present: true,
                })
                .collect(),
            t0: Instant::now(),
            tick: 0,
        }
    }

    fn free(&self) -> u32 {
        self.slots - self.members.iter().map(|m| m.held + m.giving).sum::<u32>()
    }

    /// Runs `ticks` ticks; `demand(instance, tick)` is the units its callers want.
    /// Returns each instance's leases after each tick, and the give-backs at each tick.
    fn run(&mut self, ticks: u32, demand: impl Fn(usize, u32) -> u32) -> (Vec<Vec<u32>>, u32) {
        let mut held = Vec::new();
        let mut moves = 0;
        for _ in 0..ticks {
            let tick = self.tick;
            self.tick += 1;
            let now = self.t0 + TICK * tick;
            for i in 0..self.members.len() {
                if !self.members[i].present {
                    continue;
                }
                // The giver's next tick releases the slot.
                self.members[i].giving = 0;
                let free = self.free();
                let others = || {
                    self.members
                        .iter()
                        .enumerate()
                        .filter(|(j, m)| *j != i && m.present)
                };
                let wanting: BTreeSet<u64> = others()
                    .filter(|(_, m)| m.want)
                    .map(|(_, m)| m.id)
                    .collect();
                let others_active = others()
                    .filter(|(_, m)| m.want || m.held + m.giving > 0)
                    .count() as u32;
                let own = self.own;
                let slots = self.slots;
                // As `control::tick`: the fewest leases held by a session that has kept
                // its want mark.
                let wanting_held: Vec<(u64, u32)> = others()
                    .filter(|(_, o)| o.want)
                    .map(|(_, o)| (o.id, o.held + o.giving))
                    .collect();
                let w = &mut self.members[i].wanting;
                let others_wanting_long = w.note(now, &wanting);
                let fewest_wanting_long = wanting_held
                    .iter()
                    .filter(|&&(id, _)| w.long(id, now))
                    .map(|&(_, l)| l)
                    .min();
                let m = &mut self.members[i];
                let usable = own + m.held;
                let need = demand(i, tick);
                let seen = Seen {
                    free,
                    lease_slots: slots,
                    others_active,
                    others_wanting: wanting.len() as u32,
                    others_wanting_long,
                    fewest_wanting_long,
                    leased: m.held + m.giving,
                    waiting: need.saturating_sub(usable),
                    spare: usable.saturating_sub(need),
                };
                let d = m.policy.decide(now, seen);
                match d.step {
                    Step::Hold => {}
                    Step::Borrow(n) => m.held += n.min(free),
                    Step::GiveBack => {
                        if m.held > 0 {
                            m.held -= 1;
                            m.giving = 1;
                            moves += 1;
                        }
                    }
                }
                m.want = d.want;
            }
            held.push(
                self.members
                    .iter()
                    .map(|m| if m.present { m.held + m.giving } else { 0 })
                    .collect(),
            );
        }
        (held, moves)
    }
}

// ---------------------------------------------------------------------------------
// Claim 4: no starvation
// ---------------------------------------------------------------------------------

#[test]
fn a_third_hot_instance_gets_a_lease_while_two_others_hold_the_whole_pool_of_four() {
    // Arrange: a pool of 4; a and b are hot and split it 2 / 2 (their part of 4 over 2).
    let mut fleet = Fleet::new(3, 4, 1);
    fleet.members[2].present = false;
    let (settled, _) = fleet.run(50, |i, _| if i < 2 { 40 } else { 0 });
    assert_eq!(settled.last().unwrap()[..2], [2, 2], "{settled:?}");

    // Act: c's callers wait too, as much as the others', for 10 s.
    fleet.members[2].present = true;
    let (held, _) = fleet.run(100, |_, _| 40);

    // Assert: claim 4 — an instance whose callers wait gets its part (⌈4/3⌉ = 2, or at
    // the very least one lease) within a bounded time while the others keep wanting.
    // The part rounded up lets a and b each keep 2 = ⌈4/3⌉ for ever: c, whose callers
    // wait at every tick, never gets a single lease.
    let c: Vec<u32> = held.iter().map(|h| h[2]).collect();
    assert!(
        c[30..].iter().all(|&l| l >= 1),
        "c's leases over 10 s of waiting: {c:?}; last split {:?}",
        held.last().unwrap()
    );
}

#[test]
fn among_many_instances_each_short_of_leases_none_is_left_with_nothing_while_others_hold_two() {
    // Arrange: a pool of 7 over 6 instances, all hot; they join one after another
    // (a deploy rolling out), each once the ones before it have settled.
    let mut fleet = Fleet::new(6, 7, 1);
    for m in &mut fleet.members[1..] {
        m.present = false;
    }
    let mut held = Vec::new();
    for k in 1..=6 {
        for (i, m) in fleet.members.iter_mut().enumerate() {
            m.present = i < k;
        }
        held = fleet.run(40, |_, _| 40).0;
    }

    // Act: 5 s more of the same demand everywhere.
    let (more, _) = fleet.run(50, |_, _| 40);
    held.extend(more);

    // Assert: with an even split of 7 over 6 every instance holds 1 or 2. The part
    // rounded up (⌈7/6⌉ = 2) lets three instances keep 2 each and one keep 1, and the
    // last two, whose callers wait at every tick, get none.
    let last = held.last().unwrap();
    assert!(
        last.iter().all(|&l| l >= 1),
        "the split after 5 s of equal demand: {last:?}"
    );
}

// ---------------------------------------------------------------------------------
// Claim 6: the Wanting tracker and stale marks
// ---------------------------------------------------------------------------------

#[test]
fn a_want_mark_seen_before_seconds_without_a_look_does_not_count_as_held_throughout() {
    // Arrange: session 7 held its want mark for a while; then the control connection is
    // lost (the server restarts) and the control thread keeps its `Wanting` while it
    // drops to the floor and reconnects, noting nothing meanwhile (`control::run` makes
    // it once, outside its loop). After the restart, connection ids start again from
    // the bottom, and the new server hands id 7 to another instance's new session.
    let mut w = Wanting::default();
    let t = Instant::now();
    let seven: BTreeSet<u64> = [7].into();
    w.note(t, &seven);
    assert_eq!(w.note(t + CONTEST, &seven), 1);

    // Act: three seconds later, the first look on the new server: the new session 7 has
    // just taken a want mark.
    let first_look = w.note(t + Duration::from_secs(3), &seven);

    // Assert: claim 6 — a moment's want of a reused session id must not count as half a
    // second's (it makes an instance above its part give back at once, and caps what it
    // borrows, as if the other had waited all along).
    assert_eq!(
        first_look, 0,
        "a session seen wanting for the first time on a new server counts as having wanted for {CONTEST:?}"
    );
}

#[test]
fn after_a_server_restart_an_instance_above_its_part_does_not_give_back_to_a_moments_want() {
    // Arrange: a hot instance and another that has kept wanting (session 7), then the
    // control connection lost for 3 s (a server restart) and leased again from scratch
    // with the same `Policy` and `Wanting`, as `control::run` keeps them.
    let mut policy = Policy::default();
    let mut wanting = Wanting::default();
    let t = Instant::now();
    let seven: BTreeSet<u64> = [7].into();
    let hot = |leased: u32, long: u32| Seen {
        free: 0,
        lease_slots: 8,
        others_active: 1,
        others_wanting: 1,
        others_wanting_long: long,
        // Session 7 holds what this instance does not.
        fewest_wanting_long: (long > 0).then_some(8 - leased),
        leased,
        waiting: 20,
        spare: 0,
    };
    for k in 0..10u32 {
        let now = t + TICK * k;
        let long = wanting.note(now, &seven);
        policy.decide(now, hot(4, long));
    }

    // Act: on the new server the instance has leased 6 of 8 again (the other had none
    // free to take while it reconnected), and the new session that got id 7 takes its
    // want mark just now, at this instance's first look.
    let back = t + Duration::from_secs(4);
    let long = wanting.note(back, &seven);
    let d = policy.decide(back, hot(6, long));

    // Assert: a want of a moment takes nothing from an instance whose callers wait
    // (rule 4 waits for CONTEST); the stale mark makes it give back at once.
    assert_eq!(
        d.step,
        Step::Hold,
        "gave back to a session that has wanted for no time at all (stale tracker: {long} long)"
    );
}

// ---------------------------------------------------------------------------------
// Claim 3: no churn
// ---------------------------------------------------------------------------------

#[test]
fn three_instances_with_steady_equal_demand_settle_and_stop_passing_leases() {
    for (slots, demand) in [(10, 40), (10, 6), (9, 5), (12, 7), (7, 40), (11, 5)] {
        // Arrange: three instances, 1 unit of their own each.
        let mut fleet = Fleet::new(3, slots, 1);

        // Act: 10 s of the same demand on all three.
        let (held, _) = fleet.run(100, |_, _| demand);

        // Assert: settled within 4 s; after that no lease moves.
        let settled = &held[40];
        assert!(
            held[40..].iter().all(|h| h == settled),
            "pool {slots}, demand {demand}: {:?}",
            &held[30..]
        );
    }
}

#[test]
fn an_instance_whose_callers_wait_every_other_tick_does_not_give_back_and_retake_a_lease_every_other_tick()
 {
    for hot in [0, 1] {
        // Arrange: a pool of 10; one instance is hot throughout, the other's callers
        // want 40 units at one tick and 1 at the next (an oscillating demand).
        let mut fleet = Fleet::new(2, 10, 1);
        let demand = move |i: usize, t: u32| {
            if i == hot || t.is_multiple_of(2) {
                40
            } else {
                1
            }
        };
        let (_, _) = fleet.run(50, demand);

        // Act: 30 s more of the same.
        let (held, moves) = fleet.run(300, demand);

        // Assert: claim 3 — no churn. The split never changes, yet the oscillating
        // instance gives a lease back (rule 2: a unit to spare in 6 of the window's 11
        // ticks) and, short again at its next tick, takes the slot it has just released
        // back itself before anyone else can look (`control::tick` releases, then reads
        // and borrows): a connection closed and opened again every 200 ms for nothing.
        let first = &held[0];
        let same_split = held.iter().all(|h| h == first);
        assert!(
            moves <= 5,
            "hot instance {hot}: {moves} leases given back in 30 s, the split always {first:?}: {same_split}"
        );
    }
}

#[test]
fn a_hot_instance_does_not_give_back_a_lease_every_burst_to_an_instance_that_goes_quiet_before_it_is_freed()
 {
    // Arrange: a pool of 4; a is hot and holds it all. b's callers wait for 700 ms of
    // every 2 s: just past the half second after which a gives back (rule 4), and over
    // before the lease it gives back is free (a tick to take the unit out of use, one
    // to release the slot).
    let mut fleet = Fleet::new(2, 4, 1);
    let demand = |i: usize, t: u32| if i == 0 || t % 20 < 7 { 40 } else { 1 };
    let (_, _) = fleet.run(20, demand);

    // Act: 30 s of it.
    let (held, moves) = fleet.run(300, demand);

    // Assert: claims 2 and 3 — every burst costs a lease (a connection closed and
    // opened again), and b, whose callers wait 35 % of the time, never receives one.
    let b_most = held.iter().map(|h| h[1]).max().unwrap_or(0);
    assert!(
        moves <= 5 || b_most > 0,
        "a gave back {moves} leases in 30 s; b, short for 700 ms every 2 s, held at most {b_most}"
    );
}
