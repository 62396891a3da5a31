//! What a simulation runs: the fleet's figures and the schedule of phases, for the
//! full simulation (the issue's) and for the tiny one of the test.

use std::time::Duration;

/// Elastic (the fleet budget) or static (each instance its fixed share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `DB_FLEET_BUDGET`: each instance keeps a floor and leases the rest.
    Elastic,
    /// `DB_INSTANCES` × `MAX_CONNECTIONS`, fixed.
    Static,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Elastic => "elastic",
            Mode::Static => "static",
        }
    }
}

/// Something done at the start of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start instance `i` (again, if it ran before).
    Start(usize),
    /// `kill -9` instance `i`; its players stop (their next requests go elsewhere, by
    /// the [`Action::Move`]s that follow).
    Kill(usize),
    /// Move `slices` slices of players from instance `from` (`None`: players arriving,
    /// or those of a killed instance) to instance `to`.
    Move {
        from: Option<usize>,
        to: usize,
        slices: usize,
    },
}

/// One phase of the schedule.
#[derive(Debug, Clone)]
pub struct Phase {
    pub label: &'static str,
    pub actions: Vec<Action>,
    /// Counts in the throughput under skew (four instances, one with 70 % of the players).
    pub skew: bool,
    /// The instance that should receive borrowed units in this phase.
    pub hot: Option<usize>,
}

/// A fleet and its schedule.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The instances' names, by index.
    pub labels: &'static [&'static str],
    /// `DB_FLEET_BUDGET` (elastic), and the fence: the account's `MAX_USER_CONNECTIONS`
    /// (both modes).
    pub fleet_budget: u32,
    /// `DB_INSTANCES` of the elastic runs: the most instances running at once (a
    /// deploy's overlap counted).
    pub instances: u32,
    /// `MAX_CONNECTIONS` of the elastic runs: each instance's floor.
    pub floor: u32,
    /// `DB_INSTANCES` of the static runs.
    pub static_instances: u32,
    /// `MAX_CONNECTIONS` of the static runs.
    pub static_max: u32,
    /// The private server's `max_connections`.
    pub max_connections: u32,
    /// Players are moved between instances in slices of this many.
    pub slice_clients: usize,
    pub phases: Vec<Phase>,
    pub phase_length: Duration,
    /// The start of each phase not measured (players moving, instances starting).
    pub settle: Duration,
}

impl Shape {
    /// The issue's: four instances, fleet budget 30, `max_connections` 40; one instance
    /// with 70 % of the players, then another; `kill -9` of the hot one, a fifth
    /// instance (a deploy's surge), the killed one back. Static: `DB_INSTANCES=4`, 7
    /// each. Elastic: `DB_INSTANCES=5` (the surge counted), a floor of 4 each, so a
    /// lease pool of 10.
    pub fn full(phase_length: Duration, slice_clients: usize) -> Shape {
        use Action::{Kill, Move, Start};
        let new = |to, slices| Move {
            from: None,
            to,
            slices,
        };
        let (a, b, c, d, e) = (0, 1, 2, 3, 4);
        Shape {
            labels: &["A", "B", "C", "D", "E"],
            fleet_budget: 30,
            instances: 5,
            floor: 4,
            static_instances: 4,
            static_max: 7,
            max_connections: 40,
            slice_clients,
            phases: vec![
                Phase {
                    label: "A hot (70 % of the players)",
                    actions: vec![
                        Start(a),
                        Start(b),
                        Start(c),
                        Start(d),
                        new(a, 7),
                        new(b, 1),
                        new(c, 1),
                        new(d, 1),
                    ],
                    skew: true,
                    hot: Some(a),
                },
                Phase {
                    label: "the hot spot moves to B",
                    actions: vec![Move {
                        from: Some(a),
                        to: b,
                        slices: 6,
                    }],
                    skew: true,
                    hot: Some(b),
                },
                Phase {
                    label: "kill -9 B; its players go to C",
                    actions: vec![Kill(b), new(c, 6), new(d, 1)],
                    skew: false,
                    hot: Some(c),
                },
                Phase {
                    label: "E starts (a deploy's surge)",
                    actions: vec![
                        Start(e),
                        Move {
                            from: Some(d),
                            to: e,
                            slices: 1,
                        },
                    ],
                    skew: false,
                    hot: None,
                },
                Phase {
                    label: "B back (five instances)",
                    actions: vec![
                        Start(b),
                        Move {
                            from: Some(c),
                            to: b,
                            slices: 1,
                        },
                    ],
                    skew: false,
                    hot: None,
                },
            ],
            phase_length,
            settle: Duration::from_secs(1),
        }
    }

