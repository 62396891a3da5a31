//! The startup check of the budget against the database server's own limits.
//!
//! The budget guarantees this process never holds more than `MAX_CONNECTIONS`; it cannot
//! know what else uses the server. So at startup the server is asked for
//! `@@max_connections` and `@@session.max_user_connections`, and the server refuses to
//! start when the budget of every instance together (`MAX_CONNECTIONS × DB_INSTANCES`)
//! does not fit in `max_connections − DB_RESERVED_CONNECTIONS` (the reserve is for
//! operators, tools and other applications, and absorbs the server's lag in counting
//! closed connections; ARCHITECTURE.md, "Server-side lag"), or exceeds a non-zero
//! `max_user_connections`.
//!
//! The session value is the account's own limit when one is set (`GRANT … WITH
//! MAX_USER_CONNECTIONS n`, or `CREATE USER … WITH …`), else the server's global one: the
//! application account reads it without any extra privilege. That limit is the fence
//! that keeps an overshoot this app's problem (ERROR 1226 for its own account) instead
//! of everyone's (ERROR 1040).

use std::fmt;

/// What the server allows, as read at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `@@max_connections`.
    pub max_connections: i64,
    /// `@@max_user_connections` (0: no limit).
    pub max_user_connections: i64,
}

/// What this deployment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// `MAX_CONNECTIONS`: one instance's budget.
    pub max_connections: u32,
    /// `DB_INSTANCES`.
    pub instances: u32,
    /// `DB_RESERVED_CONNECTIONS`.
    pub reserved: u32,
    /// `DB_FLEET_BUDGET` (0: no fleet budget, the static split).
    pub fleet_budget: u32,
}

impl Plan {
    /// The budget of all instances together: the fleet budget, or without one every
    /// instance's `MAX_CONNECTIONS`.
    pub fn total(&self) -> i64 {
        if self.fleet_budget > 0 {
            return i64::from(self.fleet_budget);
        }
        i64::from(self.max_connections) * i64::from(self.instances)
    }
}

/// The plan fits: how much room is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// The server's limits.
    pub server: ServerLimits,
    /// The plan.
    pub plan: Plan,
}

impl Headroom {
    /// Connections the server could still accept with every instance at its budget,
    /// beyond the reserve.
    pub fn spare(&self) -> i64 {
        self.server.max_connections - i64::from(self.plan.reserved) - self.plan.total()
    }
}

impl fmt::Display for Headroom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.plan;
        if p.fleet_budget > 0 {
            write!(
                f,
                "fleet budget DB_FLEET_BUDGET={} ({} instances at most, MAX_CONNECTIONS={} \
                 each of their own) of the server's max_connections ({}) minus \
                 DB_RESERVED_CONNECTIONS ({}): headroom {}",
                p.fleet_budget,
                p.instances,
                p.max_connections,
                self.server.max_connections,
                p.reserved,
                self.spare(),
            )?;
            if self.server.max_user_connections > 0 {
                write!(
                    f,
                    "; max_user_connections {}",
                    self.server.max_user_connections
                )?;
            }
            return Ok(());
        }
        write!(
            f,
            "budget MAX_CONNECTIONS={} × DB_INSTANCES={} = {} of the server's max_connections ({}) \
             minus DB_RESERVED_CONNECTIONS ({}) = {}: headroom {}",
            p.max_connections,
            p.instances,
            p.total(),
            self.server.max_connections,
            p.reserved,
            self.server.max_connections - i64::from(p.reserved),
            self.spare(),
        )?;
        if self.server.max_user_connections > 0 {
            write!(
                f,
                "; max_user_connections {}",
                self.server.max_user_connections
            )?;
        }
        Ok(())
    }
}

/// Checks `plan` against `server`.
///
/// # Errors
///
/// A [`LimitError`] whose message gives the numbers and the fix.
pub fn check(server: ServerLimits, plan: Plan) -> Result<Headroom, LimitError> {
    let total = plan.total();
    if total > server.max_connections - i64::from(plan.reserved) {
        return Err(LimitError::MaxConnections { server, plan });
    }
    if server.max_user_connections > 0 && total > server.max_user_connections {
        return Err(LimitError::MaxUserConnections { server, plan });
    }
    Ok(Headroom { server, plan })
}

/// The plan does not fit in what the server allows. The message gives the numbers and
/// the fix, e.g. `MAX_CONNECTIONS=20 × DB_INSTANCES=1 = 20 exceeds the server's
/// max_connections (25) minus DB_RESERVED_CONNECTIONS (10) = 15: lower MAX_CONNECTIONS
/// to 15 or raise the server's max_connections to 30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Every instance's budget together exceeds `max_connections` minus the reserve.
    #[error("{}", over_max_connections(*.server, *.plan))]
    MaxConnections {
        /// The server's limits.
        server: ServerLimits,
        /// The plan that does not fit.
        plan: Plan,
    },
    /// Every instance's budget together exceeds a non-zero `max_user_connections`.
    #[error("{}", over_max_user_connections(*.server, *.plan))]
    MaxUserConnections {
        /// The server's limits.
        server: ServerLimits,
        /// The plan that does not fit.
        plan: Plan,
    },
}

