//! Both sides turn rows into the same maps: for every column type the dict conversion
//! handles, `db-sync`'s `fetch_dict_all` and `db-async`'s return identical
//! [`db_budget::DictRow`]s, so a statement moved from one side to the other returns
//! what it returned before. The mapping itself is documented on `DictRow`.

use db_async::args;
use db_budget::DictRow;
use integration_tests::{Server, TestDb, async_pool, budget, runtime, sync_pool};
use serde_json::{Value, json};

/// One column per type (and width, and sign) the conversion handles.
const SCHEMA: &str = "CREATE TABLE every_type (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, biu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, dcm DECIMAL(20, 4),
    b BOOLEAN, t1 TINYINT(1), t1u TINYINT(1) UNSIGNED,
    dt DATE, tm TIME, tm6 TIME(6), dtm DATETIME, dtm6 DATETIME(6),
    ts TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL, y YEAR,
    c CHAR(5), vc VARCHAR(50), tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT,
    bn BINARY(4), vb VARBINARY(10), tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
    j JSON, e ENUM('small', 'large'), st SET('x', 'y', 'z'), bt BIT(8), bt1 BIT(1)
)";

/// Ordinary values, the extremes of every width, fractions, and all NULLs.
const ROWS: &str = "INSERT INTO every_type VALUES
    (1, -5, 5, -300, 300, -70000, 70000, -100000, 100000, -5000000000, 5000000000,
     1.5, 2.25, 12.3400, TRUE, 0, 1,
     '2024-05-31', '12:03:04', '12:03:04.120000', '2024-05-31 12:03:04',
     '2024-05-31 12:03:04.000005', '2024-05-31 12:03:04', '2024-05-31 12:03:04.120000', 2024,
     'ab', 'héllo', 'tiny', 'text', 'medium', 'long',
     'ab', 'bin', 'tb', 'blob', 'mb', 'lb',
     '{\"a\": [1, 2], \"b\": null}', 'large', 'x,z', b'00000101', b'1'),
    (2, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
     -9223372036854775808, 18446744073709551615,
     -0.1, -1.0e300, -99999999999999.9999, FALSE, 127, 255,
     '1000-01-01', '-838:59:59', '838:59:59.999999', '9999-12-31 23:59:59',
     '1000-01-01 00:00:00.999999', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', 1901,
     '', '', '', '', '', '',
     x'FF00FE01', x'C328', x'80', x'FFFE', x'00', x'F0',
     '[]', 'small', '', b'11111111', b'0'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL)";

/// Expressions rather than columns: literals, casts, functions, and two columns with
/// one name (the later one wins on both sides).
const EXPRESSIONS: &str =
    "SELECT 1 AS one, CAST(-1 AS SIGNED) AS signed_cast, CAST(1 AS UNSIGNED) AS unsigned_cast,
    1.50 AS decimal_literal, 1e0 AS double_literal, 'text' AS text_literal, NULL AS nothing,
    CAST('2024-05-31' AS DATE) AS date_cast, CAST('25:00:01' AS TIME) AS time_cast,
    TIMEDIFF('2024-05-31 00:00:00', '2024-06-02 01:02:03') AS negative_time,
    CAST('2024-05-31 12:03:04.5' AS DATETIME(1)) AS datetime_cast,
    JSON_OBJECT('k', 1) AS json_fn, x'FF' AS invalid_utf8, x'6869' AS valid_utf8,
    1 AS twice, 2 AS twice";

fn sync_rows(pool: &db_sync::SyncPool, sql: &str) -> Vec<DictRow> {
    let mut conn = pool.get().expect("a blocking connection");
    conn.fetch_dict_all(sql, ())
        .unwrap_or_else(|e| panic!("db-sync: {sql}: {e}"))
}

/// Column by column, what differs between the two sides' rows.
fn differences(sync: &[DictRow], async_side: &[DictRow]) -> Vec<String> {
    let mut found = Vec::new();
    if sync.len() != async_side.len() {
        found.push(format!(
            "rows: sync {}, async {}",
            sync.len(),
            async_side.len()
        ));
    }
    for (n, (s, a)) in sync.iter().zip(async_side).enumerate() {
        let s_names: Vec<&String> = s.keys().collect();
        let a_names: Vec<&String> = a.keys().collect();
        if s_names != a_names {
            found.push(format!(
                "row {n}: columns: sync {s_names:?}, async {a_names:?}"
            ));
        }
        for (name, sv) in s {
            let av = a.get(name).unwrap_or(&Value::Null);
            if sv != av {
                found.push(format!("row {n}: {name}: sync {sv}, async {av}"));
            }
        }
    }
    found
}

