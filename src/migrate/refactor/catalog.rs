//! The catalog: each refactoring's name, its mechanics in a sentence per step, and what it
//! generates. Names are *Refactoring Databases*'s.

use anyhow::{bail, Result};

use super::super::db::quote_literal;
use super::super::db::Db;
use super::ident as quote_ident;
use super::sync::{self, LOCK_TIMEOUT};
use super::{columns, constraints, tables};
use super::{default_id, Migration, Plan, Request, Table};

/// One named refactoring.
pub struct Refactoring {
    /// The subcommand (`split-column`).
    pub id: &'static str,
    /// Ambler & Sadalage's name.
    pub name: &'static str,
    /// What the expand and contract phases do, step by step.
    pub mechanics: &'static [&'static str],
    pub(super) plan: fn(&Db, &Request) -> Result<Plan>,
}

#[rustfmt::skip]
pub const CATALOG: &[Refactoring] = &[
    Refactoring { id: "split-column", name: "Split Column", plan: columns::split_column, mechanics: &[
        "expand: add the new columns (nullable, no rewrite)",
        "expand: a sync trigger computes them from the old column on every write (--using), and the old column from them for writers of the new shape (--reverse)",
        "expand: backfill existing rows in committed batches",
        "contract: drop the sync trigger and the old column"] },
    Refactoring { id: "merge-columns", name: "Merge Columns", plan: columns::merge_columns, mechanics: &[
        "expand: add the merged column", "expand: a sync trigger computes it from the old columns (--using), and them from it (--reverse)",
        "expand: backfill in committed batches", "contract: drop the sync trigger and the old columns"] },
    Refactoring { id: "rename-column", name: "Rename Column", plan: columns::rename_column, mechanics: &[
        "expand: add the column under its new name", "expand: a sync trigger keeps old and new equal, whichever a writer sets",
        "expand: backfill in committed batches", "contract: drop the sync trigger and the old column"] },
    Refactoring { id: "rename-table", name: "Rename Table", plan: tables::rename_table, mechanics: &[
        "expand: rename the table, and put an updatable view under the old name for old readers and writers",
        "contract: drop the view"] },
    Refactoring { id: "move-column", name: "Move Column", plan: tables::move_column, mechanics: &[
        "expand: add the column to the target table (--to), whose --via column points at the source's key",
        "expand: triggers copy writes of either side to the other",
        "expand: backfill in committed batches", "contract: drop the triggers and the source column"] },
    Refactoring { id: "replace-type", name: "Replace Type (Change Column Type)", plan: columns::replace_type, mechanics: &[
        "expand: add a column of the new type (--to, default COLUMN_new)",
        "expand: a sync trigger converts on every write (--using, default a cast; --reverse back)",
        "expand: backfill in committed batches", "contract: drop the sync trigger and the old column"] },
    Refactoring { id: "introduce-not-null", name: "Introduce Not-Null Constraint", plan: constraints::introduce_not_null, mechanics: &[
        "expand: a CHECK (column IS NOT NULL) NOT VALID (new writes checked at once, no scan under lock)",
        "expand: with --default, the column's default, and a trigger filling NULLs old writers still send",
        "expand: backfill NULLs in committed batches, then VALIDATE the check (no write lock)",
        "contract: SET NOT NULL (proved by the valid check, no scan), drop the check and the trigger"] },
    Refactoring { id: "introduce-default", name: "Introduce Default Value", plan: constraints::introduce_default, mechanics: &[
        "one phase: ALTER COLUMN … SET DEFAULT (a catalog change; existing rows keep their values)"] },
    Refactoring { id: "add-foreign-key", name: "Add Foreign Key Constraint", plan: constraints::add_foreign_key, mechanics: &[
        "expand: the constraint NOT VALID: new writes are checked at once, existing rows are not scanned under lock",
        "transition: clean the rows that point nowhere (counted when the refactoring is written)",
        "contract: VALIDATE the constraint (no write lock)"] },
    Refactoring { id: "introduce-lookup-table", name: "Introduce Lookup Table", plan: tables::introduce_lookup_table, mechanics: &[
        "expand: a lookup table (--to, default COLUMN_lookup) of the distinct values, and a COLUMN_id column referencing it NOT VALID",
        "expand: a sync trigger adds new values to the lookup table and sets the id; writers of the id get the value back",
        "expand: backfill in committed batches, index the id concurrently, VALIDATE the reference",
        "contract: drop the sync trigger and the old column"] },
    Refactoring { id: "drop-column", name: "Drop Column", plan: tables::drop_column, mechanics: &[
        "expand: mark the column deprecated (a comment naming the transition) and drop its NOT NULL so new writers may omit it",
        "contract: drop the column"] },
];

