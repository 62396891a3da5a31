//! Best-effort scan of macro token streams for paths into `db_sync`.

use proc_macro2::{Spacing, TokenStream, TokenTree};

use super::super::scan::Kind;
use super::FileVisitor;

impl FileVisitor<'_> {
    /// Best-effort scan of a macro's tokens for paths into `db_sync`.
    pub(super) fn scan_tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            if let TokenTree::Group(g) = &tts[i] {
                self.scan_tokens(g.stream());
                i += 1;
                continue;
            }
            let Some((segs, leading_colon, end)) = token_path_at(&tts, i) else {
                i += 1;
                continue;
            };
            if !skip_token_path(&tts, i, end, segs.len())
                && self.resolve(&segs, leading_colon, true).is_some()
            {
                let lead = if leading_colon { "::" } else { "" };
                self.record(
                    tts[i].span(),
                    Kind::Macro,
                    format!("{lead}{}", segs.join("::")),
                );
            }
            i = end;
        }
    }
}

fn is_punct(tt: Option<&TokenTree>, ch: char) -> bool {
    matches!(tt, Some(TokenTree::Punct(p)) if p.as_char() == ch)
}

fn is_colon2(tts: &[TokenTree], i: usize) -> bool {
    matches!(tts.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
        && is_punct(tts.get(i + 1), ':')
}

/// A path starting at `i`: its segments, whether it has a leading `::`, and
/// the index after it.
fn token_path_at(tts: &[TokenTree], i: usize) -> Option<(Vec<String>, bool, usize)> {
    let leading_colon = is_colon2(tts, i);
    let mut j = if leading_colon { i + 2 } else { i };
    let TokenTree::Ident(first) = tts.get(j)? else {
        return None;
    };
    let mut segs = vec![first.to_string()];
    j += 1;
    while is_colon2(tts, j) {
        match tts.get(j + 2) {
            Some(TokenTree::Ident(id)) => {
                segs.push(id.to_string());
                j += 3;
            }
            _ => break,
        }
    }
    Some((segs, leading_colon, j))
}

/// Token paths that are not paths: method and field names (`x.fetch_one`),
/// macro variables, lifetimes, names being defined, field names in struct
/// literals, continuations after turbofish.
fn skip_token_path(tts: &[TokenTree], start: usize, end: usize, len: usize) -> bool {
    const BINDERS: &[&str] = &[
        "fn", "let", "mut", "ref", "struct", "enum", "union", "type", "trait", "const", "static",
        "mod",
    ];
    if start > 0 {
        let prev = &tts[start - 1];
        if is_punct(Some(prev), '.') || is_punct(Some(prev), '$') || is_punct(Some(prev), '\'') {
            return true;
        }
        if start > 1 && is_colon2(tts, start - 2) {
            return true;
        }
        if len == 1
            && matches!(prev, TokenTree::Ident(id) if BINDERS.contains(&id.to_string().as_str()))
        {
            return true;
        }
    }
    len == 1 && is_punct(tts.get(end), ':') && !is_colon2(tts, end)
}
