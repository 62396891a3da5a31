//! What is test code (reported apart), what is not scanned (the blocking crate, the
//! fixtures), and where a module lives.

use super::*;

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
