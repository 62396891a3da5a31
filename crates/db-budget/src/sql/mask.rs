//! SQL text with its values taken out, for showing a statement (the slow statements of
//! the snapshot and their log line): legacy code writes values into the text, and the
//! text must never show them.
//!
//! It reads the text as the session classifier does (the parent module's lexer: quoted
//! strings with doubled and backslash-escaped quotes, quoted identifiers, the three
//! comment forms, executable comments), so that what it takes for a string is what the
//! server takes for one.

use super::{Lexer, is_word_byte};

/// `sql` with every literal replaced by `?` and comments dropped, for display:
///
/// - strings (`'…'`, `"…"`, with escaped quotes, a character set introducer such as
///   `_utf8mb4'…'`, or `X'…'`, `B'…'`, `N'…'`), numbers (`42`, `1.5e-3`, `.5`; a sign
///   stays), hexadecimal and binary numbers (`0x1F`, `0b101`) become `?`;
/// - a list of nothing but literals and placeholders after `IN` becomes `IN (?)`, so
///   that lists of any length are one text;
/// - comments (`/* … */`, `# …`, `-- …`) go; an executable comment (`/*!50700 … */`,
///   `/*M!100100 … */`) stays, its inside masked alike;
/// - runs of white space become one space, and the text is trimmed.
///
/// Names (quoted or not), keywords, `?` placeholders and variables (`@name`,
/// `@@name`) stay as written. The text stops once it is longer than `limit` bytes (at
/// a token's end): the caller cuts it.
pub fn mask_values(sql: &str, limit: usize) -> String {
    let mut out = String::with_capacity(sql.len().min(limit.saturating_add(8)));
    let mut pieces = Pieces::new(sql);
    let mut space = false;
    while let Some(piece) = pieces.next() {
        let text = match piece {
            Piece::Blank => {
                space = true;
                continue;
            }
            Piece::Value => "?",
            Piece::Text(t) => t,
        };
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push_str(text);
        if text.eq_ignore_ascii_case("in") && pieces.skip_value_list() {
            out.push_str(" (?)");
        }
        if out.len() > limit {
            break;
        }
    }
    out
}

/// One piece of SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// Shown as written: a word, a quoted name, a variable, a punctuation mark.
    Text(&'a str),
    /// A literal: shown as `?`.
    Value,
    /// White space or a comment.
    Blank,
}

/// The pieces of a text, in order.
#[derive(Clone)]
struct Pieces<'a> {
    lexer: Lexer<'a>,
}

