//! What a statement does to its connection's session, read from its SQL text.
//!
//! Both pools run statements through helpers that see the SQL text, and both must know
//! two things before a connection goes back to the pool: whether a transaction may be
//! open, and whether the statement changed session state that the next holder would
//! inherit (`SET autocommit = 0`, `LOCK TABLES`, `GET_LOCK`, user variables, temporary
//! tables). One classifier serves both sides so that they cannot disagree.
//!
//! The classification is lexical and conservative: it skips quoted strings, quoted
//! identifiers and comments, and errs towards "changes the session" (a false alarm
//! costs one reconnect; a miss would hand the next caller a dirty session).
//!
//! The same lexer takes the values out of a text for display ([`mask_values`]).

mod mask;

pub use mask::mask_values;

/// Everything the pools need to know of one statement, read once per statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effects {
    /// [`tx_control`].
    pub tx: Option<TxControl>,
    /// [`changes_session`].
    pub changes_session: bool,
    /// [`changes_database`].
    pub changes_database: bool,
    /// [`ends_session`].
    pub ends_session: bool,
}

/// The [`Effects`] of `sql`.
pub fn effects(sql: &str) -> Effects {
    let changes_session = changes_session(sql);
    Effects {
        tx: tx_control(sql),
        changes_session,
        // `USE` changes the session too: only then can it change the database.
        changes_database: changes_session && changes_database(sql),
        ends_session: ends_session(sql),
    }
}

/// A statement that opens or ends a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxControl {
    /// `BEGIN [WORK]`, `START TRANSACTION …`.
    Begin,
    /// `COMMIT [WORK]`, `ROLLBACK [WORK]` (not `ROLLBACK TO SAVEPOINT`, not `… AND
    /// CHAIN`, which keeps a transaction open).
    End,
}

/// Whether `sql` opens or ends a transaction. Word-aware: `START SLAVE` and
/// `BEGIN_FOO()` are neither.
pub fn tx_control(sql: &str) -> Option<TxControl> {
    let sql = statement_proper(sql);
    let words: Vec<&str> = Words::new(sql).take(8).collect();
    let is = |i: usize, w: &str| words.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    if is(0, "begin") {
        // `BEGIN NOT ATOMIC …` (a compound statement) is no transaction.
        return (words.len() == 1 || is(1, "work")).then_some(TxControl::Begin);
    }
    if is(0, "start") {
        return is(1, "transaction").then_some(TxControl::Begin);
    }
    if is(0, "commit") || is(0, "rollback") {
        let after = if is(1, "work") { 2 } else { 1 };
        if is(after, "to") {
            return None; // ROLLBACK [WORK] TO [SAVEPOINT] name
        }
        let chained = (after..words.len()).any(|i| is(i, "chain") && !is(i - 1, "no"));
        return (!chained).then_some(TxControl::End);
    }
    None
}

