//! Rows as column-name → JSON maps, for code ported from Python dict cursors: the one
//! row type both sides return, and the text forms they share.

use serde_json::{Map, Value};

/// One row as an ordered map from column name to value (column order kept), the shape
/// a Python `DictCursor` returned. `db-async`'s and `db-sync`'s `fetch_dict_*` return
/// the same maps for the same columns (`tests/dict_parity.rs` checks every type).
///
/// Values: `NULL` → `null`; integer types → numbers; `BOOLEAN` (`TINYINT(1)`) →
/// `true`/`false`; `FLOAT`/`DOUBLE` → numbers; `DECIMAL` → a string (exact); dates and
/// times → ISO-8601 strings: `DATE` → `"2024-05-31"`, `DATETIME` →
/// `"2024-05-31T12:00:00"` (a fraction only when non-zero, 3 or 6 digits), `TIMESTAMP`
/// → the same with `Z` appended, `TIME` → `[-]HH:MM:SS[.fff]` (a duration, up to
/// `838:59:59`); text, `ENUM`, `SET` and `JSON` (text on MariaDB) → strings; binary and
/// `BIT` → a string when the bytes are valid UTF-8, else an **array of byte values**
/// (`[0, 255, …]`). A later column with the same name as an earlier one replaces its
/// value.
pub type DictRow = Map<String, Value>;

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
pub fn fraction(micros: u32) -> String {
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
}
