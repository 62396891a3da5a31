//! Rows as column-name → JSON maps ([`DictRow`], whose docs give the mapping), for code
//! ported from Python dict cursors. The values are the ones `db-sync`'s `fetch_dict_*`
//! produce for the same columns (`tests/dict_parity.rs`).

pub(crate) use db_budget::DictRow;
use db_budget::dict::time_text;
use serde_json::{Map, Number, Value};
use sqlx::mysql::MySqlRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};

pub(crate) fn to_dict(row: &MySqlRow) -> Result<DictRow, sqlx::Error> {
    let mut map = Map::with_capacity(row.columns().len());
    for (i, col) in row.columns().iter().enumerate() {
        let value = if row.try_get_raw(i)?.is_null() {
            Value::Null
        } else {
            column_value(row, i, col.type_info().name())?
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
        "DATE" => Value::String(
            row.try_get_unchecked::<chrono::NaiveDate, _>(i)?
                .to_string(),
        ),
        "DATETIME" => Value::String(
            row.try_get_unchecked::<chrono::NaiveDateTime, _>(i)?
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string(),
        ),
        "TIMESTAMP" => Value::String(
            row.try_get_unchecked::<chrono::DateTime<chrono::Utc>, _>(i)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        "TIME" => time_value(row.try_get_unchecked::<&[u8], _>(i)?)?,
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
        _ => {
            return Err(sqlx::Error::Decode(
                format!("a TIME value of {} bytes", raw.len()).into(),
            ));
        }
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
