//! Rows as column-name → JSON maps ([`DictRow`], whose docs give the mapping), for code
//! ported from Python dict cursors. The values are the ones `db-async`'s `fetch_dict_*`
//! produce for the same columns (`tests/dict_parity.rs`).

pub(crate) use db_budget::DictRow;
use db_budget::dict::{Moment, time_text};
use r2d2_mysql::mysql::consts::{ColumnFlags, ColumnType};
use r2d2_mysql::mysql::{Column, Row, Value as MyValue};
use serde_json::{Map, Number, Value};

/// Converts a row (from the helpers or from raw `mysql` calls) into a [`DictRow`].
pub fn to_dict(row: Row) -> DictRow {
    let columns = row.columns();
    let values = row.unwrap_raw();
    let mut map = Map::with_capacity(values.len());
    for (column, value) in columns.iter().zip(values) {
        let value = cell(column, value.unwrap_or(MyValue::NULL));
        map.insert(column.name_str().into_owned(), value);
    }
    map
}

/// One value of `column` as JSON.
pub(crate) fn cell(column: &Column, value: MyValue) -> Value {
    let ty = column.column_type();
    match value {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) if is_boolean(column) => Value::Bool(i != 0),
        MyValue::UInt(u) if is_boolean(column) => Value::Bool(u != 0),
        MyValue::Int(i) => Value::Number(i.into()),
        MyValue::UInt(u) => Value::Number(u.into()),
        MyValue::Float(f) => float(f64::from(f)),
        MyValue::Double(d) => float(d),
        MyValue::Date(year, month, day, hour, minute, second, micros) => {
            let m = Moment {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            };
            Value::String(match ty {
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => m.date_text(),
                ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
                    m.timestamp_text()
                }
                _ => m.datetime_text(),
            })
        }
        MyValue::Time(negative, days, h, mi, s, us) => {
            let hours = days.saturating_mul(24).saturating_add(u32::from(h));
            Value::String(time_text(negative, hours, mi, s, us))
        }
        MyValue::Bytes(bytes) => bytes_cell(column, bytes),
    }
}

/// `TINYINT(1)`, which MySQL and sqlx treat as a boolean.
fn is_boolean(column: &Column) -> bool {
    column.column_type() == ColumnType::MYSQL_TYPE_TINY && column.column_length() == 1
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A value that came as bytes: always for strings, blobs, `DECIMAL`, `JSON`, `BIT`, and
/// for every type in the text protocol (raw `query` calls).
fn bytes_cell(column: &Column, bytes: Vec<u8>) -> Value {
    let ty = column.column_type();
    if ty == ColumnType::MYSQL_TYPE_JSON
        && let Ok(v) = serde_json::from_slice(&bytes)
    {
        return v;
    }
    if let Ok(text) = std::str::from_utf8(&bytes) {
        // The text protocol sends numbers and dates as text too.
        if let Some(v) = parse_text(column, ty, text) {
            return v;
        }
    }
    match String::from_utf8(bytes) {
        Ok(s) => Value::String(s),
        Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::from).collect()),
    }
}

