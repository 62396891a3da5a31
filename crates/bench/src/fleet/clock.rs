//! One time base for the whole run: `CLOCK_MONOTONIC`, which the oracle reporter in
//! every instance stamps its lines with too.

/// Seconds since a run started, on the system-wide monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start_ns: i64,
}

/// `CLOCK_MONOTONIC` now, in ns.
#[allow(
    clippy::useless_conversion,
    reason = "time_t and c_long are i64 here but i32 on 32-bit targets"
)]
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i64::from(ts.tv_sec) * 1_000_000_000 + i64::from(ts.tv_nsec)
}

impl Clock {
    /// Starts now.
    pub fn start() -> Clock {
        Clock {
            start_ns: monotonic_ns(),
        }
    }

    /// When it started (`CLOCK_MONOTONIC`, ns).
    pub fn start_ns(&self) -> i64 {
        self.start_ns
    }

    /// Seconds since the start.
    pub fn now(&self) -> f64 {
        self.seconds(monotonic_ns())
    }

    /// A monotonic timestamp as seconds since the start.
    pub fn seconds(&self, ns: i64) -> f64 {
        (ns - self.start_ns) as f64 / 1e9
    }
}