    /// The test's: two instances, fleet budget 8 (floors of 3, a lease pool of 2), a
    /// few seconds; the hot spot moves, the hot one is killed and comes back.
    pub fn tiny() -> Shape {
        use Action::{Kill, Move, Start};
        let (a, b) = (0, 1);
        Shape {
            labels: &["A", "B"],
            fleet_budget: 8,
            instances: 2,
            floor: 3,
            static_instances: 2,
            static_max: 4,
            max_connections: 18,
            slice_clients: 8,
            phases: vec![
                Phase {
                    label: "A hot",
                    actions: vec![
                        Start(a),
                        Start(b),
                        Move {
                            from: None,
                            to: a,
                            slices: 3,
                        },
                        Move {
                            from: None,
                            to: b,
                            slices: 1,
                        },
                    ],
                    skew: true,
                    hot: Some(a),
                },
                Phase {
                    label: "the hot spot moves to B",
                    actions: vec![Move {
                        from: Some(a),
                        to: b,
                        slices: 2,
                    }],
                    skew: true,
                    hot: Some(b),
                },
                Phase {
                    label: "kill -9 B; its players go to A",
                    actions: vec![
                        Kill(b),
                        Move {
                            from: None,
                            to: a,
                            slices: 3,
                        },
                    ],
                    skew: false,
                    hot: Some(a),
                },
                Phase {
                    label: "B back",
                    actions: vec![
                        Start(b),
                        Move {
                            from: Some(a),
                            to: b,
                            slices: 1,
                        },
                    ],
                    skew: false,
                    hot: None,
                },
            ],
            phase_length: Duration::from_secs(2),
            settle: Duration::from_millis(500),
        }
    }

    /// Slices of players in all: those the first phase brings.
    pub fn slices(&self) -> usize {
        self.phases.first().map_or(0, |p| {
            p.actions
                .iter()
                .map(|a| match a {
                    Action::Move {
                        from: None, slices, ..
                    } => *slices,
                    _ => 0,
                })
                .sum()
        })
    }

    /// The hot instance's share of the players in the first phase.
    pub fn hot_share(&self) -> f64 {
        let Some(p) = self.phases.first() else {
            return 0.0;
        };
        let hot: usize = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Move { to, slices, .. } if Some(*to) == p.hot => *slices,
                _ => 0,
            })
            .sum();
        hot as f64 / self.slices().max(1) as f64
    }

    /// The lease pool of the elastic runs.
    pub fn pool(&self) -> u32 {
        self.fleet_budget - self.instances * self.floor
    }

    /// `(MAX_CONNECTIONS, DB_INSTANCES, DB_FLEET_BUDGET)` of a mode.
    pub fn settings(&self, mode: Mode) -> (u32, u32, u32) {
        match mode {
            Mode::Elastic => (self.floor, self.instances, self.fleet_budget),
            Mode::Static => (self.static_max, self.static_instances, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Players per instance after every phase, in slices.
    fn slices_after_each_phase(shape: &Shape) -> Vec<Vec<usize>> {
        let mut on = vec![0usize; shape.labels.len()];
        let mut alive = vec![false; shape.labels.len()];
        let mut out = Vec::new();
        for p in &shape.phases {
            let mut arriving = 0;
            for a in &p.actions {
                match *a {
                    Action::Start(i) => alive[i] = true,
                    Action::Kill(i) => {
                        alive[i] = false;
                        arriving += on[i];
                        on[i] = 0;
                    }
                    Action::Move { from, to, slices } => {
                        assert!(alive[to], "{}: players moved to a dead instance", p.label);
                        match from {
                            Some(f) => {
                                assert!(on[f] >= slices, "{}: more moved than there are", p.label);
                                on[f] -= slices;
                            }
                            None => arriving = arriving.saturating_sub(slices),
                        }
                        on[to] += slices;
                    }
                }
            }
            out.push(on.clone());
        }
        out
    }

    #[test]
    fn the_full_schedule_keeps_ten_slices_and_one_instance_at_seventy_percent_under_skew() {
        let shape = Shape::full(Duration::from_secs(1), 1);
        let after = slices_after_each_phase(&shape);
        for (p, on) in shape.phases.iter().zip(&after) {
            assert_eq!(on.iter().sum::<usize>(), 10, "{}: {on:?}", p.label);
            if p.skew {
                assert_eq!(on.iter().filter(|&&n| n > 0).count(), 4, "{}", p.label);
                assert_eq!(on[p.hot.unwrap()], 7, "{}: {on:?}", p.label);
            }
        }
        assert_eq!(shape.pool(), 10);
        assert_eq!(shape.slices(), 10);
        assert!((shape.hot_share() - 0.7).abs() < 1e-9);
        assert!(shape.static_instances * shape.static_max <= shape.fleet_budget);
    }

    #[test]
    fn the_tiny_schedule_moves_every_slice_to_a_live_instance() {
        let shape = Shape::tiny();
        let after = slices_after_each_phase(&shape);
        assert!(
            after.iter().all(|on| on.iter().sum::<usize>() == 4),
            "{after:?}"
        );
        assert!(shape.pool() > 0);
    }
}
