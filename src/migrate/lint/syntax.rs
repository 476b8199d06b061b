//! What the token-level linter can say about a statement's form: the statements inside a
//! routine body, and statements Postgres would reject.

use super::super::sql::{Statement, Tok};
use super::tokens::*;
use super::{hit, Finding};

/// The SQL statements of the body of a DO block or a CREATE FUNCTION / PROCEDURE in SQL or
/// PL/pgSQL (`default` is the language when none is named); none for other languages, a
/// `BEGIN ATOMIC` body, or `EXECUTE`d strings.
pub(super) fn routine_body(s: &Statement, default: &str) -> Vec<Statement> {
    let t = &s.tokens;
    let language = t
        .windows(2)
        .find(|w| w[0].is("LANGUAGE"))
        .and_then(|w| match &w[1] {
            Tok::Str(l) => Some(l.to_ascii_lowercase()),
            l => l.ident(),
        });
    let language = language.unwrap_or_else(|| default.to_string());
    if language != "plpgsql" && language != "sql" {
        return vec![];
    }
    // DO's body is its string; a routine's is the string after its top-level AS.
    let body = if t[0].is("DO") {
        t.iter().find_map(|x| match x {
            Tok::Str(b) => Some(b),
            _ => None,
        })
    } else {
        top(t).windows(2).find_map(|w| match w {
            [a, Tok::Str(b)] if a.is("AS") => Some(b),
            _ => None,
        })
    };
    body.map_or(vec![], |b| body_statements(b, s.line, &s.directives))
}

/// A statement Postgres would reject, by Postgres's own grammar (libpg_query, through the
/// `pg_query` crate): the parser's message, which the migration would otherwise only show on
/// the server. A statement with Flyway placeholders (`${x}`) is not checked (lint sees them
/// unreplaced), nor COPY (its data follows it).
pub(super) fn syntax_error(s: &Statement) -> Option<Finding> {
    let t = &s.tokens;
    // COPY … FROM STDIN carries its data, which is no SQL, up to the next `;`.
    let copy = s.starts_with(&["COPY"]);
    if copy || t.windows(2).any(|w| w == [Tok::Sym('$'), Tok::Sym('{')]) {
        return None;
    }
    let what = match pg_query::parse(&s.text) {
        Ok(_) => return None,
        Err(pg_query::Error::Parse(m)) => m,
        // Anything else is the library's failure, not the statement's.
        Err(_) => return None,
    };
    let message = format!(
        "syntax error: {what} in `{}`; Postgres rejects it, and the migration fails here",
        s.excerpt()
    );
    let fix = "Complete or correct the statement (`lakelet migrate rehearse` runs the migration \
               on a throwaway branch). A syntax error cannot be acknowledged.";
    Some(hit("syntax-error", message, fix))
}