pub(super) fn id_of(req: &Request) -> String {
    req.id
        .clone()
        .unwrap_or_else(|| default_id(&req.kind, &req.target))
}

/// `a, b(c, d), 'e,f'` → three expressions: splits at commas outside parentheses and quotes.
pub fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (vec![], String::new(), 0i32, None);
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(ch),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// One expression per column: the flags as given, or one flag holding a comma list.
pub(super) fn per_column(
    given: &[String],
    n: usize,
    flag: &str,
    what: &str,
) -> Result<Vec<String>> {
    let exprs = if given.len() == 1 && n > 1 {
        split_top(&given[0])
    } else {
        given.to_vec()
    };
    if exprs.len() != n {
        bail!(
            "{what} needs {n} {flag} expression(s), one per column, and got {}",
            exprs.len()
        );
    }
    Ok(exprs)
}

pub(super) fn must_be_new(t: &Table, cols: &[String]) -> Result<()> {
    for c in cols {
        if t.has(c) {
            bail!(
                "{} already has a column {c:?}: pick another name (or finish the refactoring that \
                 added it)",
                t.qualified
            );
        }
    }
    Ok(())
}

/// Checks reverse expressions over the new shape: they cannot run on rows yet (the new
/// columns do not exist), but their names and types can be planned.
pub(super) fn check_reverse(
    db: &Db,
    t: &Table,
    new: &[(String, String)],
    exprs: &[String],
) -> Result<()> {
    let cols: Vec<String> = new
        .iter()
        .map(|(c, ty)| format!("null::{ty} as {}", quote_ident(c)))
        .collect();
    let list: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("({e}) as lakelet_r{i}"))
        .collect();
    let sql = format!(
        "create temp view lakelet_reverse as select {} from (select x.*, {} from {} x) as {}",
        list.join(", "),
        cols.join(", "),
        t.qualified,
        quote_ident(&t.name)
    );
    db.exec("savepoint lakelet_reverse")?;
    let r = db.exec(&sql);
    db.exec("rollback to savepoint lakelet_reverse")?;
    if let Err(e) = r {
        bail!("--reverse is not a valid expression over the new shape ({e}); nothing was written");
    }
    Ok(())
}

/// The shape most refactorings share: new columns computed from old ones, kept in sync,
/// backfilled, and the old ones dropped at the contract.
pub(super) struct Transform<'a> {
    pub what: String,
    pub old: Vec<String>,
    pub new: Vec<(String, String)>,
    pub forward: String,
    pub reverse: Option<String>,
    pub t: &'a Table,
}

