//! The share controller: demand samples in, shares out (the rules are in the parent
//! module's docs). Pure, so that its rules are tested without threads or clocks.

use std::time::{Duration, Instant};

use super::{GAP_WEIGHT, HYSTERESIS, NEED_HALF, NEED_MARGIN, QUIET, QUIET_MAX, STEP, TICK, WINDOW};
use crate::side::Side;

/// What the controller reads of one side at a tick.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Demand {
    /// Callers holding a connection.
    pub(crate) running: u32,
    /// Callers waiting for one.
    pub(crate) waiting: u32,
    /// Checkouts so far (a change means the side was busy since the last tick, even if
    /// every checkout began and ended between two ticks).
    pub(crate) checkouts: u64,
}

/// The controller: turns demand samples into shares. Pure, so that its rules are tested
/// without threads or clocks.
#[derive(Debug)]
pub(crate) struct Controller {
    capacity: u32,
    shares: [u32; 2],
    smoothed: [f64; 2],
    last_checkouts: [u64; 2],
    /// When each side last showed demand (`None`: never, i.e. quiet since the start).
    last_busy: [Option<Instant>; 2],
    /// The usual gap between two moments a side shows demand, smoothed (seconds).
    gap: [f64; 2],
    /// The most connections each side used at once in the current and the previous
    /// [`NEED_HALF`] (a checkout between two ticks counts as one).
    peak: [[u32; 2]; 2],
    /// The most callers each side had waiting at once, over the same two periods.
    waited: [[u32; 2]; 2],
    peak_since: Option<Instant>,
    last_step: Option<Instant>,
    last_tick: Option<Instant>,
}

impl Controller {
    pub(crate) fn new(capacity: u32) -> Controller {
        let half = capacity.div_ceil(2);
        Controller {
            capacity,
            shares: [half, capacity - half],
            smoothed: [0.0; 2],
            last_checkouts: [0; 2],
            last_busy: [None; 2],
            gap: [0.0; 2],
            peak: [[0; 2]; 2],
            waited: [[0; 2]; 2],
            peak_since: None,
            last_step: None,
            last_tick: None,
        }
    }

    /// What side `i` used at once lately.
    fn need(&self, i: usize) -> u32 {
        self.peak[i][0].max(self.peak[i][1])
    }

    /// Whether side `i` had nobody waiting lately.
    fn unhurried(&self, i: usize) -> bool {
        self.waited[i][0].max(self.waited[i][1]) == 0
    }

    /// How long side `i` must show no demand to be quiet: [`QUIET`], or four of its usual
    /// gaps if longer (at most [`QUIET_MAX`]), so that a side with a request every 60 ms
    /// is steady, not quiet between its requests.
    fn quiet_after(&self, i: usize) -> Duration {
        Duration::from_secs_f64(self.gap[i] * 4.0).clamp(QUIET, QUIET_MAX)
    }

    /// Whether both sides have shown no demand for [`QUIET_MAX`] (the controller may
    /// tick slower: nothing moves until a side wakes).
    pub(crate) fn resting(&self, now: Instant) -> bool {
        self.last_tick.is_some()
            && self
                .last_busy
                .iter()
                .all(|t| t.is_none_or(|t| now.saturating_duration_since(t) >= QUIET_MAX))
    }

    #[cfg(test)]
    pub(crate) fn shares(&self) -> [u32; 2] {
        self.shares
    }