fn parse_text(column: &Column, ty: ColumnType, text: &str) -> Option<Value> {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => {
            if is_boolean(column) {
                return text.parse::<i64>().ok().map(|i| Value::Bool(i != 0));
            }
            if column.flags().contains(ColumnFlags::UNSIGNED_FLAG) {
                text.parse::<u64>().ok().map(|u| Value::Number(u.into()))
            } else {
                text.parse::<i64>().ok().map(|i| Value::Number(i.into()))
            }
        }
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => text.parse::<f64>().ok().map(float),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 if text.len() >= 19 => {
            Some(Value::String(text.replacen(' ', "T", 1)))
        }
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 if text.len() >= 19 => {
            Some(Value::String(format!("{}Z", text.replacen(' ', "T", 1))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(ty: ColumnType) -> Column {
        Column::new(ty).with_name(b"c")
    }

    #[test]
    fn numbers_and_null() {
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_LONG), MyValue::NULL),
            Value::Null
        );
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_LONGLONG), MyValue::Int(-7)),
            json!(-7)
        );
        assert_eq!(
            cell(
                &col(ColumnType::MYSQL_TYPE_LONGLONG),
                MyValue::UInt(u64::MAX)
            ),
            json!(u64::MAX)
        );
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_DOUBLE), MyValue::Double(1.5)),
            json!(1.5)
        );
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_FLOAT), MyValue::Float(0.5)),
            json!(0.5)
        );
    }

    #[test]
    fn tinyint_1_is_a_boolean_and_wider_tinyints_are_numbers() {
        let flag = col(ColumnType::MYSQL_TYPE_TINY).with_column_length(1);
        assert_eq!(cell(&flag, MyValue::Int(1)), json!(true));
        assert_eq!(cell(&flag, MyValue::Int(0)), json!(false));
        assert_eq!(cell(&flag, MyValue::Bytes(b"1".to_vec())), json!(true));
        let tiny = col(ColumnType::MYSQL_TYPE_TINY).with_column_length(4);
        assert_eq!(cell(&tiny, MyValue::Int(3)), json!(3));
    }

    #[test]
    fn dates_and_times_are_iso_8601() {
        let date = MyValue::Date(2024, 5, 31, 0, 0, 0, 0);
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_DATE), date),
            json!("2024-05-31")
        );
        let dt = MyValue::Date(2024, 5, 31, 12, 3, 4, 0);
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_DATETIME), dt.clone()),
            json!("2024-05-31T12:03:04")
        );
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_TIMESTAMP), dt),
            json!("2024-05-31T12:03:04Z")
        );
        let frac = MyValue::Date(2024, 5, 31, 12, 3, 4, 120_000);
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_DATETIME), frac),
            json!("2024-05-31T12:03:04.120")
        );
        let micro = MyValue::Date(2024, 5, 31, 12, 3, 4, 5);
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_DATETIME), micro),
            json!("2024-05-31T12:03:04.000005")
        );
        let time = MyValue::Time(true, 1, 2, 3, 4, 0);
        assert_eq!(
            cell(&col(ColumnType::MYSQL_TYPE_TIME), time),
            json!("-26:03:04")
        );
    }

    #[test]
    fn text_decimal_json_and_binary() {
        let text = col(ColumnType::MYSQL_TYPE_VAR_STRING);
        assert_eq!(cell(&text, MyValue::Bytes("héllo".into())), json!("héllo"));
        let dec = col(ColumnType::MYSQL_TYPE_NEWDECIMAL);
        assert_eq!(
            cell(&dec, MyValue::Bytes(b"12.30".to_vec())),
            json!("12.30")
        );
        let js = col(ColumnType::MYSQL_TYPE_JSON);
        assert_eq!(
            cell(&js, MyValue::Bytes(br#"{"a":[1]}"#.to_vec())),
            json!({"a": [1]})
        );
        let blob = col(ColumnType::MYSQL_TYPE_BLOB);
        assert_eq!(
            cell(&blob, MyValue::Bytes(vec![0, 255, 7])),
            json!([0, 255, 7])
        );
    }

    #[test]
    fn text_protocol_values_are_typed_by_their_column() {
        let int = col(ColumnType::MYSQL_TYPE_LONG);
        assert_eq!(cell(&int, MyValue::Bytes(b"-42".to_vec())), json!(-42));
        let unsigned = col(ColumnType::MYSQL_TYPE_LONGLONG).with_flags(ColumnFlags::UNSIGNED_FLAG);
        assert_eq!(
            cell(&unsigned, MyValue::Bytes(b"18446744073709551615".to_vec())),
            json!(u64::MAX)
        );
        let dt = col(ColumnType::MYSQL_TYPE_DATETIME);
        assert_eq!(
            cell(&dt, MyValue::Bytes(b"2024-05-31 12:03:04".to_vec())),
            json!("2024-05-31T12:03:04")
        );
    }
}
