//! Scanner tests on the fake workspace in `xtask/tests/fixtures/sync_ws`
//! (its files are parsed, never compiled). Line numbers refer to those
//! files: keep them in sync when editing a fixture.//!
//! `paths`: imports, qualified paths, renamed crates, macros, re-exports and
//! shadowing; `typed`: signatures with the guard and blocking values followed through
//! their types; `scope`: what is test code, what is not scanned, module locations.

mod paths;
mod scope;
mod typed;

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

/// Non-test findings of `handles.rs`.
const HANDLES_COUNTED: usize = 29;
