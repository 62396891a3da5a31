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
/// `SET` (but `SET STATEMENT … FOR`, which lasts one statement), `LOCK TABLES`,
/// `USE`, SQL-level `PREPARE`, `HANDLER`, `XA`, `CALL` (a procedure can do any of
/// these), `CREATE TEMPORARY TABLE`, and any statement that uses a user variable
/// (`@name`) or takes a user-level lock (`GET_LOCK`).
pub fn changes_session(sql: &str) -> bool {
    let mut words = Words::new(sql);
    let Some(first) = words.next() else {
        return false;
    };
    let is = |w: &str| first.eq_ignore_ascii_case(w);
    if is("set") {
        return !words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("statement"));
    }
    if ["lock", "use", "prepare", "handler", "xa", "call"]
        .iter()
        .any(|w| is(w))
    {
        return true;
    }
    if is("create")
        && Words::new(sql)
            .take(4)
            .any(|w| w.eq_ignore_ascii_case("temporary"))
    {
        return true;
    }
    Lexer::new(sql).any(|token| match token {
        Token::UserVariable => true,
        Token::Word(w) => w.eq_ignore_ascii_case("get_lock"),
    })
}

/// Whether `sql` changes the connection's current database (`USE`), which a session
/// reset (`COM_RESET_CONNECTION`) does not undo.
pub fn changes_database(sql: &str) -> bool {
    Words::new(sql)
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
                b'\'' | b'"' | b'`' => self.skip_quoted(b),
                b'#' => self.skip_line(),
                b'-' if bytes.get(self.at + 1) == Some(&b'-') => self.skip_line(),
                // `/*!50000 … */` is executed by the server: read inside it.
                b'/' if bytes.get(self.at + 1) == Some(&b'*')
                    && bytes.get(self.at + 2) != Some(&b'!') =>
                {
                    match self.sql[self.at + 2..].find("*/") {
                        Some(end) => self.at += 2 + end + 2,
                        None => self.at = bytes.len(),
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
        ] {
            assert!(changes_session(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "SELECT @@max_connections",
            "SELECT CAST(@@session.max_user_connections AS SIGNED)",
            "SELECT 'user@example.com'",
            "SELECT \"@x\", `@y` FROM t",
            "SELECT 1 -- @x\n",
            "SELECT 1 # GET_LOCK\n",
            "SELECT /* SET @x */ 1",
            "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
            "UPDATE players SET coins = coins + ? WHERE id = ?",
            "INSERT INTO t (a) VALUES ('it''s @home')",
            "CREATE TABLE t (id INT)",
            "SELECT RELEASE_LOCK_COUNT FROM t",
            "",
        ] {
            assert!(!changes_session(sql), "{sql}");
        }
        assert!(changes_database("use other") && !changes_database("SELECT 'use'"));
    }
}
