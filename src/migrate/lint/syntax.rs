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

/// SQL commands a script statement can start with.
const COMMANDS: &str = "ABORT ALTER ANALYSE ANALYZE BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT \
    COMMIT COPY CREATE DEALLOCATE DECLARE DELETE DISCARD DO DROP END EXECUTE EXPLAIN FETCH GRANT \
    IMPORT INSERT LISTEN LOAD LOCK MERGE MOVE NOTIFY PREPARE REASSIGN REFRESH REINDEX RELEASE \
    RESET REVOKE ROLLBACK SAVEPOINT SECURITY SELECT SET SHOW START TABLE TRUNCATE UNLISTEN \
    UPDATE VACUUM VALUES WITH";

/// A statement Postgres would reject, by a light structural check rather than its grammar
/// (the `pg_query` crate has the real parser, at a build cost this linter does not take):
/// unbalanced parentheses, a first word that starts no command, a command cut short, an
/// ALTER TABLE action with nothing to act on. A statement with Flyway placeholders (`${x}`) is
/// not checked (lint sees them unreplaced), nor COPY (its data follows it).
pub(super) fn syntax_error(s: &Statement) -> Option<Finding> {
    let t = &s.tokens;
    // COPY … FROM STDIN carries its data, which is no SQL, up to the next `;`.
    let copy = s.starts_with(&["COPY"]);
    if copy || t.windows(2).any(|w| w == [Tok::Sym('$'), Tok::Sym('{')]) {
        return None;
    }
    let what = unbalanced(t)
        .or_else(|| cut_short(s))
        .or_else(|| alter_table_syntax(t))?;
    let message =
        format!("syntax error: {what}; Postgres rejects it, and the migration fails here");
    let fix = "Complete or correct the statement (`lakelet migrate rehearse` runs the migration \
               on a throwaway branch and shows Postgres' own message). A syntax error cannot be \
               acknowledged.";
    Some(hit("syntax-error", message, fix))
}

/// A `)` or `]` that closes nothing (or the other kind), or a `(` / `[` never closed.
fn unbalanced(t: &[Tok]) -> Option<String> {
    let mut open = vec![];
    for x in t {
        match x {
            Tok::Sym(c @ ('(' | '[')) => open.push(*c),
            Tok::Sym(c @ (')' | ']')) => {
                let want = if *c == ')' { '(' } else { '[' };
                if open.pop() != Some(want) {
                    return Some(format!("`{c}` has no `{want}` to close"));
                }
            }
            _ => {}
        }
    }
    let c = open.last()?;
    Some(format!("a `{c}` is never closed"))
}

/// A statement whose first word starts no SQL command, or a command missing what it needs.
fn cut_short(s: &Statement) -> Option<String> {
    let t = &s.tokens;
    if t[0] == Tok::Sym('(') {
        return None;
    }
    if !any_at(t, 0, COMMANDS) {
        return Some(format!("`{}` starts no SQL command", shown(&t[0])));
    }
    let n = t.len();
    let short = match t[0].ident().unwrap_or_default().as_str() {
        "alter" | "create" | "drop" => n < 3,
        "truncate" | "lock" => n < 2 + usize::from(is_at(t, 1, "TABLE")),
        "update" => !top(t).iter().any(|x| x.is("SET")),
        "delete" | "insert" => !any_at(t, 1, "FROM INTO") || n < 3,
        _ => false,
    };
    let table = if starts(t, &["CREATE", "TABLE"]) {
        name_at(t, 2)
    } else {
        None
    };
    let short = short || table.is_some_and(|(_, at)| at == n);
    short.then(|| format!("`{}` is incomplete", s.excerpt()))
}

/// ALTER TABLE without an action, with an empty one, an ADD COLUMN without a name or type,
/// or a DROP without a name.
fn alter_table_syntax(t: &[Tok]) -> Option<String> {
    if !starts(t, &["ALTER", "TABLE"]) {
        return None;
    }
    let (table, at) = name_at(t, 2)?;
    let tb = &table.shown;
    if at == t.len() {
        return Some(format!("ALTER TABLE {tb} names no action"));
    }
    for a in split_top(&t[at..]) {
        if a.is_empty() {
            return Some(format!(
                "ALTER TABLE {tb} has an empty action (a stray comma)"
            ));
        }
        let column = !any_at(a, 1, "CONSTRAINT CHECK FOREIGN UNIQUE PRIMARY EXCLUDE");
        if is_at(a, 0, "ADD") && column {
            let Some((c, at)) = name_at(a, 1) else {
                return Some(format!("ADD COLUMN on {tb} names no column (and no type)"));
            };
            let typed = matches!(a.get(at), Some(Tok::Word(_) | Tok::Quoted(_)))
                && !any_at(
                    a,
                    at,
                    "NOT NULL DEFAULT PRIMARY REFERENCES CHECK UNIQUE CONSTRAINT COLLATE GENERATED",
                );
            if !typed {
                return Some(format!("ADD COLUMN {tb}.{} gives no type", c.key));
            }
        }
        if is_at(a, 0, "DROP") && name_at(a, 1 + usize::from(is_at(a, 1, "CONSTRAINT"))).is_none() {
            return Some(format!("a DROP on {tb} names nothing to drop"));
        }
    }
    None
}