/// Whether `sql` may leave session state behind that the pool cannot reset: any
/// `SET` (but `SET STATEMENT … FOR stmt`, which lasts one statement: then `stmt`
/// decides), `LOCK TABLES`, `FLUSH TABLES WITH READ LOCK` (any `FLUSH`), `BACKUP LOCK`,
/// `USE`, SQL-level `PREPARE`, `HANDLER`, `XA`, `CALL` and compound statements (`IF`,
/// `CASE`, `LOOP`, `WHILE`, `REPEAT`, `BEGIN NOT ATOMIC`: they can do any of these),
/// `CREATE TEMPORARY TABLE`, and any statement that uses a user variable (`@name`),
/// takes a user-level lock (`GET_LOCK`) or sets `LAST_INSERT_ID(expr)`.
pub fn changes_session(sql: &str) -> bool {
    let words: Vec<&str> = Words::new(sql).take(4).collect();
    let Some(first) = words.first() else {
        return false;
    };
    let is = |i: usize, w: &str| words.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    if is(0, "set") {
        if !is(1, "statement") {
            return true;
        }
        // `SET STATEMENT var = value [, …] FOR stmt`: the settings last one statement.
        return match for_clause(sql) {
            Some(inner) => changes_session(inner),
            None => true,
        };
    }
    const SESSION_WORDS: [&str; 13] = [
        "lock", "use", "prepare", "handler", "xa", "call", "flush", "backup", "if", "case", "loop",
        "while", "repeat",
    ];
    if SESSION_WORDS.iter().any(|w| first.eq_ignore_ascii_case(w))
        || (is(0, "begin") && is(1, "not"))
        || (is(0, "create") && words.iter().any(|w| w.eq_ignore_ascii_case("temporary")))
        // A labelled compound statement: `label: BEGIN … END`, `label: LOOP …`.
        || sql.trim_start().split_once(':').is_some_and(|(label, rest)| {
            is_word_text(label) && Words::new(rest).next().is_some_and(|w| {
                ["begin", "loop", "while", "repeat"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
            })
        })
    {
        return true;
    }
    let mut lexer = Lexer::new(sql);
    while let Some(token) = lexer.next() {
        match token {
            Token::UserVariable => return true,
            // `GET_LOCK` takes a lock; `NEXTVAL`/`SETVAL`/`NEXT VALUE FOR` set the
            // session's `LASTVAL`.
            Token::Word(w)
                if ["get_lock", "nextval", "setval"]
                    .iter()
                    .any(|f| w.eq_ignore_ascii_case(f)) =>
            {
                return true;
            }
            Token::Word(w) if w.eq_ignore_ascii_case("next") && lexer.next_word_is("value") => {
                return true;
            }
            Token::Word(w) if w.eq_ignore_ascii_case("last_insert_id") => {
                if lexer.call_has_arguments() {
                    return true;
                }
            }
            Token::Word(_) => {}
        }
    }
    false
}

/// Whether `sql` ends the session itself: `COMMIT RELEASE`, `ROLLBACK RELEASE` (the
/// server closes the connection after it). Such a connection must be closed, never
/// pooled.
pub fn ends_session(sql: &str) -> bool {
    let sql = statement_proper(sql);
    let words: Vec<&str> = Words::new(sql).take(8).collect();
    let is = |i: usize, w: &str| words.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    (is(0, "commit") || is(0, "rollback"))
        && (1..words.len()).any(|i| is(i, "release") && !is(i - 1, "no"))
}

/// The statement itself: `stmt` of `SET STATEMENT var = value [, …] FOR stmt`, else
/// `sql` as it is.
fn statement_proper(sql: &str) -> &str {
    let mut words = Words::new(sql);
    let set_statement = words.next().is_some_and(|w| w.eq_ignore_ascii_case("set"))
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("statement"));
    match set_statement.then(|| for_clause(sql)).flatten() {
        Some(inner) => statement_proper(inner),
        None => sql,
    }
}

/// The statement after `FOR` in `SET STATEMENT … FOR stmt`, if found.
fn for_clause(sql: &str) -> Option<&str> {
    let mut lexer = Lexer::new(sql);
    while let Some(token) = lexer.next() {
        if let Token::Word(w) = token
            && w.eq_ignore_ascii_case("for")
        {
            return Some(&sql[lexer.at..]);
        }
    }
    None
}

/// `s` without the white space and comments it starts with.
fn skip_blank(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_start();
        let next = if let Some(rest) = trimmed.strip_prefix("/*") {
            rest.find("*/").map_or("", |end| &rest[end + 2..])
        } else if trimmed.starts_with('#')
            || trimmed
                .strip_prefix("--")
                .is_some_and(|r| r.is_empty() || r.starts_with(|c: char| c.is_whitespace()))
        {
            trimmed.find('\n').map_or("", |end| &trimmed[end + 1..])
        } else {
            return trimmed;
        };
        s = next;
    }
}

fn is_word_text(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.bytes().all(is_word_byte)
}

/// Whether `sql` changes the connection's current database (`USE`), which a session
/// reset (`COM_RESET_CONNECTION`) does not undo.
pub fn changes_database(sql: &str) -> bool {
    Words::new(statement_proper(sql))
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("use"))
}

