//! Which rows make a statement fail. Postgres says "invalid input syntax for type integer:
//! "0 42"" but not which row; on a throwaway branch we can afford to find out.
//!
//! The caller positions the session just before the failing statement, inside a transaction
//! it rolls back afterwards. Then, by statement shape:
//! - `UPDATE`: bisection. The same UPDATE restricted to half the target's rows (by ctid) is
//!   run under a savepoint and rolled back; halves that fail are split again down to single
//!   rows. Each breaking row costs O(log n) probes.
//! - `ADD … CHECK (e)` / `VALIDATE CONSTRAINT`: the rows where `NOT (e)`.
//! - `ALTER COLUMN c SET NOT NULL`: the rows where `c IS NULL`.

use serde::Serialize;

use super::db::{quote_literal, Db, DbError};
use super::sql::{Statement, Tok};

/// A row a statement cannot handle.
#[derive(Debug, Clone, Serialize)]
pub struct BreakingRow {
    pub ctid: String,
    /// The row as JSON (`row_to_json`).
    pub row: String,
    /// What the statement says about this row alone.
    pub error: String,
}

/// At most this many probes per diagnosis, so a statement that fails on most rows ends fast.
const MAX_PROBES: usize = 4000;

/// The rows (at most `limit`) that make `st` fail; empty when the failure is not row-shaped.
pub fn breaking_rows(db: &Db, st: &Statement, limit: usize) -> Vec<BreakingRow> {
    let r = if st.starts_with(&["UPDATE"]) {
        update_rows(db, st, limit)
    } else if st.starts_with(&["ALTER", "TABLE"]) {
        alter_rows(db, st, limit)
    } else {
        Ok(vec![])
    };
    r.unwrap_or_default()
}

/// The end index of a possibly qualified name starting at token `i`.
fn name_end(st: &Statement, mut i: usize) -> usize {
    let ident = |t: Option<&Tok>| matches!(t, Some(Tok::Word(_) | Tok::Quoted(_)));
    if !ident(st.tokens.get(i)) {
        return i;
    }
    i += 1;
    while matches!(st.tokens.get(i), Some(Tok::Sym('.'))) && ident(st.tokens.get(i + 1)) {
        i += 2;
    }
    i
}

fn update_rows(db: &Db, st: &Statement, limit: usize) -> Result<Vec<BreakingRow>, DbError> {
    let mut i = 1;
    if st.tokens.get(i).is_some_and(|t| t.is("ONLY")) {
        i += 1;
    }
    let end = name_end(st, i);
    if end == i {
        return Ok(vec![]);
    }
    let Some(set) = st.find_top("SET", end) else {
        return Ok(vec![]);
    };
    // The name that qualifies ctid: the alias if there is one, else the table's own name.
    let qual = if set > end {
        st.slice(set - 1, Some(set)).to_string()
    } else {
        st.slice(end - 1, Some(end)).to_string()
    };
    let target = st.slice(1, Some(set)); // [ONLY] table [AS] [alias]
    let returning = st.find_top("RETURNING", set);
    let probe = match st.find_top("WHERE", set) {
        Some(w) => format!(
            "{} where ({}) and {qual}.ctid = any($1::text[]::tid[])",
            st.slice(0, Some(w)),
            st.slice(w + 1, returning)
        ),
        None => format!(
            "{} where {qual}.ctid = any($1::text[]::tid[])",
            st.slice(0, returning)
        ),
    };
    let all: Vec<String> = db
        .query(
            &format!("select {qual}.ctid::text from {target} order by 1"),
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut found: Vec<(String, String)> = vec![];
    let mut probes = 0;
    let try_rows = |rows: &[String]| -> Result<Option<String>, DbError> {
        db.exec("savepoint lakelet_probe")?;
        let r = db.execute(&probe, &[&rows]);
        db.exec("rollback to savepoint lakelet_probe")?;
        Ok(r.err().map(|e| e.to_string()))
    };
    // Depth-first so the first rows are found after log n probes, not after a full level.
    let mut stack: Vec<&[String]> = vec![&all];
    while let Some(rows) = stack.pop() {
        if found.len() >= limit || probes >= MAX_PROBES || rows.is_empty() {
            continue;
        }
        probes += 1;
        let Some(err) = try_rows(rows)? else { continue };
        if rows.len() == 1 {
            found.push((rows[0].clone(), err));
            continue;
        }
        let (a, b) = rows.split_at(rows.len() / 2);
        stack.push(b);
        stack.push(a);
    }
    render(db, st.slice(i, Some(end)), found)
}

fn alter_rows(db: &Db, st: &Statement, limit: usize) -> Result<Vec<BreakingRow>, DbError> {
    let mut i = 2;
    while st
        .tokens
        .get(i)
        .is_some_and(|t| t.is("IF") || t.is("EXISTS") || t.is("ONLY"))
    {
        i += 1;
    }
    let end = name_end(st, i);
    if end == i {
        return Ok(vec![]);
    }
    let table = st.slice(i, Some(end)).to_string();
    let cond = if let Some(c) = st.find_top("CHECK", end) {
        // CHECK ( expr ): the tokens between its parentheses.
        let mut depth = 0;
        let mut close = None;
        for (k, t) in st.tokens.iter().enumerate().skip(c + 1) {
            match t {
                Tok::Sym('(') => depth += 1,
                Tok::Sym(')') => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            return Ok(vec![]);
        };
        format!("not ({})", st.slice(c + 2, Some(close)))
    } else if let Some(v) = st.find_top("VALIDATE", end) {
        let Some(name) = st.tokens.get(v + 2).and_then(Tok::ident) else {
            return Ok(vec![]);
        };
        let def = db.query(
            "select pg_get_constraintdef(oid) from pg_constraint \
             where conname = $1 and conrelid = $2::text::regclass and contype = 'c'",
            &[&name, &table],
        )?;
        let Some(def) = def.first().map(|r| r.get::<_, String>(0)) else {
            return Ok(vec![]);
        };
        let expr = def
            .trim_start_matches("CHECK ")
            .trim_end_matches(" NOT VALID");
        format!("not {expr}")
    } else if st.find_top("NOT", end).is_some() && st.has("SET") && st.has("NULL") {
        // ALTER [COLUMN] c SET NOT NULL
        let Some(set) = st.find_top("SET", end) else {
            return Ok(vec![]);
        };
        let col = st.slice(set - 1, Some(set));
        format!("{col} is null")
    } else {
        return Ok(vec![]);
    };
    let rows = db.query(
        &format!("select ctid::text from {table} where {cond} limit {limit}"),
        &[],
    )?;
    let found = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), format!("violates: {cond}")))
        .collect();
    render(db, &table, found)
}

/// Each (ctid, error) with the row's contents.
fn render(db: &Db, table: &str, found: Vec<(String, String)>) -> Result<Vec<BreakingRow>, DbError> {
    let mut out = vec![];
    for (ctid, error) in found {
        let row = db
            .query(
                &format!(
                    "select row_to_json(x)::text from {table} x where ctid = {}::tid",
                    quote_literal(&ctid)
                ),
                &[],
            )?
            .first()
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default();
        out.push(BreakingRow { ctid, row, error });
    }
    Ok(out)
}
