//! Signatures that take or return the guard, and blocking values followed through
//! fields, parameters, locals and returns.

use super::*;

#[test]
fn signatures_taking_or_returning_the_guard() {
    assert_eq!(
        of("crates/app/src/signatures.rs", false),
        expect(&[
            (1, "signatures::<module>", Import, "db_sync::DbConnection"),
            (
                2,
                "signatures::<module>",
                Import,
                "db_sync::DbConnection as Guard"
            ),
            (4, "signatures::takes", Signature, "DbConnection"),
            (8, "signatures::returns", Signature, "Guard"),
            (
                9,
                "signatures::returns",
                Call,
                "db_sync::get_database_connection"
            ),
            (
                12,
                "signatures::qualified",
                Signature,
                "db_sync::DbConnection"
            ),
            // another db_sync type in a signature is a plain type mention
            (14, "signatures::pool", Type, "db_sync::SyncPool"),
            (17, "signatures::<module>", Type, "DbConnection"),
            (21, "signatures::Repo::new", Signature, "DbConnection"),
            (25, "signatures::Repo::take", Signature, "Guard"),
            (
                26,
                "signatures::Repo::take",
                Field,
                "SyncConn via self.conn"
            ),
            (31, "signatures::UsesConn::with", Signature, "DbConnection"),
            (34, "signatures::<module>", Type, "db_sync::DbConnection"),
            // through `type Conn = db_sync::DbConnection;`
            (36, "signatures::via_alias", Signature, "Conn"),
        ])
    );
}

#[test]
fn blocking_values_are_followed_through_fields_parameters_locals_and_returns() {
    let got = of("crates/app/src/handles.rs", false);
    assert_eq!(got.len(), HANDLES_COUNTED);
    let typed: Vec<_> = got
        .into_iter()
        .filter(|(_, _, k, _)| matches!(k, Method | Field))
        .collect();
    assert_eq!(
        typed,
        expect(&[
            (
                17,
                "handles::handler",
                Method,
                "SyncPool::get via state.sync_pool"
            ),
            (
                19,
                "handles::handler",
                Method,
                "SyncConn::fetch_one via conn"
            ),
            (
                20,
                "handles::handler",
                Method,
                "SyncPool::get via state.shared"
            ),
            (
                20,
                "handles::handler",
                Method,
                "SyncConn::execute via state.shared.get().unwrap()"
            ),
            (
                25,
                "handles::hand_off",
                Field,
                "SyncPool via state.sync_pool"
            ),
            (
                29,
                "handles::legacy_work",
                Method,
                "SyncPool::transaction via pool"
            ),
            (
                29,
                "handles::legacy_work",
                Method,
                "Transaction::execute via tx"
            ),
            (30, "handles::legacy_work", Method, "SyncPool::get via pool"),
            (
                31,
                "handles::legacy_work",
                Method,
                "SyncConn::discard via c"
            ),
            (32, "handles::legacy_work", Method, "SyncPool::get via pool"),
            (
                33,
                "handles::legacy_work",
                Method,
                "SyncConn::fetch_all via c"
            ),
            (
                39,
                "handles::pool_of",
                Field,
                "SyncPool via state.sync_pool"
            ),
            (
                43,
                "handles::through_returns",
                Method,
                "SyncPool::get via pool_of()"
            ),
            (
                45,
                "handles::through_returns",
                Method,
                "SyncPool::close via sync_pool"
            ),
            (
                46,
                "handles::through_returns",
                Method,
                "Transaction::fetch_one via tx"
            ),
            // a shadowed name and builder settings are not uses; the pool built is
            (
                54,
                "handles::not_blocking",
                Method,
                "SyncPool::get via builder.pool_timeout().build()"
            ),
            // inside macro bodies
            (
                58,
                "handles::in_macros",
                Method,
                "SyncPool::get via state.sync_pool"
            ),
            (
                59,
                "handles::in_macros",
                Method,
                "SyncPool::is_closed via state.sync_pool"
            ),
            // a static
            (
                67,
                "handles::from_a_static",
                Method,
                "SyncPool::get via POOL.get().unwrap()"
            ),
        ])
    );
}