/// Words of the SQL text outside strings, quoted identifiers and comments.
struct Words<'a>(Lexer<'a>);

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Words(Lexer::new(sql))
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        loop {
            match self.0.next()? {
                Token::Word(w) => return Some(w),
                Token::UserVariable => continue,
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A bare word: a keyword, a name, a function name.
    Word(&'a str),
    /// `@name`, `@'name'`, `` @`name` `` (not `@@system_variable`).
    UserVariable,
}

#[derive(Clone)]
struct Lexer<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        Lexer { sql, at: 0 }
    }

    /// Skips a quoted run starting at `self.at` (on the opening quote).
    fn skip_quoted(&mut self, quote: u8) {
        let bytes = self.sql.as_bytes();
        self.at += 1;
        while self.at < bytes.len() {
            let b = bytes[self.at];
            if b == b'\\' && quote != b'`' {
                self.at += 2;
                continue;
            }
            self.at += 1;
            if b == quote {
                // A doubled quote is an escaped quote.
                if bytes.get(self.at) == Some(&quote) {
                    self.at += 1;
                    continue;
                }
                return;
            }
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.sql.as_bytes();
        while self.at < bytes.len() {
            let b = bytes[self.at];
            match b {
                b'\'' | b'"' => self.skip_quoted(b),
                // A quoted identifier can name a function too (`` `GET_LOCK`(…) ``):
                // its text is a word.
                b'`' => {
                    let start = self.at + 1;
                    self.skip_quoted(b);
                    let end = self.at.saturating_sub(1).max(start);
                    return Some(Token::Word(&self.sql[start..end]));
                }
                b'#' => self.skip_line(),
                // `--` starts a comment only before white space (`1--@x` is arithmetic).
                b'-' if bytes.get(self.at + 1) == Some(&b'-')
                    && bytes
                        .get(self.at + 2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
                {
                    self.skip_line()
                }
                b'/' if bytes.get(self.at + 1) == Some(&b'*') => {
                    let rest = &bytes[self.at + 2..];
                    let executable = match rest {
                        [b'!', ..] => Some(1),
                        [b'M' | b'm', b'!', ..] => Some(2),
                        _ => None,
                    };
                    match executable {
                        // `/*!50000 … */` and MariaDB's `/*M!100100 … */` are executed
                        // by the server: read inside, after the version number.
                        Some(marker) => {
                            self.at += 2 + marker;
                            while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                                self.at += 1;
                            }
                        }
                        None => match self.sql[self.at + 2..].find("*/") {
                            Some(end) => self.at += 2 + end + 2,
                            None => self.at = bytes.len(),
                        },
                    }
                }
                b'@' => {
                    if bytes.get(self.at + 1) == Some(&b'@') {
                        // A system variable: skip `@@` and its name.
                        self.at += 2;
                        while self.at < bytes.len()
                            && (is_word_byte(bytes[self.at]) || bytes[self.at] == b'.')
                        {
                            self.at += 1;
                        }
                        continue;
                    }
                    self.at += 1;
                    match bytes.get(self.at) {
                        Some(&q @ (b'\'' | b'"' | b'`')) => {
                            self.skip_quoted(q);
                            return Some(Token::UserVariable);
                        }
                        Some(&c) if is_word_byte(c) => {
                            while self.at < bytes.len() && is_word_byte(bytes[self.at]) {
                                self.at += 1;
                            }
                            return Some(Token::UserVariable);
                        }
                        _ => {}
                    }
                }
                b if is_word_byte(b) => {
                    let start = self.at;
                    while self.at < bytes.len() && is_word_byte(bytes[self.at]) {
                        self.at += 1;
                    }
                    return Some(Token::Word(&self.sql[start..self.at]));
                }
                _ => self.at += 1,
            }
        }
        None
    }
}

impl Lexer<'_> {
    /// Whether the next token is the word `word`, without consuming it.
    fn next_word_is(&self, word: &str) -> bool {
        let mut ahead = Lexer {
            sql: self.sql,
            at: self.at,
        };
        matches!(ahead.next(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    /// After a function name: whether its parentheses hold anything (`f(x)`, not `f()`;
    /// comments and white space between count as nothing).
    fn call_has_arguments(&self) -> bool {
        let rest = skip_blank(&self.sql[self.at..]);
        rest.strip_prefix('(')
            .is_some_and(|inside| !skip_blank(inside).starts_with(')'))
    }

    fn skip_line(&mut self) {
        match self.sql[self.at..].find('\n') {
            Some(end) => self.at += end + 1,
            None => self.at = self.sql.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_read_word_by_word() {
        assert_eq!(tx_control("BEGIN"), Some(TxControl::Begin));
        assert_eq!(tx_control("begin work;"), Some(TxControl::Begin));
        assert_eq!(
            tx_control("  start transaction read only;"),
            Some(TxControl::Begin)
        );
        assert_eq!(
            tx_control("/* x */ START TRANSACTION"),
            Some(TxControl::Begin)
        );
        assert_eq!(tx_control("COMMIT;"), Some(TxControl::End));
        assert_eq!(tx_control("commit work"), Some(TxControl::End));
        assert_eq!(tx_control("rollback"), Some(TxControl::End));
        assert_eq!(tx_control("COMMIT AND NO CHAIN"), Some(TxControl::End));
        assert_eq!(tx_control("COMMIT AND CHAIN"), None);
        assert_eq!(tx_control("ROLLBACK TO SAVEPOINT a"), None);
        assert_eq!(tx_control("ROLLBACK WORK TO a"), None);
        assert_eq!(tx_control("START SLAVE"), None);
        assert_eq!(tx_control("BEGIN NOT ATOMIC SELECT 1; END"), None);
        assert_eq!(tx_control("begin_game()"), None);
        assert_eq!(tx_control("SELECT 'BEGIN'"), None);
        assert_eq!(tx_control("SELECT 1"), None);
        assert_eq!(
            tx_control("SET STATEMENT max_statement_time = 1 FOR START TRANSACTION"),
            Some(TxControl::Begin)
        );
        assert_eq!(
            tx_control("SET STATEMENT x = 1 FOR COMMIT"),
            Some(TxControl::End)
        );
        assert_eq!(tx_control(""), None);
    }

    #[test]
    fn session_changes_are_found_outside_strings_and_comments() {
        for sql in [
            "SET autocommit = 0",
            "set @x = 1",
            "SET SESSION sql_mode = ''",
            "SET NAMES latin1",
            "LOCK TABLES players WRITE",
            "SELECT GET_LOCK('a', 0)",
            "select get_lock ('a', 0)",
            "SELECT @n := @n + 1 FROM players",
            "SELECT 1 INTO @x",
            "SELECT @`odd name`",
            "CREATE TEMPORARY TABLE t (id INT)",
            "CREATE OR REPLACE TEMPORARY TABLE t (id INT)",
            "USE other",
            "CALL refill()",
            "PREPARE s FROM 'SELECT 1'",
            "XA START 'x'",
            "/*!40101 SET @old = @@sql_mode */",
            "/*!40101 SET autocommit = 0 */",
            "/*M!100100 SET sql_mode = '' */",
            "SELECT /*M! @x := 1, */ 1",
            "SELECT 1--@x",
            "FLUSH TABLES WITH READ LOCK",
            "BACKUP LOCK t",
            "LOCK TABLE t READ",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "DO GET_LOCK('x', 0)",
            "WITH c AS (SELECT @x := 1) SELECT * FROM c",
            "SET STATEMENT max_statement_time = 1 FOR SELECT GET_LOCK('a', 0)",
            "SET STATEMENT sql_mode = '' FOR SELECT @v := 7",
            "IF 1 THEN SET autocommit = 0; END IF",
            "BEGIN NOT ATOMIC START TRANSACTION; END",
            "lbl: BEGIN NOT ATOMIC SET @x = 1; END",
            "CASE WHEN 1 THEN SET autocommit = 0; END CASE",
            "SELECT LAST_INSERT_ID(4242)",
            "SELECT last_insert_id ( 7 )",
            "SELECT `GET_LOCK`('a', 0)",
            "SELECT `LAST_INSERT_ID`(4242)",
            "SELECT LAST_INSERT_ID/* x */(4242)",
            "DO LAST_INSERT_ID -- x\n(4242)",
            "SELECT NEXTVAL(s)",
            "SELECT NEXT VALUE FOR s",
            "SELECT SETVAL(s, 10)",
        ] {
            assert!(changes_session(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "SELECT @@max_connections",
            "SELECT CAST(@@session.max_user_connections AS SIGNED)",
            "SELECT 'user@example.com'",
            "SELECT \"@x\", `@y` FROM t",
            "SELECT `next` FROM t",
            "SELECT LASTVAL(s), PREVIOUS VALUE FOR s",
            "SELECT 1 -- @x\n",
            "SELECT 1 --\t@x",
            "SELECT 1 # GET_LOCK\n",
            "SELECT /* SET @x */ 1",
            "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
            "UPDATE players SET coins = coins + ? WHERE id = ?",
            "INSERT INTO t (a) VALUES ('it''s @home')",
            "CREATE TABLE t (id INT)",
            "SELECT RELEASE_LOCK_COUNT FROM t",
            "SELECT LAST_INSERT_ID()",
            "SELECT LAST_INSERT_ID( /* none */ )",
            "SELECT 'a: BEGIN'",
            "",
        ] {
            assert!(!changes_session(sql), "{sql}");
        }
        assert!(changes_database("use other") && !changes_database("SELECT 'use'"));
        assert!(changes_database(
            "SET STATEMENT sql_mode = '' FOR USE other"
        ));
        assert_eq!(effects("SELECT 1"), Effects::default());
        let e = effects("SET STATEMENT sql_mode = '' FOR USE other");
        assert!(e.changes_session && e.changes_database && e.tx.is_none());
        assert_eq!(effects("COMMIT RELEASE").tx, Some(TxControl::End));
        assert!(effects("COMMIT RELEASE").ends_session);
        assert!(
            ends_session("COMMIT RELEASE") && ends_session("rollback work and no chain release")
        );
        assert!(!ends_session("COMMIT NO RELEASE") && !ends_session("SELECT RELEASE_LOCK('a')"));
    }
}
