//! `lakelet refactor`: named database refactorings (Ambler & Sadalage, *Refactoring
//! Databases*) written as Flyway migrations with their transition mechanics.
//!
//! A refactoring that changes a shape readers depend on runs in two phases:
//! - **expand** (written now, into the migrations directory): add the new shape, keep old and
//!   new in sync with a trigger for the transition period, backfill the existing rows in
//!   batches (a `no-transaction` file whose DO block commits per batch), and a view for old
//!   readers where the refactoring needs one;
//! - **contract** (staged in `.lakebase/transitions/ID.contract.sql`, moved into the
//!   migrations directory by `lakelet refactor contract ID` once the transition ended and no
//!   reader of the old shape is left): drop the sync and the old shape.
//!
//! The transition itself is a record in `.lakebase/transitions.json` (version controlled,
//! checked against `transitions.schema.json`), so every clone and every CI run knows which
//! transitions are in flight and when each may end. Lint refuses a contract migration before
//! its date.
//!
//! Everything is checked against a real branch before a file is written: the table and
//! columns exist, the refactoring applies to the column's type, and the `--using`
//! expressions evaluate on every row (the rows that fail are counted and shown).
//!
//! - `catalog.rs`: the refactorings and their mechanics, and the expand/contract shape most
//!   share; `columns.rs`, `constraints.rs`, `tables.rs`: what each generates.
//! - `sync.rs`: the SQL shapes they share (sync trigger, batched backfill, guards).
//! - `transitions.rs`: the transitions file.

mod catalog;
mod columns;
mod constraints;
mod sync;
mod tables;
pub mod transitions;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::db::{quote_ident, Db};

pub use catalog::{Refactoring, CATALOG};

/// What the user asked for: the refactoring, its target and its flags.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A [`CATALOG`] id (`split-column`).
    pub kind: String,
    /// `[SCHEMA.]TABLE.COLUMN` (`TABLE` for rename-table; `TABLE.A,B` for merge-columns).
    pub target: String,
    /// New columns (split-column, merge-columns, introduce-lookup-table).
    pub into: Vec<String>,
    /// Forward expressions over the old shape, one per new column.
    pub using: Vec<String>,
    /// Expressions over the new shape giving the old one back (for writers of the new shape
    /// during the transition).
    pub reverse: Vec<String>,
    /// New name (rename-column, rename-table, replace-type, move-column's table).
    pub to: Option<String>,
    /// New type (replace-type), or the new columns' types.
    pub types: Vec<String>,
    pub default: Option<String>,
    /// `TABLE(COLUMN)` (add-foreign-key).
    pub references: Option<String>,
    /// The column of `--to` that points at the table's primary key (move-column).
    pub via: Option<String>,
    /// The transition's id (default: derived from the refactoring and target).
    pub id: Option<String>,
    /// When the transition may end (RFC 3339): the contract is refused before it.
    pub contract_after: String,
}

/// A table on the branch.
#[derive(Debug, Clone)]
pub struct Table {
    /// As written in SQL: `public.inventory`.
    pub qualified: String,
    /// The bare name (the alias expressions see).
    pub name: String,
    pub columns: Vec<Column>,
    /// Primary key columns.
    pub key: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// `format_type`.
    pub ty: String,
    /// pg_type.typcategory.
    pub category: String,
    pub not_null: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            anyhow::anyhow!(
                "no column {name:?} in {} (its columns: {})",
                self.qualified,
                names.join(", ")
            )
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }
}

/// Reads a table's columns and key; an unknown table is an error naming it.
pub fn inspect(db: &Db, table: &str) -> Result<Table> {
    let found = db
        .query(
            "select quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname, \
             c.relkind::text from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass($1)",
            &[&table],
        )
        .with_context(|| format!("looking up table {table}"))?;
    let Some(r) = found.first() else {
        bail!("no table {table:?} on this branch (name it as TABLE or SCHEMA.TABLE)");
    };
    let (qualified, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
    if kind != "r" && kind != "p" {
        bail!("{qualified} is not a table (relkind {kind})");
    }
    let columns = db
        .query(
            "select a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory::text, \
             a.attnotnull from pg_attribute a join pg_type t on t.oid = a.atttypid \
             where a.attrelid = $1::text::regclass and a.attnum > 0 and not a.attisdropped \
             order by a.attnum",
            &[&qualified],
        )?
        .iter()
        .map(|r| Column {
            name: r.get(0),
            ty: r.get(1),
            category: r.get(2),
            not_null: r.get(3),
        })
        .collect();
    let key = db
        .query(
            "select a.attname::text from pg_index i \
             cross join unnest(i.indkey) with ordinality k(attnum, ord) \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
             where i.indrelid = $1::text::regclass and i.indisprimary order by k.ord",
            &[&qualified],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Table {
        qualified,
        name,
        columns,
        key,
    })
}

/// `[SCHEMA.]TABLE.COLUMN` split into the table and the column.
pub fn table_column(target: &str) -> Result<(String, String)> {
    match target.rsplit_once('.') {
        Some((t, c)) if !t.is_empty() && !c.is_empty() => Ok((t.to_string(), c.to_string())),
        _ => bail!("{target:?}: name the column as TABLE.COLUMN or SCHEMA.TABLE.COLUMN"),
    }
}

/// One migration file to write.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// The file name's description part (`split_inventory_code_expand`).
    pub description: String,
    pub text: String,
}