/// `MAX_CONNECTIONS=m × DB_INSTANCES=i = total` (or `DB_FLEET_BUDGET=f`), how each
/// message starts.
fn head(plan: Plan) -> String {
    if plan.fleet_budget > 0 {
        return format!("DB_FLEET_BUDGET={}", plan.fleet_budget);
    }
    format!(
        "MAX_CONNECTIONS={} × DB_INSTANCES={} = {}",
        plan.max_connections,
        plan.instances,
        plan.total()
    )
}

fn over_max_connections(server: ServerLimits, plan: Plan) -> String {
    let available = server.max_connections - i64::from(plan.reserved);
    format!(
        "{} exceeds the server's max_connections ({}) minus DB_RESERVED_CONNECTIONS ({}) = {available}: \
         {} or raise the server's max_connections to {}",
        head(plan),
        server.max_connections,
        plan.reserved,
        lower_to(available, plan),
        plan.total() + i64::from(plan.reserved),
    )
}

fn over_max_user_connections(server: ServerLimits, plan: Plan) -> String {
    format!(
        "{} exceeds the server's max_user_connections ({}): {} or raise the server's \
         max_user_connections to {}",
        head(plan),
        server.max_user_connections,
        lower_to(server.max_user_connections, plan),
        plan.total(),
    )
}

/// "lower MAX_CONNECTIONS to N", or what else to lower when no N fits.
fn lower_to(available: i64, plan: Plan) -> String {
    if plan.fleet_budget > 0 {
        return format!("lower DB_FLEET_BUDGET to {available}");
    }
    let instances = plan.instances;
    let per_instance = available / i64::from(instances);
    if per_instance >= 1 {
        format!("lower MAX_CONNECTIONS to {per_instance}")
    } else if available >= 1 {
        format!("lower DB_INSTANCES to {available} or fewer")
    } else {
        "lower DB_RESERVED_CONNECTIONS".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(max: i64) -> ServerLimits {
        ServerLimits {
            max_connections: max,
            max_user_connections: 0,
        }
    }

    fn plan(max_connections: u32, instances: u32, reserved: u32) -> Plan {
        Plan {
            max_connections,
            instances,
            reserved,
            fleet_budget: 0,
        }
    }

    #[test]
    fn a_budget_that_fits_reports_its_headroom() {
        let h = check(server(151), plan(20, 1, 10)).unwrap();
        assert_eq!(h.spare(), 121);
        assert!(h.to_string().contains("headroom 121"), "{h}");
    }

    #[test]
    fn a_budget_exactly_at_the_limit_is_accepted() {
        assert!(check(server(25), plan(15, 1, 10)).is_ok());
    }

    #[test]
    fn a_budget_over_the_limit_is_refused_with_the_numbers_and_the_fix() {
        let msg = check(server(25), plan(20, 1, 10)).unwrap_err().to_string();
        assert_eq!(
            msg,
            "MAX_CONNECTIONS=20 × DB_INSTANCES=1 = 20 exceeds the server's max_connections (25) \
             minus DB_RESERVED_CONNECTIONS (10) = 15: lower MAX_CONNECTIONS to 15 or raise the \
             server's max_connections to 30"
        );
    }

    #[test]
    fn instances_multiply_the_budget() {
        assert!(check(server(151), plan(50, 2, 10)).is_ok());
        let msg = check(server(151), plan(50, 3, 10)).unwrap_err().to_string();
        assert!(
            msg.starts_with("MAX_CONNECTIONS=50 × DB_INSTANCES=3 = 150 exceeds"),
            "{msg}"
        );
        assert!(msg.contains("lower MAX_CONNECTIONS to 47"), "{msg}");
        assert!(msg.contains("max_connections to 160"), "{msg}");
    }

    #[test]
    fn a_reserve_larger_than_the_server_asks_to_lower_the_reserve() {
        let msg = check(server(5), plan(1, 1, 10)).unwrap_err().to_string();
        assert!(msg.contains("lower DB_RESERVED_CONNECTIONS"), "{msg}");
        let msg = check(server(13), plan(1, 5, 10)).unwrap_err().to_string();
        assert!(msg.contains("lower DB_INSTANCES to 3 or fewer"), "{msg}");
    }

    #[test]
    fn a_global_max_user_connections_is_checked_too() {
        let limits = ServerLimits {
            max_connections: 200,
            max_user_connections: 15,
        };
        let msg = check(limits, plan(20, 1, 10)).unwrap_err();
        assert!(
            matches!(msg, LimitError::MaxUserConnections { .. }),
            "{msg:?}"
        );
        let msg = msg.to_string();
        assert!(msg.contains("max_user_connections (15)"), "{msg}");
        assert!(msg.contains("lower MAX_CONNECTIONS to 15"), "{msg}");
        assert!(check(limits, plan(15, 1, 10)).is_ok());
    }
}
