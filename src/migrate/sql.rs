//! Splitting a migration script into statements, the way Postgres' own lexer sees them.
//!
//! The runner executes statements one at a time (so a failure names its statement and line),
//! decides which ones cannot run inside a transaction, and lint reads their tokens. All three
//! need the same answer to "where does this statement end", which a naive split on `;` gets
//! wrong: semicolons inside strings, quoted identifiers, comments (nested `/* */`), dollar
//! quotes (`$fn$ … $fn$`, PL/pgSQL bodies) and SQL-standard bodies (`BEGIN ATOMIC … END`) do
//! not end a statement.

use std::fmt;

/// One token outside comments. Words keep their spelling; compare them with [`Tok::is`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A keyword or unquoted identifier.
    Word(String),
    /// A `"quoted"` identifier, unquoted.
    Quoted(String),
    /// A string constant of any kind ('…', E'…', $$…$$), unquoted only for plain '…'.
    Str(String),
    Num(String),
    /// Punctuation and operators, one character each (`(`, `)`, `,`, `.`, `=`, …).
    Sym(char),
    /// `$1`.
    Param,
}

impl Tok {
    /// Whether this is the keyword `kw` (case-insensitive).
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// An identifier as Postgres folds it: unquoted words lower-cased, quoted ones as written.
    pub fn ident(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.to_ascii_lowercase()),
            Tok::Quoted(q) => Some(q.clone()),
            _ => None,
        }
    }
}

/// One statement of a script.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The statement's text without its leading comments and whitespace or the final `;`.
    pub text: String,
    /// 1-based line of the statement's first token.
    pub line: usize,
    pub tokens: Vec<Tok>,
    /// Byte offset of each token in `text`.
    pub offsets: Vec<usize>,
    /// `lakelet:` directives in the comments before the statement (`allow drop-column …`).
    pub directives: Vec<String>,
}

impl Statement {
    /// Whether the statement starts with these keywords.
    pub fn starts_with(&self, kws: &[&str]) -> bool {
        kws.len() <= self.tokens.len() && kws.iter().zip(&self.tokens).all(|(k, t)| t.is(k))
    }

    /// Whether the keyword appears anywhere in the statement (outside strings and comments;
    /// inside parentheses too; see [`Statement::find_top`] for the top level only).
    pub fn has(&self, kw: &str) -> bool {
        self.tokens.iter().any(|t| t.is(kw))
    }

