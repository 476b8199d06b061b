//! Which rows make a statement fail. Postgres says "invalid input syntax for type integer:
//! "0 42"" but not which row; on a throwaway branch we can afford to find out, every one.
//!
//! The caller positions the session just before the failing statement, inside a transaction
//! it rolls back afterwards. Then, by statement shape:
//! - `UPDATE`: the same UPDATE, restricted to a chunk of the target's rows (by ctid), runs
//!   server-side in a subtransaction per chunk; a chunk that fails is retried row by row. One
//!   round trip, every breaking row counted, and the cost of a clean chunk is the update
//!   itself.
//! - A `DO` block whose error context names the `UPDATE` it was running (a batched backfill):
//!   that UPDATE, over every row of its table when its WHERE is the loop's batch bound (it
//!   names the block's variables, so it cannot run on its own).
//! - `ADD … CHECK (e)` / `VALIDATE CONSTRAINT`: the rows where `NOT (e)`.
//! - `ALTER COLUMN c SET NOT NULL`: the rows where `c IS NULL`.

use serde::Serialize;

use super::db::{quote_literal, Db, DbError};
use super::sql::{Statement, Tok};

/// A row a statement cannot handle.
#[derive(Debug, Clone, Serialize)]
pub struct BreakingRow {
    pub ctid: String,
    /// The row's primary key as JSON (its ctid where it has none): what corruption recipes
    /// mark, so breaking rows can be traced back to the damage that broke them.
    pub key: String,
    /// The row as JSON (`row_to_json`).
    pub row: String,
    /// What the statement says about this row alone.
    pub error: String,
}

/// Every row that breaks a statement: how many, a sample with contents, every key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breaking {
    /// The table the rows are in.
    pub table: String,
    pub count: u64,
    pub sample: Vec<BreakingRow>,
    /// Every breaking row's key (see [`BreakingRow::key`]).
    #[serde(skip)]
    pub keys: Vec<String>,
}

/// Rows per server-side probe; a failing chunk is retried row by row.
const CHUNK: i32 = 256;

/// The rows that make `st` fail (all counted, `sample` of them shown); empty when the
/// failure is not row-shaped. `context` is the error's CONTEXT, for DO blocks.
pub fn breaking_rows(db: &Db, st: &Statement, context: Option<&str>, sample: usize) -> Breaking {
    let r = if st.starts_with(&["UPDATE"]) {
        update_rows(db, st, sample, true)
    } else if st.starts_with(&["ALTER", "TABLE"]) {
        alter_rows(db, st, sample)
    } else if st.starts_with(&["DO"]) {
        match context.and_then(inner_update) {
            Some(inner) => match super::sql::split(&inner) {
                Ok(sts) if sts.len() == 1 => update_rows(db, &sts[0], sample, false),
                _ => Ok(Breaking::default()),
            },
            None => Ok(Breaking::default()),
        }
    } else {
        Ok(Breaking::default())
    };
    r.unwrap_or_default()
}

/// The outermost `SQL statement "UPDATE …"` of an error context: the statement a DO block
/// was running (inner lines are what it fired, e.g. a trigger's own statements).
fn inner_update(context: &str) -> Option<String> {
    const MARK: &str = "SQL statement \"";
    let mut found = None;
    let mut rest = context;
    while let Some(at) = rest.find(MARK) {
        let body = &rest[at + MARK.len()..];
        // It ends at a quote that ends a line (statements may span lines themselves).
        let end = body
            .match_indices('"')
            .map(|(i, _)| i)
            .find(|&i| body[i + 1..].starts_with('\n') || i + 1 == body.len())?;
        found = Some(body[..end].to_string());
        rest = &body[end..];
    }
    found.filter(|s| {
        s.trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("update"))
    })
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

/// `own_where`: keep the statement's WHERE. A DO block's batch UPDATE is retried without it
/// when it names the block's variables (then it fails to plan with 42703 or 42P02).
fn update_rows(
    db: &Db,
    st: &Statement,
    sample: usize,
    own_where: bool,
) -> Result<Breaking, DbError> {
    let mut i = 1;
    if st.tokens.get(i).is_some_and(|t| t.is("ONLY")) {
        i += 1;
    }
    let end = name_end(st, i);
    if end == i {
        return Ok(Breaking::default());
    }
    let Some(set) = st.find_top("SET", end) else {
        return Ok(Breaking::default());
    };
    // The name that qualifies ctid: the alias if there is one, else the table's own name.
    let qual = if set > end {
        st.slice(set - 1, Some(set)).to_string()
    } else {
        st.slice(end - 1, Some(end)).to_string()
    };
    let table = st.slice(i, Some(end)).to_string();
    let returning = st.find_top("RETURNING", set);
    let at_where = st.find_top("WHERE", set);
    let mut probe = match at_where {
        Some(w) => format!(
            "{} where ({}) and {qual}.ctid = any($1)",
            st.slice(0, Some(w)),
            st.slice(w + 1, returning)
        ),
        None => format!("{} where {qual}.ctid = any($1)", st.slice(0, returning)),
    };
    if let (false, Some(w)) = (own_where, at_where) {
        // Does the WHERE stand on its own? Plan it over no rows to find out.
        db.exec("savepoint lakelet_plan")?;
        let plan = probe.replace("any($1)", "any($1::text[]::tid[])");
        let planned = db.execute(&plan, &[&Vec::<String>::new()]);
        db.exec("rollback to savepoint lakelet_plan")?;
        if planned.is_err_and(|e| e.code == "42703" || e.code == "42P02") {
            // The loop's batch bound: every row of the table, then.
            probe = format!("{} where {qual}.ctid = any($1)", st.slice(0, Some(w)));
        }
    }
    let probe = probe.replace("any($1)", "any($1::tid[])");
    failing_rows(db, &table, &probe, sample)
}