pub(super) fn transform(req: &Request, x: Transform) -> Plan {
    let id = id_of(req);
    let t = x.t;
    let new_names: Vec<String> = x.new.iter().map(|(c, _)| c.clone()).collect();
    let expand = format!(
        "{}{LOCK_TIMEOUT}{}{}",
        sync::header(&id, &x.what, "expand", &req.contract_after),
        sync::add_columns(t, &x.new),
        sync::sync_trigger(t, &id, &x.old, &new_names, &x.forward, x.reverse.as_deref()),
    );
    let drops: String = x
        .old
        .iter()
        .map(|c| {
            format!(
                "-- lakelet:allow drop-column the transition {id} ended; its readers moved to the new shape\n\
                 ALTER TABLE {} DROP COLUMN IF EXISTS {};\n",
                t.qualified,
                quote_ident(c)
            )
        })
        .collect();
    let contract = format!(
        "{}{LOCK_TIMEOUT}{}{drops}",
        sync::header(&id, &x.what, "contract", &req.contract_after),
        sync::drop_sync(t, &id),
    );
    Plan {
        id: id.clone(),
        refactoring: CATALOG
            .iter()
            .find(|r| r.id == req.kind)
            .map_or("", |r| r.id),
        table: t.qualified.clone(),
        columns: x.old.clone(),
        expand: vec![
            Migration {
                description: format!("{id}_expand"),
                text: expand,
            },
            sync::backfill(&id, t, &x.old[0], ""),
        ],
        contract: Some(Migration {
            description: format!("{id}_contract"),
            text: contract,
        }),
        old_shape: x
            .old
            .iter()
            .map(|c| (t.qualified.clone(), c.clone()))
            .collect(),
        notes: vec![],
    }
}

/// The new columns' types: `--types`, else what the probe says the expressions give.
pub(super) fn typed(
    names: &[String],
    given: &[String],
    probed: Vec<String>,
) -> Result<Vec<(String, String)>> {
    let types = if given.is_empty() {
        probed
    } else {
        per_column(given, names.len(), "--types", "the new columns")?
    };
    Ok(names.iter().cloned().zip(types).collect())
}

/// Runs `body` only when `cond` holds: DDL Postgres has no IF NOT EXISTS for.
pub(super) fn guarded(cond: &str, body: &str) -> String {
    format!("DO $guard$\nBEGIN\n  IF {cond} THEN\n    {body}\n  END IF;\nEND $guard$;\n")
}

pub(super) fn no_constraint(t: &Table, name: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {}::regclass AND conname = {})",
        quote_literal(&t.qualified),
        quote_literal(name)
    )
}

/// A plan of one refactoring: `{id}_expand` holding `expand`, then `more` (a backfill, a
/// validation), and `{id}_contract` holding `contract` when there is a second phase.
pub(super) fn expand_contract(
    req: &Request,
    t: &Table,
    col: &str,
    expand: String,
    more: Vec<Migration>,
    contract: Option<String>,
) -> Plan {
    let id = id_of(req);
    let mut all = vec![Migration {
        description: format!("{id}_expand"),
        text: expand,
    }];
    all.extend(more);
    Plan {
        refactoring: CATALOG
            .iter()
            .find(|r| r.id == req.kind)
            .map_or("", |r| r.id),
        table: t.qualified.clone(),
        columns: vec![col.to_string()],
        expand: all,
        contract: contract.map(|text| Migration {
            description: format!("{id}_contract"),
            text,
        }),
        old_shape: vec![],
        notes: vec![],
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_split_at_top_level_commas_only() {
        assert_eq!(
            split_top("substr(c, 1, 4), (substr(c, 6, 5))::int , 'a,b'"),
            vec!["substr(c, 1, 4)", "(substr(c, 6, 5))::int", "'a,b'"]
        );
        assert_eq!(split_top("x"), vec!["x"]);
    }

    #[test]
    fn every_refactoring_the_issue_names_is_in_the_catalog() {
        for id in [
            "split-column",
            "merge-columns",
            "rename-column",
            "rename-table",
            "move-column",
            "replace-type",
            "introduce-not-null",
            "introduce-default",
            "add-foreign-key",
            "introduce-lookup-table",
            "drop-column",
        ] {
            let r = CATALOG.iter().find(|r| r.id == id).expect(id);
            assert!(!r.mechanics.is_empty() && !r.name.is_empty());
        }
    }
}