/// What a refactoring generates.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id: String,
    pub refactoring: &'static str,
    pub table: String,
    pub columns: Vec<String>,
    pub expand: Vec<Migration>,
    /// None for a one-phase refactoring (introduce-default).
    pub contract: Option<Migration>,
    /// What the contract waits for: readers of these (table, column) pairs (column empty for
    /// the table itself) must be gone.
    pub old_shape: Vec<(String, String)>,
    /// What the user should know (rows that will need cleaning, …).
    pub notes: Vec<String>,
}

/// Checks the request against the branch and generates the migrations; writes nothing.
pub fn plan(db: &Db, req: &Request) -> Result<Plan> {
    let r = CATALOG.iter().find(|r| r.id == req.kind).ok_or_else(|| {
        anyhow::anyhow!(
            "no refactoring {:?} (`lakelet refactor list` shows the catalog)",
            req.kind
        )
    })?;
    // Every check reads the catalog; the probes run in a transaction that is rolled back.
    db.exec("begin")?;
    let p = (r.plan)(db, req);
    db.exec("rollback")?;
    p
}

/// Checks that the expressions evaluate on every row of `t` and returns each one's type.
/// A failing row is an error that counts them and shows a few.
pub fn probe_expressions(db: &Db, t: &Table, exprs: &[String], what: &str) -> Result<Vec<String>> {
    let list: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("({e}) as lakelet_e{i}"))
        .collect();
    let view = format!(
        "create temp view lakelet_probe as select {} from {} as {}",
        list.join(", "),
        t.qualified,
        quote_ident(&t.name)
    );
    db.exec("savepoint lakelet_probe")?;
    if let Err(e) = db.exec(&view) {
        db.exec("rollback to savepoint lakelet_probe")?;
        bail!(
            "{what} is not a valid expression over {} ({e}); nothing was written",
            t.qualified
        );
    }
    let types: Vec<String> = db
        .query(
            "select format_type(atttypid, atttypmod) from pg_attribute \
             where attrelid = 'lakelet_probe'::regclass and attnum > 0 order by attnum",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.exec("rollback to savepoint lakelet_probe")?;
    let probe = format!(
        "select {} from {} as {} where {}.ctid = any($1)",
        list.join(", "),
        t.qualified,
        quote_ident(&t.name),
        quote_ident(&t.name)
    );
    let b = super::diagnose::failing_rows(db, &t.qualified, &probe, 3)?;
    if b.count > 0 {
        let rows: Vec<String> = b
            .sample
            .iter()
            .map(|s| format!("  {} {}", s.row, s.error))
            .collect();
        bail!(
            "{what} fails on {} row(s) of {}:\n{}\nFix the expression (or the rows); nothing \
             was written",
            b.count,
            t.qualified,
            rows.join("\n")
        );
    }
    Ok(types)
}

/// Where a project keeps its transitions: `.lakebase/` beside lakelet.toml.
pub fn lakebase_dir(project_dir: &Path) -> PathBuf {
    project_dir.join(".lakebase")
}

/// The next free major version in the migrations directory (`V88` after `V87__…`).
pub fn next_version(scripts: &[super::script::Script]) -> u64 {
    scripts
        .iter()
        .filter_map(|s| s.version.as_ref())
        .filter_map(|v| v.to_string().split('.').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1
}

/// A default transition id: the refactoring and its target, as an identifier.
pub fn default_id(kind: &str, target: &str) -> String {
    let base = target.rsplit('.').take(2).collect::<Vec<_>>();
    let mut s = format!(
        "{}_{}",
        kind,
        base.into_iter().rev().collect::<Vec<_>>().join("_")
    );
    s = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(48);
    s
}

/// An identifier as a person would write it: bare when Postgres would read it back
/// unchanged (lowercase, not a reserved word), quoted otherwise. Generated migrations are
/// reviewed by people.
pub(crate) fn ident(s: &str) -> String {
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "system_user",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
    ];
    let bare = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&s);
    if bare {
        s.to_string()
    } else {
        quote_ident(s)
    }
}
