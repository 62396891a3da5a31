//! Just enough of a `Cargo.toml` reader to find package names and the
//! dependency keys under which `db-sync` is visible (`legacy = { package =
//! "db-sync", .. }`). Not a TOML parser: it tokenises logical lines (handling
//! strings, comments and bracketed values spanning lines) and reads
//! `key = value` pairs.

/// One dependency entry: `key = ...` in a `*dependencies` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dep {
    pub key: String,
    pub package: Option<String>,
    pub workspace: bool,
}

#[derive(Debug, Default)]
pub struct Manifest {
    pub package_name: Option<String>,
    pub lib_name: Option<String>,
    /// `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]` and
    /// their `[target.*.…]` variants.
    pub deps: Vec<Dep>,
    /// `[workspace.dependencies]`.
    pub workspace_deps: Vec<Dep>,
}

impl Manifest {
    /// The crate names (as written in Rust code) under which the package
    /// `target` is visible to this package, resolving `workspace = true`
    /// against the root manifest's `[workspace.dependencies]`.
    pub fn crate_names_for(&self, target: &str, root: Option<&Manifest>) -> Vec<String> {
        let mut out = Vec::new();
        for dep in &self.deps {
            let package = if dep.workspace {
                root.and_then(|r| r.workspace_deps.iter().find(|w| w.key == dep.key))
                    .map(|w| w.package.clone().unwrap_or_else(|| w.key.clone()))
            } else {
                Some(dep.package.clone().unwrap_or_else(|| dep.key.clone()))
            };
            if package.as_deref() == Some(target) {
                let name = dep.key.replace('-', "_");
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }
}

pub fn parse(text: &str) -> Manifest {
    let mut m = Manifest::default();
    let mut section: Vec<String> = Vec::new();
    for line in logical_lines(text) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            let inner = line.trim_start_matches('[').trim_end_matches(']');
            section = split_dotted(inner);
            continue;
        }
        let Some((key, value)) = split_once_unquoted(line, '=') else {
            continue;
        };
        let key = split_dotted(key);
        let value = value.trim();
        let sect: Vec<&str> = section.iter().map(String::as_str).collect();
        match sect.as_slice() {
            ["package"] if key == ["name"] => m.package_name = string_value(value),
            ["lib"] if key == ["name"] => m.lib_name = string_value(value),
            _ => {}
        }
        let Some((is_workspace, table_key)) = dep_section(&sect) else {
            continue;
        };
        // Either `[deps] key = value` / `key.attr = value`, or
        // `[deps.key] attr = value`.
        let (dep_key, attr): (String, Vec<String>) = match table_key {
            Some(k) => (k.to_string(), key),
            None => match key.split_first() {
                Some((first, rest)) => (first.clone(), rest.to_vec()),
                None => continue,
            },
        };
        let list = if is_workspace {
            &mut m.workspace_deps
        } else {
            &mut m.deps
        };
        let idx = match list.iter().position(|d| d.key == dep_key) {
            Some(i) => i,
            None => {
                list.push(Dep {
                    key: dep_key,
                    ..Dep::default()
                });
                list.len() - 1
            }
        };
        let dep = &mut list[idx];
        if attr.is_empty() {
            if value.starts_with('{') {
                let inner = value.trim_start_matches('{').trim_end_matches('}');
                for pair in split_top_level(inner, ',') {
                    if let Some((k, v)) = split_once_unquoted(&pair, '=') {
                        apply_attr(dep, &split_dotted(k), v.trim());
                    }
                }
            }
        } else {
            apply_attr(dep, &attr, value);
        }
    }
    m
}

fn apply_attr(dep: &mut Dep, attr: &[String], value: &str) {
    match attr {
        [a] if a == "package" => dep.package = string_value(value),
        [a] if a == "workspace" => dep.workspace = value == "true",
        _ => {}
    }
}

