//! Constraints and defaults: Introduce Not-Null, Introduce Default, Add Foreign Key.

use anyhow::{bail, Result};

use super::super::db::Db;
use super::catalog::*;
use super::ident as quote_ident;
use super::sync::{self, LOCK_TIMEOUT};
use super::{inspect, probe_expressions, table_column, Migration, Plan, Request};

pub(super) fn introduce_not_null(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    if c.not_null {
        bail!("{}.{col} is already NOT NULL", t.qualified);
    }
    let id = id_of(req);
    let check = format!("{}_{col}_not_null", t.name);
    let qc = quote_ident(&col);
    let what = format!("introduce-not-null {}.{col}", t.qualified);
    let mut expand = sync::header(&id, &what, "expand", &req.contract_after) + LOCK_TIMEOUT;
    expand += &guarded(
        &no_constraint(&t, &check),
        &format!(
            "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({qc} IS NOT NULL) NOT VALID;",
            t.qualified,
            quote_ident(&check)
        ),
    );
    let nulls: i64 = db.query(
        &format!("select count(*) from {} where {qc} is null", t.qualified),
        &[],
    )?[0]
        .get(0);
    let mut notes = vec![];
    let validate = format!(
        "ALTER TABLE {} VALIDATE CONSTRAINT {};\n",
        t.qualified,
        quote_ident(&check)
    );
    let second = match &req.default {
        Some(d) => {
            probe_expressions(db, &t, &[format!("({d})::{}", c.ty)], "--default")?;
            expand += &format!(
                "ALTER TABLE {} ALTER COLUMN {qc} SET DEFAULT {d};\n",
                t.qualified
            );
            expand += &sync::sync_trigger(
                &t,
                &id,
                &[],
                &[],
                &format!("IF NEW.{qc} IS NULL THEN NEW.{qc} := {d}; END IF;"),
                None,
            );
            sync::backfill(&id, &t, &col, &validate)
        }
        None => {
            if nulls > 0 {
                notes.push(format!(
                    "{nulls} row(s) of {} hold NULL in {col} today: give them values before the \
                     expand's VALIDATE runs (or use --default)",
                    t.qualified
                ));
            }
            Migration {
                description: format!("{id}_validate"),
                text: format!("{LOCK_TIMEOUT}{validate}"),
            }
        }
    };
    let mut contract = sync::header(&id, &what, "contract", &req.contract_after) + LOCK_TIMEOUT;
    contract += &format!(
        "-- lakelet:allow set-not-null proved by the valid CHECK {check}: no scan\n\
         ALTER TABLE {} ALTER COLUMN {qc} SET NOT NULL;\n",
        t.qualified
    );
    if req.default.is_some() {
        contract += &sync::drop_sync(&t, &id);
    }
    contract += &format!(
        "-- lakelet:allow drop-constraint the column's NOT NULL now guarantees what {check} did\n\
         ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};\n",
        t.qualified,
        quote_ident(&check)
    );
    let mut p = expand_contract(req, &t, &col, expand, vec![second], Some(contract));
    p.notes = notes;
    Ok(p)
}

pub(super) fn introduce_default(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    let Some(d) = &req.default else {
        bail!("introduce-default needs the value: --default EXPR");
    };
    probe_expressions(db, &t, &[format!("({d})::{}", c.ty)], "--default")?;
    let id = id_of(req);
    let what = format!("introduce-default {}.{col}", t.qualified);
    let text = format!(
        "-- lakelet refactor {what} (one phase: existing rows keep their values)\n{LOCK_TIMEOUT}\
         ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {d};\n",
        t.qualified,
        quote_ident(&col)
    );
    // One phase: the file is named for the refactoring, not for a phase of it.
    let mut p = expand_contract(req, &t, &col, text, vec![], None);
    p.expand[0].description = id;
    Ok(p)
}

pub(super) fn add_foreign_key(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    let Some(refs) = &req.references else {
        bail!("add-foreign-key needs what it references: --references TABLE(COLUMN)");
    };
    let Some((rt, rc)) = refs.strip_suffix(')').and_then(|r| r.split_once('(')) else {
        bail!("--references {refs:?}: write TABLE(COLUMN)");
    };
    let target = inspect(db, rt)?;
    let tc = target.column(rc.trim())?.clone();
    if tc.ty != c.ty {
        bail!(
            "{}.{col} is {} but {}.{} is {}: a foreign key needs the same type (replace-type \
             first)",
            t.qualified,
            c.ty,
            target.qualified,
            tc.name,
            tc.ty
        );
    }
    let unique: bool = db.query(
        "select exists (select 1 from pg_index i join pg_attribute a on a.attrelid = i.indrelid \
             and i.indnatts = 1 and i.indkey[0] = a.attnum where i.indrelid = $1::text::regclass \
             and i.indisunique and a.attname = $2)",
        &[&target.qualified, &tc.name],
    )?[0]
        .get(0);
    if !unique {
        bail!(
            "{}.{} has no unique index or primary key of its own: a foreign key cannot \
             reference it",
            target.qualified,
            tc.name
        );
    }
    let id = id_of(req);
    let fk = format!("{}_{col}_fkey", t.name);
    let qc = quote_ident(&col);
    let orphans: i64 = db.query(
        &format!(
            "select count(*) from {} x where x.{qc} is not null and not exists \
                 (select 1 from {} r where r.{} = x.{qc})",
            t.qualified,
            target.qualified,
            quote_ident(&tc.name)
        ),
        &[],
    )?[0]
        .get(0);
    let what = format!(
        "add-foreign-key {}.{col} → {}({})",
        t.qualified, target.qualified, tc.name
    );
    let expand = sync::header(&id, &what, "expand", &req.contract_after)
        + LOCK_TIMEOUT
        + &guarded(
            &no_constraint(&t, &fk),
            &format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({qc}) REFERENCES {} ({}) NOT VALID;",
                t.qualified,
                quote_ident(&fk),
                target.qualified,
                quote_ident(&tc.name)
            ),
        );
    let contract = sync::header(&id, &what, "contract", &req.contract_after)
        + LOCK_TIMEOUT
        + &format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {};\n",
            t.qualified,
            quote_ident(&fk)
        );
    let mut p = expand_contract(req, &t, &col, expand, vec![], Some(contract));
    if orphans > 0 {
        p.notes.push(format!(
            "{orphans} row(s) of {} point at no row of {} today: clean them before the contract \
             validates the constraint",
            t.qualified, target.qualified
        ));
    }
    Ok(p)
}