    /// Why the statement cannot run inside a transaction block, if it cannot.
    pub fn non_transactional(&self) -> Option<&'static str> {
        let s = |k: &[&str]| self.starts_with(k);
        let concurrently = self.has("CONCURRENTLY");
        if (s(&["CREATE", "INDEX"]) || s(&["CREATE", "UNIQUE", "INDEX"])) && concurrently {
            return Some("CREATE INDEX CONCURRENTLY");
        }
        if s(&["DROP", "INDEX"]) && concurrently {
            return Some("DROP INDEX CONCURRENTLY");
        }
        if s(&["REINDEX"])
            && (concurrently
                || self
                    .tokens
                    .get(1)
                    .is_some_and(|t| t.is("SYSTEM") || t.is("DATABASE")))
        {
            return Some("REINDEX CONCURRENTLY / DATABASE / SYSTEM");
        }
        if s(&["ALTER", "TABLE"]) && self.has("DETACH") && concurrently {
            return Some("DETACH PARTITION CONCURRENTLY");
        }
        if s(&["VACUUM"]) {
            return Some("VACUUM");
        }
        if s(&["ALTER", "SYSTEM"]) {
            return Some("ALTER SYSTEM");
        }
        if s(&["CLUSTER"]) && self.tokens.len() == 1 {
            return Some("CLUSTER without a table");
        }
        for obj in ["DATABASE", "TABLESPACE", "SUBSCRIPTION"] {
            if s(&["CREATE", obj]) || s(&["DROP", obj]) {
                return Some(match obj {
                    "DATABASE" => "CREATE/DROP DATABASE",
                    "TABLESPACE" => "CREATE/DROP TABLESPACE",
                    _ => "CREATE/DROP SUBSCRIPTION",
                });
            }
        }
        if s(&["ALTER", "DATABASE"]) && self.has("TABLESPACE") {
            return Some("ALTER DATABASE … SET TABLESPACE");
        }
        // The runner owns the transaction; a script that opens or ends one breaks atomicity.
        if s(&["BEGIN"])
            || s(&["START", "TRANSACTION"])
            || s(&["COMMIT"])
            || s(&["END"])
            || s(&["ROLLBACK"])
            || s(&["ABORT"])
        {
            return Some("transaction control (BEGIN/COMMIT/ROLLBACK)");
        }
        None
    }

    /// The statement's text from token `i` up to (not including) token `j` (or the end).
    pub fn slice(&self, i: usize, j: Option<usize>) -> &str {
        let a = self.offsets.get(i).copied().unwrap_or(self.text.len());
        let b = j
            .and_then(|j| self.offsets.get(j).copied())
            .unwrap_or(self.text.len());
        self.text[a..b].trim()
    }

    /// The index of the first top-level (outside parentheses) keyword `kw` at or after `from`.
    pub fn find_top(&self, kw: &str, from: usize) -> Option<usize> {
        let mut depth = 0i32;
        for (i, t) in self.tokens.iter().enumerate() {
            match t {
                Tok::Sym('(') => depth += 1,
                Tok::Sym(')') => depth -= 1,
                _ if i >= from && depth == 0 && t.is(kw) => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// The first line of the statement, shortened, for messages.
    pub fn excerpt(&self) -> String {
        let first = self.text.lines().next().unwrap_or("").trim();
        let mut e: String = first.chars().take(100).collect();
        if e.len() < first.len() || self.text.lines().nth(1).is_some() {
            e.push('…');
        }
        e
    }
}

/// A script the lexer could not split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SplitError {}

/// Splits `sql` into statements. Empty statements (`;;`, trailing comments) are dropped.
pub fn split(sql: &str) -> Result<Vec<Statement>, SplitError> {
    Lexer::new(sql).run()
}

/// Every `lakelet:` directive anywhere in the script's comments (`no-transaction`, …).
pub fn file_directives(sql: &str) -> Result<Vec<String>, SplitError> {
    let mut l = Lexer::new(sql);
    l.run()?;
    Ok(l.all_directives)
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    line: usize,
    all_directives: Vec<String>,
    /// The line of the last `;`: a directive comment on that line after it belongs to the
    /// statement it ends (`drop table t; -- lakelet:allow drop-table`).
    last_end_line: usize,
}

/// The statement being collected.
#[derive(Default)]
struct Pending {
    start: Option<usize>,
    line: usize,
    tokens: Vec<Tok>,
    offsets: Vec<usize>,
    directives: Vec<String>,
    /// Depth inside `BEGIN ATOMIC … END` (counting CASE … END inside it).
    atomic: usize,
}

/// The directive in a comment's text (`lakelet:allow x` → `allow x`).
fn directive(body: &str) -> Option<String> {
    body.trim()
        .strip_prefix("lakelet:")
        .map(|d| d.trim().to_string())
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn ident_char(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        Lexer {
            src,
            b: src.as_bytes(),
            i: 0,
            line: 1,
            all_directives: vec![],
            last_end_line: 0,
        }
    }

    fn peek(&self, k: usize) -> u8 {
        *self.b.get(self.i + k).unwrap_or(&0)
    }

    /// Advances over `n` bytes, counting newlines.
    fn bump(&mut self, n: usize) {
        for _ in 0..n {
            if self.i < self.b.len() {
                if self.b[self.i] == b'\n' {
                    self.line += 1;
                }
                self.i += 1;
            }
        }
    }

    fn err(&self, line: usize, message: impl Into<String>) -> SplitError {
        SplitError {
            line,
            message: message.into(),
        }
    }

    fn run(&mut self) -> Result<Vec<Statement>, SplitError> {
        let mut out: Vec<Statement> = vec![];
        let mut cur = Pending::default();
        while self.i < self.b.len() {
            let c = self.peek(0);
            let at = self.i;
            let line = self.line;
            match c {
                b'-' if self.peek(1) == b'-' => {
                    let end = self.src[self.i..]
                        .find('\n')
                        .map_or(self.b.len(), |n| self.i + n);
                    let body = self.src[self.i + 2..end].to_string();
                    let trailing = cur.start.is_none() && self.line == self.last_end_line;
                    match (trailing, out.last_mut(), directive(&body)) {
                        (true, Some(prev), Some(d)) => {
                            self.all_directives.push(d.clone());
                            prev.directives.push(d);
                        }
                        _ => self.comment(&mut cur, &body),
                    }
                    self.bump(end - self.i);
                    continue;
                }
                b'/' if self.peek(1) == b'*' => {
                    self.block_comment(&mut cur)?;
                    continue;
                }
                c if c.is_ascii_whitespace() => {
                    self.bump(1);
                    continue;
                }
                _ => {}
            }
            if cur.start.is_none() {
                cur.start = Some(at);
                cur.line = line;
            }
            let tok = match c {
                b';' if cur.atomic == 0 => {
                    self.bump(1);
                    self.last_end_line = self.line;
                    self.finish(&mut cur, at, &mut out);
                    continue;
                }
                b'\'' => Tok::Str(self.quoted(b'\'', false)?),
                b'"' => Tok::Quoted(self.quoted(b'"', false)?),
                b'E' | b'e' if self.peek(1) == b'\'' => {
                    self.bump(1);
                    Tok::Str(self.quoted(b'\'', true)?)
                }
                // B'…', X'…', N'…', U&'…' constants: a prefix then an ordinary quote.
                b'B' | b'b' | b'X' | b'x' | b'N' | b'n' if self.peek(1) == b'\'' => {
                    self.bump(1);
                    Tok::Str(self.quoted(b'\'', false)?)
                }
                b'U' | b'u' if self.peek(1) == b'&' && matches!(self.peek(2), b'\'' | b'"') => {
                    self.bump(2);
                    if self.peek(0) == b'"' {
                        Tok::Quoted(self.quoted(b'"', false)?)
                    } else {
                        Tok::Str(self.quoted(b'\'', false)?)
                    }
                }
                b'$' if self.peek(1).is_ascii_digit() => {
                    self.bump(1);
                    while self.peek(0).is_ascii_digit() {
                        self.bump(1);
                    }
                    Tok::Param
                }
                b'$' => match self.dollar_tag() {
                    Some(tag) => Tok::Str(self.dollar_body(&tag, line)?),
                    None => {
                        self.bump(1);
                        Tok::Sym('$')
                    }
                },
                c if ident_start(c) => {
                    let s = self.i;
                    while self.i < self.b.len() && ident_char(self.peek(0)) {
                        self.bump(1);
                    }
                    Tok::Word(self.src[s..self.i].to_string())
                }
                c if c.is_ascii_digit() || (c == b'.' && self.peek(1).is_ascii_digit()) => {
                    let s = self.i;
                    while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'.' {
                        // `1..2` is not a number; stop before a second dot pair.
                        if self.peek(0) == b'.' && self.peek(1) == b'.' {
                            break;
                        }
                        self.bump(1);
                    }
                    Tok::Num(self.src[s..self.i].to_string())
                }
                _ => {
                    let ch = self.src[self.i..].chars().next().expect("in bounds");
                    self.bump(ch.len_utf8());
                    Tok::Sym(ch)
                }
            };
            self.track_atomic(&mut cur, &tok);
            cur.tokens.push(tok);
            cur.offsets.push(at - cur.start.expect("set above"));
        }
        if cur.atomic > 0 {
            return Err(self.err(cur.line, "BEGIN ATOMIC without its END"));
        }
        let end = self.b.len();
        self.finish(&mut cur, end, &mut out);
        Ok(out)
    }

    /// `BEGIN ATOMIC … END` bodies of SQL functions contain `;`. Inside one, CASE … END pairs
    /// nest; the body ends at its own END.
    fn track_atomic(&self, cur: &mut Pending, tok: &Tok) {
        let n = cur.tokens.len();
        let opens_body = tok.is("ATOMIC") && n > 0 && cur.tokens[n - 1].is("BEGIN");
        if opens_body || (cur.atomic > 0 && tok.is("CASE")) {
            cur.atomic += 1;
        } else if cur.atomic > 0 && tok.is("END") {
            cur.atomic -= 1;
        }
    }

    fn finish(&mut self, cur: &mut Pending, end: usize, out: &mut Vec<Statement>) {
        let p = std::mem::take(cur);
        if let Some(s) = p.start {
            if !p.tokens.is_empty() {
                out.push(Statement {
                    text: self.src[s..end].trim_end().to_string(),
                    line: p.line,
                    tokens: p.tokens,
                    offsets: p.offsets,
                    directives: p.directives,
                });
                return;
            }
        }
        // An empty statement (`;;`) passes its directives on to the next one; a trailing
        // comment's belong to no statement and stay file-wide only.
        cur.directives = p.directives;
    }

    fn comment(&mut self, cur: &mut Pending, body: &str) {
        if let Some(d) = directive(body) {
            self.all_directives.push(d.clone());
            if cur.start.is_none() {
                cur.directives.push(d);
            }
        }
    }

    fn block_comment(&mut self, cur: &mut Pending) -> Result<(), SplitError> {
        let line = self.line;
        let start = self.i + 2;
        let mut depth = 0usize;
        loop {
            if self.i >= self.b.len() {
                return Err(self.err(line, "unterminated /* comment"));
            }
            if self.peek(0) == b'/' && self.peek(1) == b'*' {
                depth += 1;
                self.bump(2);
            } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                depth -= 1;
                self.bump(2);
                if depth == 0 {
                    break;
                }
            } else {
                self.bump(1);
            }
        }
        let body = self.src[start..self.i - 2].to_string();
        self.comment(cur, &body);
        Ok(())
    }

    /// A '…' or "…" token starting at the quote; doubled quotes escape. With `backslash`,
    /// `\x` escapes too (E'…').
    fn quoted(&mut self, q: u8, backslash: bool) -> Result<String, SplitError> {
        let line = self.line;
        self.bump(1);
        let mut out = String::new();
        let mut seg = self.i;
        loop {
            if self.i >= self.b.len() {
                let what = if q == b'"' {
                    "quoted identifier"
                } else {
                    "string"
                };
                return Err(self.err(line, format!("unterminated {what}")));
            }
            let c = self.peek(0);
            if backslash && c == b'\\' {
                self.bump(2);
                continue;
            }
            if c == q {
                out += &self.src[seg..self.i];
                if self.peek(1) == q {
                    out.push(q as char);
                    self.bump(2);
                    seg = self.i;
                    continue;
                }
                self.bump(1);
                return Ok(out);
            }
            self.bump(1);
        }
    }

    /// The tag of a dollar quote starting here (`$$` → "", `$fn$` → "fn"), if it is one.
    fn dollar_tag(&self) -> Option<String> {
        if self.i > 0 && ident_char(self.b[self.i - 1]) {
            return None; // part of an identifier like a$b
        }
        let mut j = self.i + 1;
        while j < self.b.len() && self.b[j] != b'$' {
            let c = self.b[j];
            let ok = if j == self.i + 1 {
                ident_start(c)
            } else {
                ident_start(c) || c.is_ascii_digit()
            };
            if !ok {
                return None;
            }
            j += 1;
        }
        (j < self.b.len()).then(|| self.src[self.i + 1..j].to_string())
    }

    fn dollar_body(&mut self, tag: &str, line: usize) -> Result<String, SplitError> {
        let delim = format!("${tag}$");
        self.bump(delim.len());
        match self.src[self.i..].find(&delim) {
            Some(n) => {
                let body = self.src[self.i..self.i + n].to_string();
                self.bump(n + delim.len());
                Ok(body)
            }
            None => Err(self.err(line, format!("unterminated dollar quote {delim}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split(sql).unwrap().into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn semicolons_inside_quotes_comments_and_bodies_do_not_split() {
        let sql = "create table t (a text default ';');\n\
                   -- a comment; with a semicolon\n\
                   insert into \"we;ird\" values (E'it\\'s; fine'), ($x$ ; $x$);\n\
                   /* nested /* comment; */ still; */ select 1;\n\
                   create function f() returns int language plpgsql as $$\n\
                   begin return 1; end $$;\n\
                   create function g(x int) returns int language sql begin atomic\n\
                   select case when x > 0 then 1 else 2 end; select 3;\n\
                   end;\n\
                   select $1, a$b from t";
        let t = texts(sql);
        assert_eq!(t.len(), 6, "{t:#?}");
        assert!(t[0].ends_with("default ';')"));
        assert!(t[1].starts_with("insert into"));
        assert_eq!(t[2], "select 1");
        assert!(t[4].ends_with("end"), "{}", t[4]);
        assert_eq!(t[5], "select $1, a$b from t");
    }

    #[test]
    fn lines_and_directives_belong_to_the_statement_they_precede() {
        let sql = "\u{feff}-- lakelet:no-transaction\n\nselect 1;\n-- lakelet:allow drop-column moved\nalter table t\n  drop column c;\n-- lakelet:trailing\n";
        let s = split(sql).unwrap();
        assert_eq!(s[0].line, 3);
        assert_eq!(s[0].directives, vec!["no-transaction"]);
        assert_eq!(s[1].line, 5);
        assert_eq!(s[1].directives, vec!["allow drop-column moved"]);
        assert_eq!(
            file_directives(sql).unwrap(),
            vec!["no-transaction", "allow drop-column moved", "trailing"]
        );
        // On the line of the `;` that ends a statement: that statement's. Before an empty
        // statement: carried to the next.
        let s = split(
            "drop table a; -- lakelet:allow drop-table
-- lakelet:allow x
;
select 1;",
        )
        .unwrap();
        assert_eq!(s[0].directives, vec!["allow drop-table"]);
        assert_eq!(s[1].directives, vec!["allow x"]);
    }

    #[test]
    fn unterminated_constructs_are_errors_with_their_line() {
        for (sql, line, what) in [
            ("select 1;\nselect 'abc", 2, "unterminated string"),
            ("select \"x", 1, "unterminated quoted identifier"),
            ("\n\nselect $q$ body", 3, "unterminated dollar quote $q$"),
            ("/* open", 1, "unterminated /* comment"),
            (
                "create function f() begin atomic select 1;",
                1,
                "BEGIN ATOMIC",
            ),
        ] {
            let e = split(sql).unwrap_err();
            assert_eq!(e.line, line, "{sql}");
            assert!(e.message.contains(what), "{sql}: {e}");
        }
    }

    #[test]
    fn non_transactional_statements_are_recognised() {
        let kinds: Vec<_> = split(
            "create index concurrently i on t(a); create unique index if not exists i2 on t(a);\
             drop index concurrently i; vacuum analyze t; alter system set x = 1; \
             create database d; commit; reindex table concurrently t; select 'vacuum'",
        )
        .unwrap()
        .iter()
        .map(|s| s.non_transactional().is_some())
        .collect();
        assert_eq!(
            kinds,
            vec![true, false, true, true, true, true, true, true, false]
        );
    }

    proptest::proptest! {
        /// Whatever the input, the lexer terminates without panicking, and statements it
        /// returns are non-empty slices of the input in order.
        #[test]
        fn split_never_panics(s in "(?s).{0,200}") {
            if let Ok(stmts) = split(&s) {
                for st in stmts {
                    proptest::prop_assert!(!st.tokens.is_empty());
                    proptest::prop_assert!(s.contains(st.text.as_str()));
                }
            }
        }

        /// Joining well-formed statements with `;` splits back into the same statements.
        #[test]
        fn split_inverts_join(parts in proptest::collection::vec(
            "(select|update t set a =|insert into t values) ('[a-z;]{0,5}'|\\$\\$[a-z;]{0,5}\\$\\$|[0-9]{1,3})", 1..6)) {
            let joined = parts.join(";\n");
            let t = texts(&joined);
            proptest::prop_assert_eq!(t, parts);
        }
    }
}