/// Both sides read `sql`; returns the (identical) rows.
fn read_on_both_sides(db: &TestDb, sql: &'static str) -> Vec<DictRow> {
    let budget = budget(2);
    let sync = sync_rows(&sync_pool(&db.url, &budget), sql);
    let rt = runtime();
    let async_side = rt.block_on(async {
        let pool = async_pool(&db.url, &budget);
        let mut conn = pool.acquire().await.expect("an async connection");
        conn.fetch_dict_all(sql, args![])
            .await
            .unwrap_or_else(|e| panic!("db-async: {sql}: {e}"))
    });
    let found = differences(&sync, &async_side);
    assert!(
        found.is_empty(),
        "the two sides' dict rows differ:\n{}",
        found.join("\n")
    );
    sync
}

#[test]
fn every_column_type_gives_the_same_map_on_both_sides() {
    let server = Server::shared();
    let db = TestDb::create(server, "dict_parity");
    db.admin(server, &format!("{SCHEMA}; {ROWS};"));

    let rows = read_on_both_sides(&db, "SELECT * FROM every_type ORDER BY id");

    // The documented mapping, spot-checked (both sides agree, so one is enough).
    let [first, extremes, nulls] = &rows[..] else {
        panic!("three rows, got {}", rows.len())
    };
    assert_eq!(first["dcm"], json!("12.3400"), "DECIMAL is an exact string");
    assert_eq!((&first["b"], &first["t1"]), (&json!(true), &json!(false)));
    assert_eq!(first["tm6"], json!("12:03:04.120"));
    assert_eq!(first["dtm6"], json!("2024-05-31T12:03:04.000005"));
    assert_eq!(first["ts"], json!("2024-05-31T12:03:04Z"));
    assert_eq!(first["vc"], json!("héllo"));
    assert_eq!(first["vb"], json!("bin"), "valid UTF-8 binary is a string");
    assert_eq!(
        first["j"],
        json!("{\"a\": [1, 2], \"b\": null}"),
        "JSON is text on MariaDB"
    );
    assert_eq!(extremes["biu"], json!(u64::MAX));
    assert_eq!(extremes["bi"], json!(i64::MIN));
    assert_eq!(extremes["tm"], json!("-838:59:59"));
    assert_eq!(
        extremes["bn"],
        json!([255, 0, 254, 1]),
        "invalid UTF-8 is an array of byte values"
    );
    assert!(
        nulls.iter().all(|(k, v)| k == "id" || v.is_null()),
        "{nulls:?}"
    );
}

#[test]
fn expressions_give_the_same_map_on_both_sides() {
    let server = Server::shared();
    let db = TestDb::create(server, "dict_parity_expr");

    let rows = read_on_both_sides(&db, EXPRESSIONS);

    let row = &rows[0];
    assert_eq!(row["decimal_literal"], json!("1.50"));
    assert_eq!(row["negative_time"], json!("-49:02:03"));
    assert_eq!(row["twice"], json!(2), "the later column of a name wins");
    assert_eq!(row["invalid_utf8"], json!([255]));
    assert_eq!(row["valid_utf8"], json!("hi"));
}

#[test]
fn dates_no_calendar_has_give_the_same_text_on_both_sides() {
    // MariaDB's default sql_mode (no NO_ZERO_DATE, no NO_ZERO_IN_DATE) stores them.
    let server = Server::shared();
    let db = TestDb::create(server, "dict_parity_zero");
    db.admin(
        server,
        "CREATE TABLE zero_dates (id INT PRIMARY KEY, d DATE, dt DATETIME, dt6 DATETIME(6),
             ts TIMESTAMP NULL DEFAULT NULL);
         INSERT INTO zero_dates VALUES
             (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000',
              '0000-00-00 00:00:00'),
             (2, '2024-00-00', '2024-05-00 01:02:03', '2024-00-31 00:00:00.5', NULL);",
    );

    let rows = read_on_both_sides(&db, "SELECT * FROM zero_dates ORDER BY id");

    assert_eq!(rows[0]["d"], json!("0000-00-00"));
    assert_eq!(rows[0]["ts"], json!("0000-00-00T00:00:00Z"));
    assert_eq!(rows[1]["dt"], json!("2024-05-00T01:02:03"));
    assert_eq!(rows[1]["dt6"], json!("2024-00-31T00:00:00.500"));
}