    /// Takes one sample per side at `now` and returns the shares that follow, of
    /// `capacity` units (what the budget may use now: a fleet member's changes as it
    /// leases units and gives them back).
    pub(crate) fn tick(&mut self, now: Instant, demand: [Demand; 2], capacity: u32) -> [u32; 2] {
        if capacity != self.capacity {
            self.resize(capacity);
        }
        let dt = self
            .last_tick
            .map_or(TICK, |t| now.saturating_duration_since(t));
        self.last_tick = Some(now);
        let alpha = (dt.as_secs_f64() / WINDOW.as_secs_f64()).min(1.0);
        let mut quiet = [false; 2];
        for side in Side::ALL {
            let i = side.index();
            let d = demand[i];
            let now_demand = f64::from(d.running + d.waiting);
            self.smoothed[i] += (now_demand - self.smoothed[i]) * alpha;
            let checked_out = d.checkouts != self.last_checkouts[i];
            if d.running + d.waiting > 0 || checked_out {
                if let Some(last) = self.last_busy[i] {
                    let sample = now.saturating_duration_since(last).as_secs_f64();
                    self.gap[i] += (sample - self.gap[i]) * GAP_WEIGHT;
                }
                self.last_busy[i] = Some(now);
            }
            let used = d.running.max(u32::from(checked_out));
            self.peak[i][0] = self.peak[i][0].max(used);
            self.waited[i][0] = self.waited[i][0].max(d.waiting);
            self.last_checkouts[i] = d.checkouts;
            let quiet_after = self.quiet_after(i);
            quiet[i] =
                self.last_busy[i].is_none_or(|t| now.saturating_duration_since(t) >= quiet_after);
        }
        if self
            .peak_since
            .is_none_or(|t| now.saturating_duration_since(t) >= NEED_HALF)
        {
            self.peak_since = Some(now);
            for p in self.peak.iter_mut().chain(self.waited.iter_mut()) {
                *p = [0, p[0]];
            }
        }
        let (a, s) = (Side::Async.index(), Side::Sync.index());
        match (quiet[a], quiet[s]) {
            // Nobody needs anything: whichever side wakes first may take the other's idle
            // connections at once (I2), before the next tick gives it the whole budget.
            (true, true) => self.shares = [0, 0],
            // One side is quiet: the other may take it all, at once.
            (true, false) => self.shares = self.split(0),
            (false, true) => self.shares = self.split(self.capacity),
            (false, false) => self.follow_demand(now),
        }
        self.shares
    }

    /// The budget may use `capacity` units from now on: the async share keeps its
    /// place, within the new capacity (both quiet stays both quiet).
    fn resize(&mut self, capacity: u32) {
        self.capacity = capacity;
        if self.shares != [0, 0] {
            let async_share = self.shares[Side::Async.index()].min(capacity);
            self.shares = self.split(async_share);
        }
    }

    /// One unit and both sides busy: it changes side at most once per [`STEP`] (each
    /// change is a close and a connect), and at once for a side that has just woken.
    fn take_turns(&mut self, now: Instant) {
        let a = Side::Async.index();
        let woke = self.shares == [0, 0];
        if woke
            || self
                .last_step
                .is_none_or(|t| now.saturating_duration_since(t) >= STEP)
        {
            self.last_step = Some(now);
            let async_share = if woke { 1 } else { 1 - self.shares[a] };
            self.shares = self.split(async_share);
        }
    }

    /// `[async, sync]` with `async_share` units for the async side.
    fn split(&self, async_share: u32) -> [u32; 2] {
        let mut shares = [0; 2];
        shares[Side::Async.index()] = async_share;
        shares[Side::Sync.index()] = self.capacity - async_share;
        shares
    }

    /// Both sides busy: move the async share one unit toward its max-min fair target,
    /// at most once per `STEP` (a side that just woke from 0 gets 1 at once).
    fn follow_demand(&mut self, now: Instant) {
        let (a, s) = (Side::Async.index(), Side::Sync.index());
        if self.capacity < 2 {
            self.take_turns(now);
            return;
        }
        if self.shares == [0, 0] {
            // Both woke from quiet in the same tick: start from the halves.
            self.shares = self.split(self.capacity.div_ceil(2));
        }
        let (lo, hi) = (1, self.capacity - 1);
        let current = self.shares[a];
        if current < lo || current > hi {
            // A side that was quiet has woken: it gets one unit now.
            self.shares = self.split(current.clamp(lo, hi));
            return;
        }
        // A side that had nobody waiting lately and holds a share well above what it used
        // gives the surplus up at once: its idle connections go to the other side now,
        // not one per step.
        // A surplus of one unit waits for the step like any move (it would only flap).
        let stepped_lately = self
            .last_step
            .is_some_and(|t| now.saturating_duration_since(t) < STEP);
        for (i, other) in [(a, s), (s, a)] {
            let keep = (self.need(i) + NEED_MARGIN).max(1);
            if self.unhurried(i) && keep < self.shares[i] {
                if self.shares[i] - keep < 2 && stepped_lately {
                    break;
                }
                self.shares[i] = keep;
                self.shares[other] = self.capacity - keep;
                self.last_step = Some(now);
                return;
            }
        }
        let target = fair_target(f64::from(self.capacity), self.smoothed[a], self.smoothed[s]);
        let target = target.clamp(f64::from(lo), f64::from(hi));
        let gap = target - f64::from(current);
        if gap.abs() <= 0.5 + HYSTERESIS {
            return;
        }
        if self
            .last_step
            .is_some_and(|t| now.saturating_duration_since(t) < STEP)
        {
            return;
        }
        self.last_step = Some(now);
        let next = if gap > 0.0 { current + 1 } else { current - 1 };
        self.shares = self.split(next);
    }
}

