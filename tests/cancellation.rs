//! I3: a statement cut off at BEGIN, COMMIT, ROLLBACK, inside the drain of a half-read
//! result or on the raw connection leaves the same handle refusing further statements
//! (`DbError::Interrupted`), never a hang or a wrong answer.

use std::time::Duration;

use db_async::args;
use db_budget::{CloseReason, DbError};
use integration_tests::reuse::*;
use integration_tests::{Server, async_pool, budget, eventually, runtime};

#[test]
fn async_cut_commit_then_reuse_never_sees_a_committed_or_open_state_wrongly() {
    let (server, db) = fresh("adv_a_cutcommit");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=6u32 {
            let mut conn = pool.acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO t (v) VALUES (?)", args![1000 + cuts as i32])
                .await
                .unwrap();
            let out = cut_after(tx.commit(), cuts).await;
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(String,)>("SELECT CAST(@@in_transaction AS CHAR)", args![]),
            )
            .await
            .expect("the next statement hung");
            match (&out, &next) {
                (None, Err(DbError::Interrupted)) => {}
                (Some(Ok(())), Ok((s,))) if s == "0" => {}
                _ => problems.push(format!("cut {cuts}: commit {out:?}, next {next:?}")),
            }
            drop(conn);
        }
        let _ = server;
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(eventually(Duration::from_secs(5), || {
            let s = budget.snapshot();
            s.async_side.active == 0 && s.in_use == s.async_side.idle
        }));
    });
}

#[test]
fn async_cut_abandoned_rollback_inside_prepare_refuses_the_next_statement() {
    let (_server, db) = fresh("adv_a_cutprep");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=6u32 {
            let mut conn = pool.acquire().await.unwrap();
            {
                let mut tx = conn.begin().await.unwrap();
                tx.execute("INSERT INTO t (v) VALUES (?)", args![2000])
                    .await
                    .unwrap();
                // dropped: abandoned, rolled back in the next prepare
            }
            let out = cut_after(conn.fetch_one::<(i64,)>("SELECT 1", args![]), cuts).await;
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(String,)>("SELECT CAST(@@in_transaction AS CHAR)", args![]),
            )
            .await
            .expect("the next statement hung");
            match (&out, &next) {
                (None, Err(DbError::Interrupted)) => {}
                (Some(Ok((1,))), Ok((s,))) if s == "0" => {}
                _ => problems.push(format!("cut {cuts}: first {out:?}, next {next:?}")),
            }
            drop(conn);
        }
        assert!(problems.is_empty(), "{problems:#?}");
        let (n,): (i64,) = pool
            .acquire()
            .await
            .unwrap()
            .fetch_one("SELECT COUNT(*) FROM t WHERE v = 2000", args![])
            .await
            .unwrap();
        assert_eq!(n, 0, "an abandoned transaction's write was committed");
    });
}

