//! Time, injected: where "now" comes from, and which game day an instant belongs to.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

use crate::error::RetentionError;

/// Where the service gets "now" from (for audit timestamps and
/// [`Retention::today`](crate::Retention::today)). The rules never read a clock; the
/// operations take the game day as an argument.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told, for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.lock() = now;
    }

    /// Moves the time forward (or back, with a negative `by`).
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

/// When one game day ends and the next begins: at `reset_hour` o'clock in the time
/// zone `utc_offset_minutes` east of UTC. The default is UTC midnight.
///
/// A fixed offset, not a named zone: a reset that moved with daylight saving time
/// would make one game day 23 hours long and another 25.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DayBoundary {
    reset_hour: u8,
    utc_offset_minutes: i32,
}

impl Default for DayBoundary {
    fn default() -> Self {
        DayBoundary::UTC_MIDNIGHT
    }
}

impl DayBoundary {
    /// Days start at 00:00 UTC.
    pub const UTC_MIDNIGHT: DayBoundary = DayBoundary {
        reset_hour: 0,
        utc_offset_minutes: 0,
    };

    /// Days start at `reset_hour` (0–23) local time, local time being
    /// `utc_offset_minutes` (−840…+840, i.e. ±14 h) east of UTC.
    ///
    /// # Errors
    ///
    /// [`RetentionError::InvalidInput`] for values outside those ranges.
    pub fn new(reset_hour: u8, utc_offset_minutes: i32) -> Result<DayBoundary, RetentionError> {
        if reset_hour > 23 {
            return Err(RetentionError::invalid(format!(
                "reset_hour {reset_hour}: accepted 0..=23"
            )));
        }
        if !(-14 * 60..=14 * 60).contains(&utc_offset_minutes) {
            return Err(RetentionError::invalid(format!(
                "utc_offset_minutes {utc_offset_minutes}: accepted -840..=840"
            )));
        }
        Ok(DayBoundary {
            reset_hour,
            utc_offset_minutes,
        })
    }

    /// The reset hour, local time.
    pub fn reset_hour(&self) -> u8 {
        self.reset_hour
    }

    /// The local time's offset east of UTC, in minutes.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.utc_offset_minutes
    }

    /// How far a game day's start lies after UTC midnight of its date.
    fn shift(&self) -> Duration {
        Duration::hours(i64::from(self.reset_hour))
            - Duration::minutes(i64::from(self.utc_offset_minutes))
    }

    /// The game day `now` belongs to.
    pub fn day_of(&self, now: DateTime<Utc>) -> NaiveDate {
        (now.naive_utc() - self.shift()).date()
    }

    /// The first instant of game day `day` (the previous day ends just before it).
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        (day.and_time(NaiveTime::MIN) + self.shift()).and_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_default_day_is_the_utc_date() {
        let b = DayBoundary::default();
        assert_eq!(b.day_of(at("2025-03-01T00:00:00Z")), date(2025, 3, 1));
        assert_eq!(b.day_of(at("2025-03-01T23:59:59.999Z")), date(2025, 3, 1));
        assert_eq!(b.day_of(at("2025-03-02T00:00:00Z")), date(2025, 3, 2));
        assert_eq!(b.start_of(date(2025, 3, 2)), at("2025-03-02T00:00:00Z"));
    }

    #[test]
    fn a_reset_hour_moves_the_boundary() {
        let b = DayBoundary::new(4, 0).unwrap();
        assert_eq!(b.day_of(at("2025-03-02T03:59:59Z")), date(2025, 3, 1));
        assert_eq!(b.day_of(at("2025-03-02T04:00:00Z")), date(2025, 3, 2));
        assert_eq!(b.start_of(date(2025, 3, 2)), at("2025-03-02T04:00:00Z"));
    }

    #[test]
    fn an_offset_is_applied_before_the_reset_hour() {
        // 05:00 in UTC+02:00 is 03:00 UTC.
        let b = DayBoundary::new(5, 120).unwrap();
        assert_eq!(b.day_of(at("2025-03-02T02:59:59Z")), date(2025, 3, 1));
        assert_eq!(b.day_of(at("2025-03-02T03:00:00Z")), date(2025, 3, 2));
        assert_eq!(b.start_of(date(2025, 3, 2)), at("2025-03-02T03:00:00Z"));
        // Midnight in UTC-05:00 is 05:00 UTC.
        let b = DayBoundary::new(0, -300).unwrap();
        assert_eq!(b.day_of(at("2025-03-02T04:59:59Z")), date(2025, 3, 1));
        assert_eq!(b.day_of(at("2025-03-02T05:00:00Z")), date(2025, 3, 2));
    }

    #[test]
    fn start_of_and_day_of_agree() {
        for b in [
            DayBoundary::default(),
            DayBoundary::new(23, 840).unwrap(),
            DayBoundary::new(0, -840).unwrap(),
            DayBoundary::new(7, 330).unwrap(),
        ] {
            let day = date(2024, 2, 29);
            let start = b.start_of(day);
            assert_eq!(b.day_of(start), day, "{b:?}");
            assert_eq!(
                b.day_of(start - Duration::nanoseconds(1)),
                date(2024, 2, 28),
                "{b:?}"
            );
        }
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert!(matches!(
            DayBoundary::new(24, 0),
            Err(RetentionError::InvalidInput { .. })
        ));
        assert!(matches!(
            DayBoundary::new(0, 841),
            Err(RetentionError::InvalidInput { .. })
        ));
        assert!(matches!(
            DayBoundary::new(0, -841),
            Err(RetentionError::InvalidInput { .. })
        ));
    }

    #[test]
    fn a_manual_clock_moves_when_told() {
        let clock = ManualClock::new(at("2025-03-01T12:00:00Z"));
        clock.advance(Duration::days(1));
        assert_eq!(clock.now(), at("2025-03-02T12:00:00Z"));
        clock.set(at("2020-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2020-01-01T00:00:00Z"));
    }
}
