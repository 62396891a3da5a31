//! Scanner tests on the fake workspace in `xtask/tests/fixtures/sync_ws`
//! (its files are parsed, never compiled). Line numbers refer to those
//! files: keep them in sync when editing a fixture.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::bindings::is_test_only;
use super::scan::{self, Finding, Kind};
use super::workspace;

use Kind::{Call, Field, Import, Macro, Method, Signature, Type};

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sync_ws")
}

fn findings() -> &'static [Finding] {
    static FINDINGS: OnceLock<Vec<Finding>> = OnceLock::new();
    FINDINGS.get_or_init(|| {
        let ws = workspace::discover(&fixture_root()).expect("fixture workspace readable");
        let out = scan::scan(&ws);
        assert!(out.errors.is_empty(), "parse errors: {:?}", out.errors);
        out.findings
    })
}

/// `(line, enclosing fn, kind, text)` of the non-test (or test) findings of
/// one fixture file.
fn of(file: &str, test: bool) -> Vec<(usize, String, Kind, String)> {
    findings()
        .iter()
        .filter(|f| f.file == file && f.test == test)
        .map(|f| (f.line, f.function.clone(), f.kind, f.text.clone()))
        .collect()
}

fn expect(rows: &[(usize, &str, Kind, &str)]) -> Vec<(usize, String, Kind, String)> {
    rows.iter()
        .map(|(l, f, k, t)| (*l, f.to_string(), *k, t.to_string()))
        .collect()
}

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

#[test]
fn test_code_is_reported_separately() {
    // cfg(any(test, feature)) may be compiled outside tests: it counts.
    assert_eq!(
        of("crates/app/src/testonly.rs", false),
        expect(&[
            (2, "testonly::real", Call, "db_sync::execute"),
            (22, "testonly::maybe_used", Call, "db_sync::transaction")
        ])
    );
    assert_eq!(
        of("crates/app/src/testonly.rs", true),
        expect(&[
            (
                7,
                "testonly::tests::<module>",
                Import,
                "db_sync::get_database_connection"
            ),
            (
                11,
                "testonly::tests::it_works",
                Call,
                "get_database_connection"
            ),
            (17, "testonly::slow_helper", Call, "db_sync::transaction"),
            (27, "testonly::top_level_test", Call, "db_sync::fetch_all"),
        ])
    );
    // `#[cfg(test)] mod tests;` in lib.rs makes all of tests.rs test code
    assert_eq!(of("crates/app/src/tests.rs", false), vec![]);
    assert_eq!(
        of("crates/app/src/tests.rs", true),
        expect(&[
            (1, "tests::<module>", Import, "db_sync::DbConnection"),
            (3, "tests::helper", Signature, "DbConnection")
        ])
    );
    assert_eq!(of("crates/app/tests/integration.rs", false), vec![]);
    assert_eq!(
        of("crates/app/tests/integration.rs", true),
        expect(&[(3, "integration", Call, "db_sync::get_database_connection")])
    );
}

#[test]
fn the_blocking_crate_itself_is_not_scanned() {
    assert!(
        findings()
            .iter()
            .all(|f| !f.file.starts_with("crates/db-sync/"))
    );
    let total = findings().iter().filter(|f| !f.test).count();
    assert_eq!(total, 54 + HANDLES_COUNTED);
}

#[test]
fn module_locations() {
    let pkg = Path::new("/w/app");
    let loc = |p: &str| workspace::module_location(Some(pkg), &pkg.join(p));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(loc("src/lib.rs"), ("src".into(), s(&[])));
    assert_eq!(loc("src/main.rs"), ("src".into(), s(&[])));
    assert_eq!(loc("src/a/b.rs"), ("src".into(), s(&["a", "b"])));
    assert_eq!(loc("src/a/mod.rs"), ("src".into(), s(&["a"])));
    assert_eq!(loc("src/bin/tool.rs"), ("bin/tool".into(), s(&[])));
    assert_eq!(loc("src/bin/tool/main.rs"), ("bin/tool".into(), s(&[])));
    assert_eq!(loc("tests/it.rs"), ("tests".into(), s(&[])));
    assert_eq!(loc("tests/common/mod.rs"), ("tests".into(), s(&["common"])));
    assert_eq!(loc("lib.rs"), ("root".into(), s(&[])));
    assert_eq!(loc("build.rs"), ("root".into(), s(&[])));
}

#[test]
fn cfg_test_detection() {
    let attrs = |src: &str| {
        syn::parse_str::<syn::ItemFn>(&format!("{src} fn f() {{}}"))
            .unwrap()
            .attrs
    };
    assert!(is_test_only(&attrs("#[cfg(test)]")));
    assert!(is_test_only(&attrs("#[test]")));
    assert!(is_test_only(&attrs(
        "#[tokio::test(flavor = \"multi_thread\")]"
    )));
    assert!(is_test_only(&attrs("#[cfg(all(unix, test))]")));
    assert!(is_test_only(&attrs("#[cfg(not(not(test)))]")));
    assert!(!is_test_only(&attrs("#[cfg(not(test))]")));
    assert!(!is_test_only(&attrs("#[cfg(any(test, feature = \"x\"))]")));
    assert!(!is_test_only(&attrs("#[cfg(unix)] #[inline]")));
}

#[test]
fn the_repository_scan_skips_the_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ws = workspace::discover(&root).expect("repository readable");
    assert!(ws.files.iter().any(|f| f.rel == "xtask/src/main.rs"));
    assert!(
        ws.files
            .iter()
            .all(|f| !f.rel.starts_with("xtask/tests/fixtures/"))
    );
    assert!(
        ws.files
            .iter()
            .all(|f| !f.rel.starts_with("crates/db-sync/"))
    );
}

/// Non-test findings of `handles.rs`.
const HANDLES_COUNTED: usize = 29;

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