/// Runs `probe` (a statement over `$1::tid[]`) server-side for every row of `table`, a chunk
/// at a time, each chunk and each retried row in its own subtransaction.
pub fn failing_rows(db: &Db, table: &str, probe: &str, sample: usize) -> Result<Breaking, DbError> {
    db.exec(
        "create or replace function pg_temp.lakelet_failing(probe text, tbl text, chunk int) \
         returns table(row_ctid tid, err text) language plpgsql as $f$ \
         declare ids tid[]; part tid[]; t tid; i int := 1; n int; \
         begin \
           execute format('select coalesce(array_agg(ctid order by ctid), ''{}'') from %s', tbl) into ids; \
           n := coalesce(array_length(ids, 1), 0); \
           while i <= n loop \
             part := ids[i : i + chunk - 1]; \
             begin \
               execute probe using part; \
             exception when others then \
               foreach t in array part loop \
                 begin \
                   execute probe using array[t]; \
                 exception when others then \
                   row_ctid := t; err := 'ERROR ' || sqlstate || ': ' || sqlerrm; return next; \
                 end; \
               end loop; \
             end; \
             i := i + chunk; \
           end loop; \
         end $f$",
    )?;
    let rows = db.query(
        "select row_ctid::text, err from pg_temp.lakelet_failing($1, $2, $3)",
        &[&probe, &table, &CHUNK],
    )?;
    let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // A probe Postgres cannot plan (class 42) says nothing about rows.
    if found.iter().any(|(_, e)| e.starts_with("ERROR 42")) {
        return Ok(Breaking::default());
    }
    render(db, table, found, sample)
}

fn alter_rows(db: &Db, st: &Statement, sample: usize) -> Result<Breaking, DbError> {
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
        return Ok(Breaking::default());
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
            return Ok(Breaking::default());
        };
        format!("not ({})", st.slice(c + 2, Some(close)))
    } else if let Some(v) = st.find_top("VALIDATE", end) {
        let Some(name) = st.tokens.get(v + 2).and_then(Tok::ident) else {
            return Ok(Breaking::default());
        };
        let def = db.query(
            "select pg_get_constraintdef(oid) from pg_constraint \
             where conname = $1 and conrelid = $2::text::regclass and contype = 'c'",
            &[&name, &table],
        )?;
        let Some(def) = def.first().map(|r| r.get::<_, String>(0)) else {
            return Ok(Breaking::default());
        };
        let expr = def
            .trim_start_matches("CHECK ")
            .trim_end_matches(" NOT VALID");
        format!("not {expr}")
    } else if st.find_top("NOT", end).is_some() && st.has("SET") && st.has("NULL") {
        // ALTER [COLUMN] c SET NOT NULL
        let Some(set) = st.find_top("SET", end) else {
            return Ok(Breaking::default());
        };
        let col = st.slice(set - 1, Some(set));
        format!("{col} is null")
    } else {
        return Ok(Breaking::default());
    };
    let rows = db.query(&format!("select ctid::text from {table} where {cond}"), &[])?;
    let found = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), format!("violates: {cond}")))
        .collect();
    render(db, &table, found, sample)
}

/// `table` as Postgres names it (`"Inventory"` and `public.inventory` alike), so breaking
/// rows and corruption marks of one table compare equal.
pub fn canonical(db: &Db, table: &str) -> Result<String, DbError> {
    let name = db.value(&format!("select {}::regclass::text", quote_literal(table)))?;
    Ok(name.unwrap_or_else(|| table.to_string()))
}

/// The key expression of a row of `table` aliased `x`: its primary key as JSON, else its
/// ctid.
pub fn row_key(db: &Db, table: &str) -> Result<String, DbError> {
    let cols = db.value(&format!(
        "select string_agg(format('%L, x.%I', a.attname, a.attname), ', ' order by k.ord) \
         from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord) \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
         where i.indrelid = {}::regclass and i.indisprimary",
        quote_literal(table)
    ))?;
    Ok(match cols {
        Some(c) => format!("json_build_object({c})::text"),
        None => "x.ctid::text".into(),
    })
}

/// Every (ctid, error) counted and keyed; the first `sample` with the row's contents.
fn render(
    db: &Db,
    table: &str,
    found: Vec<(String, String)>,
    sample: usize,
) -> Result<Breaking, DbError> {
    let key = row_key(db, table)?;
    let ctids: Vec<&String> = found.iter().map(|(c, _)| c).collect();
    let rows = db.query(
        &format!(
            "select x.ctid::text, {key}, row_to_json(x)::text from {table} x \
             where x.ctid = any($1::text[]::tid[])"
        ),
        &[&ctids],
    )?;
    let by_ctid: std::collections::HashMap<String, (String, String)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let mut out = Breaking {
        table: canonical(db, table)?,
        count: found.len() as u64,
        ..Default::default()
    };
    for (ctid, error) in found {
        let (key, row) = by_ctid.get(&ctid).cloned().unwrap_or_default();
        out.keys.push(key.clone());
        if out.sample.len() < sample {
            out.sample.push(BreakingRow {
                ctid,
                key,
                row,
                error,
            });
        }
    }
    Ok(out)
}
