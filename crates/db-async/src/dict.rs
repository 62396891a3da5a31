//! Rows as column-name → JSON maps, for code ported from dict cursors.

use serde_json::{Map, Number, Value};
use sqlx::mysql::MySqlRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};

/// One row as an ordered map from column name to value, the shape a Python
/// `DictCursor` returned.
///
/// Values: `NULL` → `null`; integer types → numbers; `FLOAT`/`DOUBLE` → numbers;
/// `DECIMAL` → a string (exact); `BOOLEAN` (`TINYINT(1)`) → `true`/`false`; dates and
/// times → ISO-8601 strings; text → strings; binary → a string when it is valid UTF-8,
/// else an array of byte values.
pub type DictRow = Map<String, Value>;

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
        "TIME" => Value::String(
            row.try_get_unchecked::<chrono::NaiveTime, _>(i)?
                .to_string(),
        ),
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

fn bytes_value(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(s) => Value::String(s),
        Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::from).collect()),
    }
}
