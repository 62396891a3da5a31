//! The fleet membership on `/metrics` (`db_fleet_*`): this instance's leases beside the
//! fleet budget, so that a sum over instances shows the whole fleet against its budget.

use db_fleet::FleetSnapshot;

use super::metrics::{header, sample};

/// Appends the membership's families to `o`.
pub(super) fn render(o: &mut String, f: &FleetSnapshot) {
    type Figure = fn(&FleetSnapshot) -> u32;
    let families: [(&str, &str, &str, Figure); 8] = [
        (
            "db_fleet_budget",
            "gauge",
            "Physical connections all instances together may hold (DB_FLEET_BUDGET).",
            |f| f.settings.fleet_budget,
        ),
        (
            "db_fleet_floor",
            "gauge",
            "This instance's own units, its control connection included (MAX_CONNECTIONS).",
            |f| f.settings.floor,
        ),
        (
            "db_fleet_leased",
            "gauge",
            "Units this instance leases from the fleet's pool now.",
            |f| f.leased,
        ),
        (
            "db_fleet_owed",
            "gauge",
            "Units leased on a lost control connection still in use here (0 normally).",
            |f| f.owed,
        ),
        (
            "db_fleet_wanting",
            "gauge",
            "1 while this instance waits for a lease.",
            |f| u32::from(f.wanting),
        ),
        (
            "db_fleet_others",
            "gauge",
            "Other instances holding or waiting for leases, at the last look.",
            |f| f.others,
        ),
        (
            "db_fleet_connected",
            "gauge",
            "1 while the control connection is open (without it the instance serves on its floor).",
            |f| u32::from(f.connected),
        ),
        (
            "db_fleet_control_lost_total",
            "counter",
            "Times the control connection was lost.",
            |f| f.lost_total,
        ),
    ];
    for (name, kind, help, figure) in families {
        header(o, name, kind, help);
        sample(o, name, &[], figure(f));
    }
}