impl<'a> Pieces<'a> {
    fn new(sql: &'a str) -> Self {
        Pieces {
            lexer: Lexer::new(sql),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.lexer.sql.as_bytes()
    }

    /// After `IN`: when a parenthesised list of nothing but literals and `?` follows,
    /// consumes it and returns `true`; else consumes nothing.
    fn skip_value_list(&mut self) -> bool {
        let mut ahead = self.clone();
        let mut next = || loop {
            match ahead.next() {
                Some(Piece::Blank) => continue,
                other => return other,
            }
        };
        if next() != Some(Piece::Text("(")) {
            return false;
        }
        loop {
            if !matches!(next(), Some(Piece::Value | Piece::Text("?"))) {
                return false;
            }
            match next() {
                Some(Piece::Text(",")) => continue,
                Some(Piece::Text(")")) => break,
                _ => return false,
            }
        }
        *self = ahead;
        true
    }

    /// Moves past a quoted run at the current position, never past the text's end nor
    /// into a character (a backslash escape may skip one byte of one).
    fn skip_quoted(&mut self, quote: u8) {
        self.lexer.skip_quoted(quote);
        let sql = self.lexer.sql;
        self.lexer.at = self.lexer.at.min(sql.len());
        while !sql.is_char_boundary(self.lexer.at) {
            self.lexer.at += 1;
        }
    }

    /// The end of a number starting at `at` (a digit, or `.` before one), and whether
    /// it is one: digits followed by a word byte are a name (`1st_table`).
    fn number_end(&self, at: usize) -> (usize, bool) {
        let bytes = self.bytes();
        let digits = |mut i: usize, ok: fn(&u8) -> bool| {
            while bytes.get(i).is_some_and(ok) {
                i += 1;
            }
            i
        };
        let prefixed = |marks: [u8; 2], ok: fn(&u8) -> bool| {
            (bytes[at] == b'0'
                && bytes.get(at + 1).is_some_and(|b| marks.contains(b))
                && bytes.get(at + 2).is_some_and(ok))
            .then(|| digits(at + 2, ok))
        };
        let end = if let Some(end) = prefixed([b'x', b'X'], u8::is_ascii_hexdigit)
            .or_else(|| prefixed([b'b', b'B'], |b: &u8| matches!(*b, b'0' | b'1')))
        {
            end
        } else {
            let mut i = digits(at, u8::is_ascii_digit);
            if bytes.get(i) == Some(&b'.') {
                i = digits(i + 1, u8::is_ascii_digit);
            }
            if matches!(bytes.get(i), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
                if bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                    i = digits(i + 1 + sign, u8::is_ascii_digit);
                }
            }
            i
        };
        let fraction = bytes[at..end].contains(&b'.');
        let name = !fraction && bytes.get(end).is_some_and(|&b| is_word_byte(b));
        (end, !name)
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let sql = self.lexer.sql;
        let bytes = self.bytes();
        let start = self.lexer.at;
        let &b = bytes.get(start)?;
        let next = bytes.get(start + 1).copied();
        let piece = match b {
            b'\'' | b'"' => {
                self.skip_quoted(b);
                Piece::Value
            }
            b'`' => {
                self.skip_quoted(b);
                Piece::Text(&sql[start..self.lexer.at])
            }
            b'#' => {
                self.lexer.skip_line();
                Piece::Blank
            }
            // `--` starts a comment only before white space (`1--1` is arithmetic).
            b'-' if next == Some(b'-')
                && bytes
                    .get(start + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
            {
                self.lexer.skip_line();
                Piece::Blank
            }
            b'/' if next == Some(b'*') => {
                let marker = match &bytes[start + 2..] {
                    [b'!', ..] => Some(1),
                    [b'M' | b'm', b'!', ..] => Some(2),
                    _ => None,
                };
                match marker {
                    // Executed by the server: shown, and its inside read on.
                    Some(marker) => {
                        let mut at = start + 2 + marker;
                        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                            at += 1;
                        }
                        self.lexer.at = at;
                        Piece::Text(&sql[start..at])
                    }
                    None => {
                        self.lexer.at = sql[start + 2..]
                            .find("*/")
                            .map_or(sql.len(), |end| start + 2 + end + 2);
                        Piece::Blank
                    }
                }
            }
            b'@' => {
                let mut at = start + 1;
                if bytes.get(at) == Some(&b'@') {
                    at += 1;
                }
                match bytes.get(at) {
                    Some(&q @ (b'\'' | b'"' | b'`')) => {
                        self.lexer.at = at;
                        self.skip_quoted(q);
                    }
                    _ => {
                        while bytes.get(at).is_some_and(|&c| is_word_byte(c) || c == b'.') {
                            at += 1;
                        }
                        self.lexer.at = at;
                    }
                }
                Piece::Text(&sql[start..self.lexer.at])
            }
            b if b.is_ascii_whitespace() => {
                let mut at = start;
                while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
                    at += 1;
                }
                self.lexer.at = at;
                Piece::Blank
            }
            // `.5`, but not `t.5` (a name after a qualifier).
            b'.' if next.is_some_and(|n| n.is_ascii_digit())
                && (start == 0
                    || (!is_word_byte(bytes[start - 1]) && bytes[start - 1] != b'`')) =>
            {
                self.lexer.at = self.number_end(start).0;
                Piece::Value
            }
            b if b.is_ascii_digit() => {
                let (end, is_number) = self.number_end(start);
                if is_number {
                    self.lexer.at = end;
                    Piece::Value
                } else {
                    let mut at = end;
                    while bytes.get(at).is_some_and(|&c| is_word_byte(c)) {
                        at += 1;
                    }
                    self.lexer.at = at;
                    Piece::Text(&sql[start..at])
                }
            }
            b if is_word_byte(b) => {
                let mut at = start;
                while bytes.get(at).is_some_and(|&c| is_word_byte(c)) {
                    at += 1;
                }
                let word = &sql[start..at];
                let quote = bytes.get(at).copied().filter(|&q| q == b'\'' || q == b'"');
                let prefix = word.starts_with('_')
                    || ["x", "b", "n"].iter().any(|p| word.eq_ignore_ascii_case(p));
                match quote {
                    // A string with its prefix: `_utf8mb4'…'`, `X'1F'`, `N'…'`.
                    Some(q) if prefix => {
                        self.lexer.at = at;
                        self.skip_quoted(q);
                        Piece::Value
                    }
                    _ => {
                        self.lexer.at = at;
                        Piece::Text(word)
                    }
                }
            }
            // Punctuation: one ASCII byte.
            _ => {
                self.lexer.at = start + 1;
                Piece::Text(&sql[start..start + 1])
            }
        };
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(sql: &str) -> String {
        mask_values(sql, usize::MAX)
    }