#[test]
fn async_cut_raw_rollback_refuses_the_next_statement() {
    let (_server, db) = fresh("adv_a_cutraw");
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=6u32 {
            let mut conn = pool.acquire().await.unwrap();
            {
                let mut tx = conn.begin().await.unwrap();
                tx.execute("INSERT INTO t (v) VALUES (?)", args![3000])
                    .await
                    .unwrap();
            }
            let out = cut_after(async { conn.raw().await.map(|_| ()) }, cuts).await;
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(String,)>("SELECT CAST(@@in_transaction AS CHAR)", args![]),
            )
            .await
            .expect("the next statement hung");
            match (&out, &next) {
                (None, Err(DbError::Interrupted)) => {}
                // A raw checkout's helpers refuse by design; the raw connection itself
                // must show the abandoned transaction rolled back.
                (Some(Ok(())), Err(DbError::Interrupted)) => {
                    let raw = conn.raw().await.unwrap();
                    let (s,): (String,) = sqlx::query_as("SELECT CAST(@@in_transaction AS CHAR)")
                        .fetch_one(raw)
                        .await
                        .unwrap();
                    if s != "0" {
                        problems.push(format!(
                            "cut {cuts}: raw ran inside the abandoned transaction"
                        ));
                    }
                }
                _ => problems.push(format!("cut {cuts}: raw {out:?}, next {next:?}")),
            }
            drop(conn);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

#[test]
fn async_fetch_optional_cut_in_its_drain_refuses_the_next_statement() {
    let server = Server::shared();
    let db = wide_table(server, "adv_a_drain", 5000);
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        let mut cut = 0;
        for cuts in 1..=30u32 {
            for pause in [
                Duration::ZERO,
                Duration::from_micros(300),
                Duration::from_millis(2),
            ] {
                let mut conn = pool.acquire().await.unwrap();
                let fut = conn.fetch_optional::<(i32, String)>(
                    "SELECT id, pad FROM wide ORDER BY id",
                    args![],
                );
                let out = cut_after_pausing(fut, cuts, pause).await;
                let next = tokio::time::timeout(
                    Duration::from_secs(3),
                    conn.fetch_one::<(i64,)>("SELECT 42", args![]),
                )
                .await;
                match (&out, &next) {
                    (None, Ok(Err(DbError::Interrupted))) => cut += 1,
                    (Some(Ok(Some((1, _)))), Ok(Ok((42,)))) => {}
                    _ => problems.push(format!(
                        "cut {cuts} {pause:?}: first {:?}, next {next:?}",
                        out.as_ref()
                            .map(|r| r.as_ref().map(|o| o.as_ref().map(|(id, _)| *id)))
                    )),
                }
                drop(conn);
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(cut > 10, "only {cut} cuts landed");
    });
}

#[test]
fn a_statement_cut_off_on_the_raw_connection_makes_the_handle_refuse_the_next_helper() {
    // `raw()` hands out the sqlx connection; a statement on it cut off by a timeout
    // leaves a half-read result in the socket, and the next helper on the same
    // `AsyncConn` runs on it.
    let server = Server::shared();
    let db = wide_table(server, "adv_a_rawcut", 3000);
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut problems = Vec::new();
        for cuts in 1..=12u32 {
            let mut conn = pool.acquire().await.unwrap();
            let out = {
                let raw = conn.raw().await.unwrap();
                cut_after(
                    sqlx::query_as::<_, (i32, String)>("SELECT id, pad FROM wide ORDER BY id")
                        .fetch_all(&mut *raw),
                    cuts,
                )
                .await
            };
            let next = tokio::time::timeout(
                Duration::from_secs(3),
                conn.fetch_one::<(i64,)>("SELECT 42", args![]),
            )
            .await;
            match (&out, &next) {
                (None, Ok(Err(DbError::Interrupted))) => {}
                // After raw use the helpers refuse whether or not the raw statement
                // finished: the pool cannot tell.
                (Some(Ok(rows)), Ok(Err(DbError::Interrupted))) if rows.len() == 3000 => {}
                _ => problems.push(format!(
                    "cut {cuts}: raw statement {}, next helper {}",
                    match &out {
                        None => "cut".to_owned(),
                        Some(r) => format!("{:?}", r.as_ref().map(Vec::len)),
                    },
                    match &next {
                        Err(_) => "HUNG > 3 s".to_owned(),
                        Ok(r) => format!("{r:?}"),
                    }
                )),
            }
            drop(conn);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

#[test]
fn after_a_raw_statement_was_cut_off_the_next_helper_never_answers_wrong() {
    let server = Server::shared();
    let db = wide_table(server, "adv_a_rawwrong", 3000);
    const SQL: &str = "SELECT id, pad FROM wide WHERE id > ? ORDER BY id";
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(1);
        let pool = async_pool(&db.url, &budget);
        let mut wrong = Vec::new();
        for cuts in 1..=20u32 {
            for pause in [Duration::ZERO, Duration::from_millis(1)] {
                let mut conn = pool.acquire().await.unwrap();
                // Warm the connection's statement cache through the helper.
                let rows = conn.fetch_all::<(i32, String)>(SQL, args![2999]).await.unwrap();
                assert_eq!(rows.len(), 1);
                let out = {
                    let raw = conn.raw().await.unwrap();
                    let fut = sqlx::query_as::<_, (i32, String)>(SQL).bind(0).fetch_all(&mut *raw);
                    cut_after_pausing(fut, cuts, pause)
                        .await
                        .map(|v| v.map(|r| r.len()))
                };
                let next = tokio::time::timeout(
                    Duration::from_secs(3),
                    conn.fetch_all::<(i32, String)>(SQL, args![2999]),
                )
                .await;
                match &next {
                    Err(_) => wrong.push(format!("cut {cuts} {pause:?} (raw {out:?}): next helper HUNG > 3 s")),
                    Ok(Ok(rows)) if rows.iter().map(|(id, _)| *id).collect::<Vec<_>>() != vec![3000] => {
                        wrong.push(format!(
                            "cut {cuts} {pause:?} (raw {out:?}): next helper answered {} rows, first id {:?}",
                            rows.len(),
                            rows.first().map(|(id, _)| *id)
                        ));
                    }
                    _ => {}
                }
                drop(conn);
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    });
}

#[test]
fn a_statement_cut_off_at_any_await_point_makes_its_connection_refuse_the_next_one() {
    // Arrange
    let server = Server::shared();
    let db = wide_table(server, "cut_matrix", 3000);
    let rt = runtime();
    rt.block_on(async {
        let budget = budget(2);
        let pool = async_pool(&db.url, &budget);
        let mut cut = 0;
        let mut finished = 0;
        // Act: cut the same kinds of statement at every poll count, with and without
        // time for bytes to arrive in between.
        for cuts in 1..=40u32 {
            for pause in [
                Duration::ZERO,
                Duration::from_micros(200),
                Duration::from_millis(2),
            ] {
                let mut conn = pool.acquire().await.unwrap();
                let outcome = match cuts % 3 {
                    0 => cut_after_pausing(
                        conn.fetch_all::<(i32, String)>(
                            "SELECT id, pad FROM wide ORDER BY id",
                            args![],
                        ),
                        cuts,
                        pause,
                    )
                    .await
                    .map(|r| r.map(|rows| rows.len() as i64)),
                    1 => cut_after_pausing(
                        conn.fetch_one::<(i64,)>(
                            "SELECT COUNT(*) FROM wide WHERE pad LIKE ?",
                            args!["x%"],
                        ),
                        cuts,
                        pause,
                    )
                    .await
                    .map(|r| r.map(|(n,)| n)),
                    _ => cut_after_pausing(
                        conn.fetch_dict_all("SELECT id, pad FROM wide WHERE id <= ?", args![500]),
                        cuts,
                        pause,
                    )
                    .await
                    .map(|r| r.map(|rows| rows.len() as i64)),
                };
                // The same handle, at once: a cut-off connection refuses; a finished one
                // answers right. Neither may hang.
                let next = tokio::time::timeout(
                    Duration::from_secs(3),
                    conn.fetch_one::<(i64,)>("SELECT 42", args![]),
                )
                .await
                .expect("the next statement on the same connection hung");
                match outcome {
                    None => {
                        cut += 1;
                        assert!(
                            matches!(next, Err(DbError::Interrupted)),
                            "cut after {cuts} polls ({pause:?}): the next statement ran: {next:?}"
                        );
                    }
                    Some(result) => {
                        finished += 1;
                        let n = result.unwrap();
                        assert!(n == 3000 || n == 500, "wrong first answer {n}");
                        assert_eq!(
                            next.unwrap(),
                            (42,),
                            "wrong answer after a finished statement"
                        );
                    }
                }
                drop(conn);
            }
        }

        // Assert: every cut connection was closed, not pooled; every unit came back.
        assert!(
            cut > 30,
            "the matrix cut only {cut} statements ({finished} finished)"
        );
        let settled = eventually(Duration::from_secs(5), || {
            let s = budget.snapshot();
            s.async_side.active == 0 && s.in_use == s.async_side.idle
        });
        let snap = budget.snapshot();
        assert!(settled, "{snap}");
        assert_eq!(
            closed(&snap.async_side, CloseReason::Cancelled),
            cut,
            "{snap}"
        );
    });
}
