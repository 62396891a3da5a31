//! Rows as column-name → JSON maps ([`DictRow`], whose docs give the mapping), for code
//! ported from Python dict cursors. The values are the ones `db-sync`'s `fetch_dict_*`
//! produce for the same columns (`tests/dict_parity.rs`).

pub(crate) use db_budget::DictRow;
use db_budget::dict::{Moment, time_text};
use serde_json::{Map, Number, Value};
use sqlx::mysql::MySqlRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};

pub(crate) fn to_dict(row: &MySqlRow) -> Result<DictRow, sqlx::Error> {
    let mut map = Map::with_capacity(row.columns().len());
    for (i, col) in row.columns().iter().enumerate() {
        let type_name = col.type_info().name();
        let value = if row.try_get_raw(i)?.is_null() && !is_zero_date(row, i, type_name) {
            Value::Null
        } else {
            column_value(row, i, type_name)?
        };
        map.insert(col.name().to_owned(), value);
    }
    Ok(map)
}

fn column_value(row: &MySqlRow, i: usize, type_name: &str) -> Result<Value, sqlx::Error> {
    let unsigned = type_name.ends_with("UNSIGNED");
    let base = type_name.trim_end_matches(" UNSIGNED");
    Ok(match base {
        "BOOLEAN" => Value::Bool(row.try_get_unchecked::<bool, _>(i)?),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" if unsigned => {
            Value::Number(row.try_get_unchecked::<u64, _>(i)?.into())
        }
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            Value::Number(row.try_get_unchecked::<i64, _>(i)?.into())
        }
        "FLOAT" | "DOUBLE" => {
            let f = row.try_get_unchecked::<f64, _>(i)?;
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        "DATE" => Value::String(moment(raw_bytes(row, i)?)?.date_text()),
        "DATETIME" => Value::String(moment(raw_bytes(row, i)?)?.datetime_text()),
        "TIMESTAMP" => Value::String(moment(raw_bytes(row, i)?)?.timestamp_text()),
        "TIME" => time_value(raw_bytes(row, i)?)?,
        "JSON" => row.try_get_unchecked::<Value, _>(i)?,
        "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT"
        | "GEOMETRY" => bytes_value(row.try_get_unchecked::<Vec<u8>, _>(i)?),
        // CHAR, VARCHAR, TEXT…, ENUM, SET, DECIMAL and anything newer: their text form.
        _ => match row.try_get_unchecked::<String, _>(i) {
            Ok(s) => Value::String(s),
            Err(_) => bytes_value(row.try_get_unchecked::<Vec<u8>, _>(i)?),
        },
    })
}

/// sqlx reports a zero date (`0000-00-00`, sent as a value of length 0) as NULL, but it
/// is a value (the column may be `NOT NULL`), and db-sync returns it: only a real NULL
/// has no bytes at all.
fn is_zero_date(row: &MySqlRow, i: usize, type_name: &str) -> bool {
    matches!(type_name, "DATE" | "DATETIME" | "TIMESTAMP") && raw_bytes(row, i).is_ok()
}

/// A value as the binary protocol sent it, length byte first (dates and times).
fn raw_bytes(row: &MySqlRow, i: usize) -> Result<&[u8], sqlx::Error> {
    row.try_get_unchecked::<&[u8], _>(i)
}

/// A `DATE`, `DATETIME` or `TIMESTAMP` as the binary protocol sends it: length, year,
/// month, day, then hour, minute, second, then microseconds, each part only if any of
/// it is non-zero. Read here rather than through chrono: the server allows dates no
/// calendar has (`0000-00-00`, `2024-05-00`), which chrono refuses.
fn moment(raw: &[u8]) -> Result<Moment, sqlx::Error> {
    let (date, time, micros) = match *raw {
        [0] => ([0; 4], [0; 3], [0; 4]),
        [4, y0, y1, mo, d] => ([y0, y1, mo, d], [0; 3], [0; 4]),
        [7, y0, y1, mo, d, h, mi, s] => ([y0, y1, mo, d], [h, mi, s], [0; 4]),
        [11, y0, y1, mo, d, h, mi, s, u0, u1, u2, u3] => {
            ([y0, y1, mo, d], [h, mi, s], [u0, u1, u2, u3])
        }
        _ => return Err(malformed("date", raw)),
    };
    Ok(Moment {
        year: u16::from_le_bytes([date[0], date[1]]),
        month: date[2],
        day: date[3],
        hour: time[0],
        minute: time[1],
        second: time[2],
        micros: u32::from_le_bytes(micros),
    })
}

fn malformed(what: &str, raw: &[u8]) -> sqlx::Error {
    sqlx::Error::Decode(format!("a {what} value of {} bytes", raw.len()).into())
}

/// A `TIME` as the binary protocol sends it: length, sign, days, hours, minutes,
/// seconds, then microseconds if any. Read here rather than through chrono or sqlx: a
/// TIME is a duration up to `838:59:59.999999`, which `NaiveTime` refuses past 23:59:59,
/// and sqlx 0.9.0's `MySqlTime` refuses past `838:59:59.0` (and its `is_negative`
/// answers the wrong way round).
fn time_value(raw: &[u8]) -> Result<Value, sqlx::Error> {
    let (negative, days, h, m, s, micros) = match *raw {
        [0] => (false, [0; 4], 0, 0, 0, 0),
        [8, sign, d0, d1, d2, d3, h, m, s] => (sign == 1, [d0, d1, d2, d3], h, m, s, 0),
        [12, sign, d0, d1, d2, d3, h, m, s, u0, u1, u2, u3] => (
            sign == 1,
            [d0, d1, d2, d3],
            h,
            m,
            s,
            u32::from_le_bytes([u0, u1, u2, u3]),
        ),
        _ => return Err(malformed("TIME", raw)),
    };
    let hours = u32::from_le_bytes(days)
        .saturating_mul(24)
        .saturating_add(u32::from(h));
    Ok(Value::String(time_text(negative, hours, m, s, micros)))
}

fn bytes_value(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(s) => Value::String(s),
        Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::from).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::time_value;
    use serde_json::json;

    #[test]
    fn a_binary_time_is_a_signed_duration_with_days_folded_into_hours() {
        assert_eq!(time_value(&[0]).unwrap(), json!("00:00:00"));
        let minus_26h = [8, 1, 1, 0, 0, 0, 2, 3, 4];
        assert_eq!(time_value(&minus_26h).unwrap(), json!("-26:03:04"));
        let max = [12, 0, 34, 0, 0, 0, 22, 59, 59, 0x3f, 0x42, 0x0f, 0];
        assert_eq!(time_value(&max).unwrap(), json!("838:59:59.999999"));
        assert!(time_value(&[3, 0, 0, 0]).is_err());
    }
}