    #[test]
    fn strings_become_placeholders_whatever_their_quotes_escapes_and_prefixes() {
        let cases = [
            ("SELECT 'secret'", "SELECT ?"),
            ("WHERE a = 'o''brien' AND b = ''", "WHERE a = ? AND b = ?"),
            (r"WHERE a = 'it\'s' AND b = 1", "WHERE a = ? AND b = ?"),
            (
                r#"WHERE a = "say \"hi\"" OR a = "x""y""#,
                "WHERE a = ? OR a = ?",
            ),
            ("WHERE a = _utf8mb4'tok' COLLATE x", "WHERE a = ? COLLATE x"),
            (
                "WHERE h = X'DEADBEEF' OR b = b'0101' OR n = N'näme'",
                "WHERE h = ? OR b = ? OR n = ?",
            ),
            ("SELECT 'unterminated secret", "SELECT ?"),
            (r"SELECT 'ends in a backslash\", "SELECT ?"),
            ("SELECT 'é\\é', `é`", "SELECT ?, `é`"),
        ];
        for (sql, masked) in cases {
            assert_eq!(mask(sql), masked, "{sql}");
        }
    }

    #[test]
    fn numbers_become_placeholders_and_names_with_digits_stay() {
        let cases = [
            ("SELECT 987654321", "SELECT ?"),
            ("SELECT -1.5e-3 + .5 + 2E10 + 3.", "SELECT -? + ? + ? + ?"),
            ("SELECT 0x1F, 0b101, 0xZZ", "SELECT ?, ?, 0xZZ"),
            (
                "SELECT t1.c2, 1st_table.x FROM t1",
                "SELECT t1.c2, 1st_table.x FROM t1",
            ),
            (
                "SELECT t.5c FROM t LIMIT 10 OFFSET 20",
                "SELECT t.5c FROM t LIMIT ? OFFSET ?",
            ),
            ("DO SLEEP(0.3)", "DO SLEEP(?)"),
            (
                "SELECT `col 7`, @v1, @@max_statement_time, ?",
                "SELECT `col 7`, @v1, @@max_statement_time, ?",
            ),
        ];
        for (sql, masked) in cases {
            assert_eq!(mask(sql), masked, "{sql}");
        }
    }

    #[test]
    fn a_list_of_values_after_in_becomes_one_placeholder() {
        let cases = [
            ("WHERE id IN (4711, 4712)", "WHERE id IN (?)"),
            (
                "WHERE id NOT IN(1,2,3) AND x in ( 'a' , ?, 0x1 )",
                "WHERE id NOT IN (?) AND x in (?)",
            ),
            ("WHERE id IN (?, ?, ?)", "WHERE id IN (?)"),
            // Not a list of values: left as it is, its literals masked one by one.
            (
                "WHERE id IN (SELECT id FROM t WHERE k = 5)",
                "WHERE id IN (SELECT id FROM t WHERE k = ?)",
            ),
            ("WHERE id IN (a, 2)", "WHERE id IN (a, ?)"),
            ("WHERE id IN ()", "WHERE id IN ()"),
        ];
        for (sql, masked) in cases {
            assert_eq!(mask(sql), masked, "{sql}");
        }
    }

    #[test]
    fn comments_go_executable_comments_stay_masked_and_white_space_is_one_space() {
        let cases = [
            ("SELECT /* user=alice */ 1", "SELECT ?"),
            ("SELECT 1 -- token=abc\n FROM t # pw=x\n", "SELECT ? FROM t"),
            ("SELECT 1--1", "SELECT ?--?"),
            ("SELECT /*!50000 'v' */ 1", "SELECT /*!50000 ? */ ?"),
            ("SELECT /*M!100100 2 */ 1", "SELECT /*M!100100 ? */ ?"),
            ("SELECT 1 /* never closed 'x'", "SELECT ?"),
            ("  DO\tSLEEP(0.3)\n", "DO SLEEP(?)"),
            ("SELECT @'x y', @`z`", "SELECT @'x y', @`z`"),
        ];
        for (sql, masked) in cases {
            assert_eq!(mask(sql), masked, "{sql}");
        }
    }

    #[test]
    fn the_text_stops_soon_after_the_limit() {
        let sql = format!("INSERT INTO t VALUES {}", "(1, 'x'), ".repeat(10_000));
        let masked = mask_values(&sql, 64);
        assert!(masked.len() > 64 && masked.len() < 80, "{masked}");
        assert!(
            masked.starts_with("INSERT INTO t VALUES (?, ?), (?, ?)"),
            "{masked}"
        );
    }
}
