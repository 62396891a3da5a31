//! Paths into `db_sync`: imports, qualified paths, renamed crates, macros,
//! re-exports, and names that shadow them.

use super::*;

#[test]
fn use_aliases_and_block_imports() {
    assert_eq!(
        of("crates/app/src/aliases.rs", false),
        expect(&[
            (1, "aliases::<module>", Import, "db_sync as legacy"),
            (
                2,
                "aliases::<module>",
                Import,
                "db_sync::get_database_connection as conn"
            ),
            (
                3,
                "aliases::<module>",
                Import,
                "db_sync::fetch_all as all_rows"
            ),
            (3, "aliases::<module>", Import, "db_sync::fetch_one"),
            (7, "aliases::load_user", Call, "conn"),
            (8, "aliases::load_user", Call, "fetch_one"),
            (9, "aliases::load_user", Call, "all_rows"),
            (10, "aliases::load_user", Call, "legacy::execute"),
            (
                16,
                "aliases::inner_import",
                Import,
                "db_sync::fetch_optional as maybe"
            ),
            (17, "aliases::inner_import", Call, "maybe"),
        ])
    );
}

#[test]
fn glob_imports_resolve_public_names_but_not_shadowed_or_unknown_ones() {
    // `helper()` is local, `fetch_all()` in `local` is shadowed by a local
    // fn, `ping` is found by reading db-sync's own public items, and
    // `transaction` arrives through `use super::*`.
    assert_eq!(
        of("crates/app/src/glob.rs", false),
        expect(&[
            (1, "glob::<module>", Import, "db_sync::*"),
            (4, "glob::count", Call, "get_database_connection"),
            (5, "glob::count", Call, "ping"),
            (7, "glob::count", Call, "fetch_one"),
            (20, "glob::local::uses_local", Call, "transaction"),
        ])
    );
}

#[test]
fn fully_qualified_paths() {
    assert_eq!(
        of("crates/app/src/qualified.rs", false),
        expect(&[
            (
                2,
                "qualified::run",
                Call,
                "db_sync::get_database_connection"
            ),
            (3, "qualified::run", Call, "::db_sync::fetch_dict_all"),
            (4, "qualified::run", Type, "db_sync::SyncPool"),
            (4, "qualified::run", Call, "db_sync::SyncPool::global"),
            (5, "qualified::run", Type, "db_sync::fetch_dict_one"),
        ])
    );
}

#[test]
fn crates_renamed_in_cargo_toml() {
    // app: `blocking = { package = "db-sync" }`; a local variable named
    // `blocking` is not the crate.
    assert_eq!(
        of("crates/app/src/renamed.rs", false),
        expect(&[
            (1, "renamed::<module>", Import, "blocking::DbConnection"),
            (
                4,
                "renamed::via_rename",
                Call,
                "blocking::get_database_connection"
            ),
            (5, "renamed::via_rename", Call, "blocking::fetch_one"),
        ])
    );
    // worker: `old-db = { workspace = true }`, renamed in the root manifest.
    assert_eq!(
        of("crates/worker/src/main.rs", false),
        expect(&[
            (2, "main", Call, "old_db::get_database_connection"),
            (3, "main", Call, "old_db::execute")
        ])
    );
    assert!(
        findings()
            .iter()
            .filter(|f| f.file.starts_with("crates/worker/"))
            .all(|f| f.krate == "worker")
    );
}

#[test]
fn uses_inside_macros() {
    // Not counted: the string literal, `Thing { fetch_one: 5 }` (a field
    // name) and `conn.fetch_one` (a field access).
    assert_eq!(
        of("crates/app/src/macros.rs", false),
        expect(&[
            (1, "macros::<module>", Import, "db_sync::fetch_all"),
            (4, "macros::in_macros", Macro, "db_sync::fetch_one"),
            (
                4,
                "macros::in_macros",
                Macro,
                "db_sync::get_database_connection"
            ),
            (8, "macros::in_macros", Macro, "fetch_all"),
            (
                17,
                "macros::<module>",
                Macro,
                "::db_sync::get_database_connection"
            ),
        ])
    );
}

#[test]
fn comments_strings_and_same_named_local_fns_do_not_count() {
    assert_eq!(of("crates/app/src/comments.rs", false), vec![]);
    assert_eq!(of("crates/app/src/comments.rs", true), vec![]);
}

#[test]
fn reexports_through_other_modules() {
    assert_eq!(
        of("crates/app/src/reexport.rs", false),
        expect(&[
            (2, "reexport::db::<module>", Import, "db_sync::fetch_one"),
            (
                3,
                "reexport::db::<module>",
                Import,
                "db_sync::get_database_connection as connect"
            ),
            (6, "reexport::<module>", Import, "self::db::connect"),
            (9, "reexport::through_reexport", Call, "connect"),
            (10, "reexport::through_reexport", Call, "db::fetch_one"),
            (
                14,
                "reexport::through_crate_path",
                Call,
                "crate::reexport::db::connect"
            ),
        ])
    );
}

#[test]
fn locals_shadow_imported_names() {
    assert_eq!(
        of("crates/app/src/shadowing.rs", false),
        expect(&[
            (
                1,
                "shadowing::<module>",
                Import,
                "db_sync::get_database_connection as conn"
            ),
            (10, "shadowing::closure", Call, "conn"),
        ])
    );
}