/// The async side's max-min fair part of `capacity` for demands `a` (async) and `s`
/// (sync): whoever needs less than half gets what it needs, the other the rest; both
/// needing more than half get half each; both needing less share the slack evenly.
fn fair_target(capacity: f64, a: f64, s: f64) -> f64 {
    let half = capacity / 2.0;
    if a + s <= capacity {
        a + (capacity - a - s) / 2.0
    } else if a < half {
        a
    } else if s < half {
        capacity - s
    } else {
        half
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASYNC: usize = 0;
    const SYNC: usize = 1;

    fn busy(running: u32, waiting: u32, checkouts: u64) -> Demand {
        Demand {
            running,
            waiting,
            checkouts,
        }
    }

    /// Runs `ticks` ticks of `TICK` with the same demand; returns the shares and how many
    /// times the async share changed.
    fn run(c: &mut Controller, t: &mut Instant, ticks: u32, demand: [Demand; 2]) -> u32 {
        let mut changes = 0;
        let mut last = c.shares();
        for _ in 0..ticks {
            *t += TICK;
            let shares = c.tick(*t, demand, c.capacity);
            if shares != last {
                changes += 1;
            }
            last = shares;
        }
        changes
    }

    #[test]
    fn the_controller_rests_only_once_both_sides_have_been_quiet_for_the_longest_quiet_time() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        assert!(
            !c.resting(t),
            "it has not ticked yet (the shares are the halves)"
        );
        run(&mut c, &mut t, 1, [busy(0, 0, 0), busy(0, 0, 0)]);
        assert!(c.resting(t), "nobody has used a new budget");
        run(&mut c, &mut t, 10, [busy(1, 0, 1), busy(0, 0, 0)]);
        assert!(!c.resting(t), "the async side is busy");
        let quiet_ticks = (QUIET_MAX.as_millis() / TICK.as_millis()) as u32;
        run(
            &mut c,
            &mut t,
            quiet_ticks - 1,
            [busy(0, 0, 1), busy(0, 0, 0)],
        );
        assert!(!c.resting(t), "not yet quiet for the longest quiet time");
        run(&mut c, &mut t, 2, [busy(0, 0, 1), busy(0, 0, 0)]);
        assert!(c.resting(t));
        assert_eq!(
            c.shares(),
            [0, 0],
            "resting, either side may take everything"
        );
        run(&mut c, &mut t, 1, [busy(0, 1, 1), busy(0, 0, 0)]);
        assert!(!c.resting(t), "a waiter wakes it");
    }

    #[test]
    fn when_the_budget_may_use_fewer_units_the_shares_shrink_to_add_up_to_them() {
        let mut c = Controller::new(20);
        let mut t = Instant::now();
        run(&mut c, &mut t, 100, [busy(10, 10, 1), busy(10, 10, 1)]);
        assert_eq!(c.shares(), [10, 10]);
        t += TICK;
        let shares = c.tick(t, [busy(3, 10, 2), busy(1, 10, 2)], 4);
        assert_eq!(shares[ASYNC] + shares[SYNC], 4, "{shares:?}");
        assert!(shares[SYNC] >= 1, "each busy side keeps a unit: {shares:?}");
        t += TICK;
        let shares = c.tick(t, [busy(3, 10, 3), busy(1, 10, 3)], 12);
        assert_eq!(shares[ASYNC] + shares[SYNC], 12, "{shares:?}");
    }

    #[test]
    fn the_shares_always_add_up_to_the_capacity() {
        let mut c = Controller::new(7);
        let mut t = Instant::now();
        let mut n = 0;
        for round in 0..200u64 {
            let demand = [
                busy((round % 5) as u32, (round % 3) as u32 * 10, round),
                busy(2, 1, n),
            ];
            n += round % 2;
            t += TICK;
            let shares = c.tick(t, demand, c.capacity);
            assert_eq!(shares[ASYNC] + shares[SYNC], 7, "round {round}: {shares:?}");
        }
    }

    #[test]
    fn a_quiet_side_gives_its_whole_share_within_the_quiet_time() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        // Both busy, then the sync side stops.
        run(&mut c, &mut t, 100, [busy(4, 10, 1), busy(4, 10, 1)]);
        // Busy at every tick: its usual gap is one tick, so quiet after four of them.
        let ticks_to_quiet = 5;
        run(
            &mut c,
            &mut t,
            ticks_to_quiet as u32,
            [busy(4, 10, 2), busy(0, 0, 1)],
        );
        assert_eq!(c.shares(), [8, 0]);
    }

    #[test]
    fn when_both_sides_are_quiet_either_may_take_everything_and_the_first_to_wake_gets_it() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        run(&mut c, &mut t, 50, [busy(0, 0, 1), busy(6, 9, 1)]);
        assert_eq!(c.shares(), [0, 8]);
        run(&mut c, &mut t, 5, [busy(0, 0, 1), busy(0, 0, 2)]);
        assert_eq!(c.shares(), [0, 0], "both quiet");
        run(&mut c, &mut t, 1, [busy(0, 1, 1), busy(0, 0, 2)]);
        assert_eq!(c.shares(), [8, 0], "async woke first");
    }

    #[test]
    fn checkouts_between_two_ticks_keep_a_side_from_being_quiet() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        // The sync side never shows a caller at a tick, but takes connections between
        // ticks: it is busy, not quiet.
        for checkouts in 0..50 {
            t += TICK;
            c.tick(
                t,
                [busy(8, 30, checkouts), busy(0, 0, checkouts)],
                c.capacity,
            );
        }
        assert!(c.shares()[SYNC] >= 1, "{:?}", c.shares());
    }

    #[test]
    fn a_side_that_wakes_gets_one_unit_at_the_next_tick() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        run(&mut c, &mut t, 10, [busy(8, 50, 1), busy(0, 0, 0)]);
        assert_eq!(c.shares(), [8, 0]);
        t += TICK;
        c.tick(t, [busy(8, 50, 2), busy(0, 1, 0)], c.capacity);
        assert_eq!(c.shares(), [7, 1]);
    }

    #[test]
    fn under_steady_demand_the_shares_settle_and_stop_moving() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        // 30 async callers to 2 sync: the sync side needs 2, the async side the rest.
        run(&mut c, &mut t, 500, [busy(6, 24, 1), busy(2, 0, 1)]);
        assert_eq!(c.shares(), [6, 2]);
        let changes = run(&mut c, &mut t, 1000, [busy(6, 24, 1), busy(2, 0, 1)]);
        assert_eq!(changes, 0, "ten seconds of the same load move nothing");
    }

    #[test]
    fn a_side_with_few_callers_gets_half_when_it_needs_more_however_many_the_other_has() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        // One slow sync statement and five sync callers behind it, against a hundred
        // async callers: the sync side needs more than half, so it gets half.
        run(&mut c, &mut t, 1000, [busy(7, 100, 1), busy(1, 5, 1)]);
        assert_eq!(c.shares(), [4, 4]);
    }

    #[test]
    fn the_fair_target_gives_the_smaller_demand_what_it_needs() {
        assert_eq!(
            fair_target(8.0, 2.0, 2.0),
            4.0,
            "the slack is shared evenly"
        );
        assert_eq!(fair_target(8.0, 1.0, 3.0), 3.0);
        assert_eq!(fair_target(8.0, 2.0, 50.0), 2.0);
        assert_eq!(fair_target(8.0, 50.0, 3.0), 5.0);
        assert_eq!(
            fair_target(8.0, 50.0, 5.0),
            4.0,
            "both above half: half each"
        );
    }

    #[test]
    fn a_target_between_two_units_does_not_flip_the_share_back_and_forth() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        // The sync side needs 3 or 4 in turn, the async side far more: a target of 4.5
        // async units.
        let demand_at = |i: u32| {
            [
                busy(8, 100, 1),
                busy(if i.is_multiple_of(2) { 3 } else { 4 }, 0, 1),
            ]
        };
        for i in 0..1000 {
            t += TICK;
            c.tick(t, demand_at(i), c.capacity);
        }
        let mut changes = 0;
        for i in 0..2000 {
            let demand = demand_at(i);
            let before = c.shares();
            t += TICK;
            if c.tick(t, demand, c.capacity) != before {
                changes += 1;
            }
        }
        assert!(changes <= 1, "{changes} changes around a target of 4.5");
    }

    #[test]
    fn a_share_moves_at_most_once_per_step_however_demand_jumps() {
        let mut c = Controller::new(20);
        let mut t = Instant::now();
        run(&mut c, &mut t, 300, [busy(10, 10, 1), busy(10, 10, 1)]);
        let before = c.shares()[ASYNC];
        // Most demand moves to the async side; the sync side keeps a few callers waiting,
        // so its share falls step by step, not at once.
        let ticks = (STEP.as_millis() * 4 / TICK.as_millis()) as u32;
        run(&mut c, &mut t, ticks, [busy(19, 500, 1), busy(1, 2, 1)]);
        assert!(c.shares()[ASYNC] > before, "it moved toward the demand");
        let moved = c.shares()[ASYNC] - before;
        assert!((1..=4).contains(&moved), "moved {moved} units in 4 steps");
    }

    #[test]
    fn a_steady_side_with_a_request_every_sixty_ms_keeps_its_share_between_requests() {
        // Adversary: the async side saturates the budget; the sync side makes one short
        // request every 60 ms (seen at one tick: a checkout), which is steady load.
        let mut c = Controller::new(4);
        let mut t = Instant::now();
        let mut sync_checkouts = 0;
        let mut changes = 0;
        let mut last = c.shares();
        for tick in 0..1000u64 {
            if tick % 6 == 0 {
                sync_checkouts += 1;
            }
            t += TICK;
            let shares = c.tick(
                t,
                [busy(4, 20, tick), busy(0, 0, sync_checkouts)],
                c.capacity,
            );
            if shares != last {
                changes += 1;
            }
            last = shares;
        }
        // Ten seconds of the same load: the shares should settle, as they do for
        // callers that never pause.
        assert!(
            changes <= 4,
            "{changes} share changes in 10 s: the sync share goes 1 → 0 → 1 on every request"
        );
    }

    #[test]
    fn with_one_unit_a_side_that_wakes_gets_a_share_of_one() {
        // Adversary: the module docs promise a waking side a share of 1 at the next tick.
        let mut c = Controller::new(1);
        let mut t = Instant::now();
        run(&mut c, &mut t, 10, [busy(1, 5, 1), busy(0, 0, 0)]);
        assert_eq!(c.shares(), [1, 0]);
        run(&mut c, &mut t, 10, [busy(1, 5, 2), busy(0, 1, 0)]);
        assert_eq!(c.shares()[SYNC], 1, "the sync side waits: {:?}", c.shares());
    }

    #[test]
    fn an_unhurried_side_gives_what_it_does_not_use_at_once() {
        let mut c = Controller::new(8);
        let mut t = Instant::now();
        // The sync side held everything; now two of its callers run and none waits.
        run(&mut c, &mut t, 50, [busy(0, 0, 1), busy(8, 4, 1)]);
        assert_eq!(c.shares(), [0, 8]);
        run(&mut c, &mut t, 50, [busy(0, 0, 1), busy(2, 0, 1)]);
        // The async side wakes with four callers: the sync side keeps 2 + the margin.
        run(&mut c, &mut t, 2, [busy(0, 4, 2), busy(2, 0, 1)]);
        assert_eq!(c.shares(), [4, 4]);
    }

    #[test]
    fn a_busy_side_keeps_at_least_one_unit_however_small_its_demand() {
        let mut c = Controller::new(4);
        let mut t = Instant::now();
        run(&mut c, &mut t, 3000, [busy(3, 1000, 1), busy(1, 0, 1)]);
        assert_eq!(c.shares(), [3, 1]);
    }
}
