//! Rows as column-name → JSON maps, for code ported from Python dict cursors: the one
//! row type both sides return, and the text forms they share.

use serde_json::{Map, Value};

/// One row as an ordered map from column name to value (column order kept), the shape
/// a Python `DictCursor` returned. `db-async`'s and `db-sync`'s `fetch_dict_*` return
/// the same maps for the same columns (`tests/dict_parity.rs` checks every type).
///
/// Values:
///
/// - `NULL` → `null`;
/// - integer types, `YEAR` → numbers; `BOOLEAN` (`TINYINT(1)`) → `true`/`false`;
/// - `FLOAT`/`DOUBLE` → numbers; `DECIMAL` → a string (exact);
/// - `DATE` → `"2024-05-31"`; `DATETIME` → `"2024-05-31T12:00:00"` (a fraction only when
///   non-zero, 3 or 6 digits); `TIMESTAMP` → the same with `Z` appended. A zero date,
///   or one with a zero month or day (MariaDB's default `sql_mode` stores them), is the
///   server's text, `"0000-00-00"`, not `null`;
/// - `TIME` → `[-]HH:MM:SS[.fff]`, a duration up to `838:59:59.999999`;
/// - text, `ENUM`, `SET`, and `JSON` (text on MariaDB) → strings;
/// - binary and `BIT` → a string when the bytes are valid UTF-8, else an **array of byte
///   values** (`[0, 255, …]`).
///
/// A later column with the same name as an earlier one replaces its value.
pub type DictRow = Map<String, Value>;

/// A `DATE`, `DATETIME` or `TIMESTAMP` value as both drivers hand it over, field by
/// field. Printed from its fields rather than through a calendar type, so that what the
/// server allows and no calendar does (`0000-00-00`, `2024-05-00` under MariaDB's
/// default `sql_mode`) comes out as the server's own text instead of an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moment {
    /// 0 to 9999.
    pub year: u16,
    /// 0 to 12 (0 in a zero date).
    pub month: u8,
    /// 0 to 31 (0 in a zero date).
    pub day: u8,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 59.
    pub second: u8,
    /// 0 to 999 999.
    pub micros: u32,
}

impl Moment {
    /// A `DATE`'s text: `2024-05-31`.
    pub fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// A `DATETIME`'s text: `2024-05-31T12:00:00`, with a fraction when non-zero.
    pub fn datetime_text(&self) -> String {
        format!(
            "{}T{:02}:{:02}:{:02}{}",
            self.date_text(),
            self.hour,
            self.minute,
            self.second,
            fraction(self.micros)
        )
    }

    /// A `TIMESTAMP`'s text: as a `DATETIME`, with `Z` appended.
    pub fn timestamp_text(&self) -> String {
        format!("{}Z", self.datetime_text())
    }
}

/// A `TIME` value's text in a [`DictRow`]: `[-]HH:MM:SS[.fff]`, hours unbounded by a
/// day (`-838:59:59`).
pub fn time_text(negative: bool, hours: u32, minutes: u8, seconds: u8, micros: u32) -> String {
    let sign = if negative { "-" } else { "" };
    format!(
        "{sign}{hours:02}:{minutes:02}:{seconds:02}{}",
        fraction(micros)
    )
}

/// `.123` / `.123456`, or nothing for whole seconds (as chrono prints fractions).
fn fraction(micros: u32) -> String {
    match micros {
        0 => String::new(),
        us if us % 1000 == 0 => format!(".{:03}", us / 1000),
        us => format!(".{us:06}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_durations_with_chrono_style_fractions() {
        assert_eq!(time_text(true, 838, 59, 59, 0), "-838:59:59");
        assert_eq!(time_text(false, 1, 2, 3, 120_000), "01:02:03.120");
        assert_eq!(time_text(false, 0, 0, 0, 5), "00:00:00.000005");
    }

    #[test]
    fn dates_print_their_fields_even_where_no_calendar_has_them() {
        let zero = Moment::default();
        assert_eq!(zero.date_text(), "0000-00-00");
        assert_eq!(zero.timestamp_text(), "0000-00-00T00:00:00Z");
        let m = Moment {
            year: 2024,
            month: 5,
            day: 31,
            hour: 12,
            minute: 3,
            second: 4,
            micros: 5,
        };
        assert_eq!(m.datetime_text(), "2024-05-31T12:03:04.000005");
    }
}
