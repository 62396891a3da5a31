//! Helpers through the guard, a panic inside it, and rollback on drop.

use std::panic::{AssertUnwindSafe, catch_unwind};

use db_budget::{CloseReason, DbError};
use db_sync::SyncPool;
use db_sync::mysql::prelude::Queryable;
use serde_json::json;

use crate::{assert_settled, closed, count, fixture};

#[test]
fn helpers_round_trip_through_the_guard() {
    let f = fixture("sync_helpers", 4);
    let mut conn = f.pool.get().unwrap();

    let done = conn
        .execute(
            "INSERT INTO players (name, coins, created, avatar, price) VALUES (?, ?, ?, ?, ?)",
            (
                "ann",
                10,
                "2024-05-31 12:03:04.120",
                vec![0u8, 255],
                "12.30",
            ),
        )
        .unwrap();
    assert_eq!(done.rows_affected, 1);
    assert_eq!(done.last_insert_id, Some(1));
    let update = conn
        .execute("UPDATE players SET coins = coins WHERE id = ?", (1,))
        .unwrap();
    assert_eq!(update.last_insert_id, None);

    let (name, coins): (String, i64) = conn
        .fetch_one("SELECT name, coins FROM players WHERE id = ?", (1,))
        .unwrap();
    assert_eq!((name.as_str(), coins), ("ann", 10));
    let none: Option<(i64,)> = conn
        .fetch_optional("SELECT id FROM players WHERE name = ?", ("nobody",))
        .unwrap();
    assert!(none.is_none());
    let missing = conn.fetch_one::<(i64,)>("SELECT id FROM players WHERE id = ?", (99,));
    assert!(matches!(missing, Err(DbError::RowNotFound)));
    let bad = conn.fetch_one::<(i64,)>("SELECT name FROM players WHERE id = ?", (1,));
    assert!(matches!(bad, Err(DbError::Decode { .. })), "{bad:?}");

    let dict = conn
        .fetch_dict_one("SELECT * FROM players WHERE id = ?", (1,))
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(dict.clone()),
        json!({
            "id": 1, "name": "ann", "coins": 10, "active": true,
            "created": "2024-05-31T12:03:04.120", "avatar": [0, 255], "price": "12.30",
        })
    );
    let keys: Vec<&str> = dict.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id", "name", "coins", "active", "created", "avatar", "price"
        ]
    );

    // A transaction that returns Ok commits; one that returns Err rolls back.
    let id = conn
        .transaction(|tx| {
            let done = tx.execute("INSERT INTO players (name) VALUES (?)", ("bob",))?;
            tx.execute("UPDATE players SET coins = coins + 5 WHERE id = ?", (1,))?;
            Ok(done.last_insert_id)
        })
        .unwrap();
    assert_eq!(id, Some(2));
    let failed: Result<(), DbError> = conn.transaction(|tx| {
        tx.execute("INSERT INTO players (name) VALUES (?)", ("carl",))?;
        tx.execute("INSERT INTO players (name) VALUES (?)", ("ann",))?; // duplicate
        Ok(())
    });
    assert!(failed.unwrap_err().is_duplicate_key());
    let rows = conn
        .fetch_dict_all("SELECT name, coins FROM players ORDER BY id", ())
        .unwrap();
    assert_eq!(
        serde_json::to_value(&rows).unwrap(),
        json!([{"name": "ann", "coins": 15}, {"name": "bob", "coins": 0}])
    );
    let names: Vec<(String,)> = conn
        .fetch_all("SELECT name FROM players ORDER BY id", ())
        .unwrap();
    assert_eq!(names, [("ann".to_owned(),), ("bob".to_owned(),)]);
    drop(conn);

    // One-statement conveniences on the pool.
    assert_eq!(count(&f.pool), 2);
    assert_settled(&f);
    assert_eq!(
        f.budget.snapshot().sync_side.opened_total,
        1,
        "one connection reused throughout"
    );
}

#[test]
fn a_panic_inside_a_guard_discards_the_connection_and_frees_its_unit() {
    let f = fixture("sync_panic", 2);
    let conn = f.pool.get().unwrap();
    let first_id = conn.connection_id();
    assert_eq!(f.budget.snapshot().sync_side.active, 1);

    let pool = f.pool.clone();
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let mut conn = conn;
        conn.query_drop("START TRANSACTION").unwrap();
        conn.exec_drop("INSERT INTO players (name) VALUES (?)", ("ghost",))
            .unwrap();
        panic!("handler bug");
    }));
    assert!(outcome.is_err());

    let snap = f.budget.snapshot();
    assert_eq!(closed(&snap, CloseReason::Cancelled), 1, "{snap}");
    assert_eq!(snap.in_use, 0, "the unit came back: {snap}");
    assert_eq!(f.pool.state().connections, 0);
    assert_settled(&f);

    // The server rolled the transaction back when the socket closed.
    let conn = pool.get().unwrap();
    assert_ne!(
        conn.connection_id(),
        first_id,
        "the panicked connection was not reused"
    );
    drop(conn);
    assert_eq!(count(&f.pool), 0);
    assert_settled(&f);
}

#[test]
fn an_uncommitted_transaction_is_rolled_back_on_drop() {
    let f = fixture("sync_rollback", 2);

    // Raw statements through DerefMut.
    let mut conn = f.pool.get().unwrap();
    let id = conn.connection_id();
    conn.query_drop("START TRANSACTION").unwrap();
    conn.exec_drop("INSERT INTO players (name) VALUES (?)", ("raw",))
        .unwrap();
    drop(conn);

    // Through the helpers.
    let mut conn = f.pool.get().unwrap();
    assert_eq!(
        conn.connection_id(),
        id,
        "rolled back and pooled, not closed"
    );
    conn.execute("BEGIN", ()).unwrap();
    conn.execute("INSERT INTO players (name) VALUES (?)", ("helper",))
        .unwrap();
    drop(conn);

    // An early return with `?` out of a function holding the guard.
    fn early_return(pool: &SyncPool) -> Result<(), DbError> {
        let mut conn = pool.get()?;
        conn.execute("START TRANSACTION", ())?;
        conn.execute("INSERT INTO players (name) VALUES (?)", ("early",))?;
        conn.execute("INSERT INTO no_such_table VALUES (1)", ())?;
        conn.execute("COMMIT", ())?;
        Ok(())
    }
    assert_eq!(early_return(&f.pool).unwrap_err().code(), Some(1146));

    assert_eq!(count(&f.pool), 0, "nothing was committed");
    let snap = f.budget.snapshot();
    assert_eq!(snap.sync_side.opened_total, 1, "{snap}");
    assert_eq!(snap.sync_side.closed_sum(), 0, "{snap}");
    assert_settled(&f);
}