/// `Some((is_workspace_deps, Some(key) for a per-dependency table))` when the
/// section header names a dependency table.
fn dep_section<'a>(sect: &[&'a str]) -> Option<(bool, Option<&'a str>)> {
    let is_deps = |s: &str| {
        matches!(
            s,
            "dependencies"
                | "dev-dependencies"
                | "dev_dependencies"
                | "build-dependencies"
                | "build_dependencies"
        )
    };
    let (idx, is_workspace) = match sect {
        [d, ..] if is_deps(d) => (0, false),
        ["workspace", d, ..] if *d == "dependencies" => (1, true),
        ["target", _, d, ..] if is_deps(d) => (2, false),
        _ => return None,
    };
    match sect.len() - idx {
        1 => Some((is_workspace, None)),
        2 => Some((is_workspace, Some(sect[idx + 1]))),
        _ => None,
    }
}

fn string_value(v: &str) -> Option<String> {
    let v = v.trim();
    let quote = v.chars().next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let rest = &v[1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_string())
}

/// Splits `a."b.c".d` into `["a", "b.c", "d"]`.
fn split_dotted(s: &str) -> Vec<String> {
    split_top_level(s, '.')
        .into_iter()
        .map(|p| p.trim().trim_matches('"').trim_matches('\'').to_string())
        .collect()
}

/// Splits on `sep` outside quotes and brackets.
fn split_top_level(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                _ if c == sep && depth == 0 => {
                    out.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            },
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn split_once_unquoted(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == sep => return Some((&s[..i], &s[i + 1..])),
            None => {}
        }
    }
    None
}

/// Joins physical lines into logical ones (values in brackets may span
/// lines; multi-line strings too) and drops comments.
fn logical_lines(text: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum St {
        Normal,
        Str(char),
        MlStr(char),
        Comment,
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut st = St::Normal;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match st {
            St::Comment => {
                if c == '\n' {
                    st = St::Normal;
                    continue; // handle the newline in Normal
                }
            }
            St::Str(q) => {
                cur.push(c);
                if c == '\\' && q == '"' && i + 1 < chars.len() {
                    cur.push(chars[i + 1]);
                    i += 1;
                } else if c == q || c == '\n' {
                    st = St::Normal;
                }
            }
            St::MlStr(q) => {
                if c == q && chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                    cur.push(q);
                    i += 2;
                    st = St::Normal;
                } else if c != '\n' {
                    // keep multi-line string contents on one logical line
                    cur.push(c);
                }
            }
            St::Normal => match c {
                '#' => st = St::Comment,
                '"' | '\'' => {
                    if chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c) {
                        cur.push(c);
                        i += 2;
                        st = St::MlStr(c);
                    } else {
                        cur.push(c);
                        st = St::Str(c);
                    }
                }
                '\n' => {
                    if depth <= 0 || cur.trim_start().starts_with('[') {
                        out.push(std::mem::take(&mut cur));
                        depth = 0;
                    } else {
                        cur.push(' ');
                    }
                }
                '[' | '{' => {
                    // a table header's brackets do not open a value
                    if !cur.trim().is_empty() {
                        depth += 1;
                    }
                    cur.push(c);
                }
                ']' | '}' => {
                    if depth > 0 {
                        depth -= 1;
                    }
                    cur.push(c);
                }
                _ => cur.push(c),
            },
        }
        i += 1;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_renames_in_all_forms() {
        let text = r#"
[package]
name = "app" # the app
description = """
multi [ line
"""

[dependencies]
legacy = { package = "db-sync", path = "../db-sync" }
other = { workspace = true, features = [
    "a", "b",
] }
"db-sync".workspace = true

[dev-dependencies.old]
package = "db-sync"
path = "x"

[target.'cfg(unix)'.dependencies]
unixdb = { package = 'db-sync' }
"#;
        let m = parse(text);
        assert_eq!(m.package_name.as_deref(), Some("app"));
        let root = parse(
            "[workspace.dependencies]\nother = { package = \"db-sync\", path = \"x\" }\ndb-sync = { path = \"y\" }\n",
        );
        let names = m.crate_names_for("db-sync", Some(&root));
        assert_eq!(names, ["legacy", "other", "db_sync", "old", "unixdb"]);
    }

    #[test]
    fn header_brackets_do_not_swallow_lines() {
        let m = parse("[package]\nname = \"x\"\n[lib]\nname = \"y\"\n");
        assert_eq!(m.package_name.as_deref(), Some("x"));
        assert_eq!(m.lib_name.as_deref(), Some("y"));
    }
}
