//! Refactorings of tables: Introduce Lookup Table, Drop Column, Rename Table, Move Column.

use anyhow::{bail, Result};

use super::super::db::quote_literal;
use super::super::db::Db;
use super::catalog::*;
use super::ident as quote_ident;
use super::sync::{self, LOCK_TIMEOUT};
use super::{inspect, table_column, Plan, Request, Table};

pub(super) fn introduce_lookup_table(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    let id_col = req
        .into
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{col}_id"));
    must_be_new(&t, std::slice::from_ref(&id_col))?;
    let lookup = req.to.clone().unwrap_or_else(|| format!("{col}_lookup"));
    let schema = t
        .qualified
        .rsplit_once('.')
        .map_or("public", |(s, _)| s)
        .to_string();
    let lq = format!("{schema}.{}", quote_ident(&lookup));
    let exists: bool = db.query("select to_regclass($1) is not null", &[&lq])?[0].get(0);
    if exists {
        bail!("{lq} already exists: name the lookup table with --to NAME");
    }
    let id = id_of(req);
    let (qc, qi) = (quote_ident(&col), quote_ident(&id_col));
    let fk = format!("{}_{id_col}_fkey", t.name);
    let what = format!("introduce-lookup-table {}.{col} → {lq}", t.qualified);
    let mut expand = sync::header(&id, &what, "expand", &req.contract_after) + LOCK_TIMEOUT;
    expand += &format!(
        "CREATE TABLE IF NOT EXISTS {lq} (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  \
         value {} NOT NULL UNIQUE\n);\n",
        c.ty
    );
    expand += &sync::add_columns(&t, &[(id_col.clone(), "bigint".into())]);
    expand += &guarded(
        &no_constraint(&t, &fk),
        &format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({qi}) REFERENCES {lq} (id) NOT VALID;",
            t.qualified,
            quote_ident(&fk)
        ),
    );
    let forward = format!(
        "IF NEW.{qc} IS NULL THEN\n    NEW.{qi} := NULL;\n  ELSE\n    \
         INSERT INTO {lq} (value) VALUES (NEW.{qc}) ON CONFLICT (value) DO NOTHING;\n    \
         SELECT id INTO NEW.{qi} FROM {lq} WHERE value = NEW.{qc};\n  END IF;"
    );
    let reverse = format!("SELECT value INTO NEW.{qc} FROM {lq} WHERE id = NEW.{qi};");
    expand += &sync::sync_trigger(
        &t,
        &id,
        std::slice::from_ref(&col),
        std::slice::from_ref(&id_col),
        &forward,
        Some(&reverse),
    );
    let finish = format!(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({qi});\n\
         ALTER TABLE {} VALIDATE CONSTRAINT {};\n",
        quote_ident(&format!("{}_{id_col}_idx", t.name)),
        t.qualified,
        t.qualified,
        quote_ident(&fk)
    );
    let contract = sync::header(&id, &what, "contract", &req.contract_after)
        + LOCK_TIMEOUT
        + &sync::drop_sync(&t, &id)
        + &format!(
            "-- lakelet:allow drop-column the transition {id} ended; readers join {lq}\n\
             ALTER TABLE {} DROP COLUMN IF EXISTS {qc};\n",
            t.qualified
        );
    let mut p = expand_contract(
        req,
        &t,
        &col,
        expand,
        vec![sync::backfill(&id, &t, &col, &finish)],
        Some(contract),
    );
    p.old_shape = vec![(t.qualified.clone(), col)];
    Ok(p)
}

pub(super) fn drop_column(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    if t.key.contains(&col) {
        bail!(
            "{}.{col} is part of the primary key: replace the key first",
            t.qualified
        );
    }
    let id = id_of(req);
    let qc = quote_ident(&col);
    let what = format!("drop-column {}.{col}", t.qualified);
    let mut expand = sync::header(&id, &what, "expand", &req.contract_after) + LOCK_TIMEOUT;
    if c.not_null {
        expand += &format!(
            "ALTER TABLE {} ALTER COLUMN {qc} DROP NOT NULL;\n",
            t.qualified
        );
    }
    expand += &format!(
        "COMMENT ON COLUMN {}.{qc} IS {};\n",
        t.qualified,
        quote_literal(&format!(
            "deprecated: lakelet transition {id} drops it after {}",
            req.contract_after
        ))
    );
    let contract = sync::header(&id, &what, "contract", &req.contract_after)
        + LOCK_TIMEOUT
        + &format!(
            "-- lakelet:allow drop-column the transition {id} ended; nothing reads it\n\
             ALTER TABLE {} DROP COLUMN IF EXISTS {qc};\n",
            t.qualified
        );
    let mut p = expand_contract(req, &t, &col, expand, vec![], Some(contract));
    p.old_shape = vec![(t.qualified.clone(), col)];
    Ok(p)
}

pub(super) fn rename_table(db: &Db, req: &Request) -> Result<Plan> {
    let t = inspect(db, &req.target)?;
    let Some(to) = &req.to else {
        bail!("rename-table needs the new name: --to NAME");
    };
    let schema = t
        .qualified
        .rsplit_once('.')
        .map_or("public", |(s, _)| s)
        .to_string();
    let nq = format!("{schema}.{}", quote_ident(to));
    let taken: bool = db.query("select to_regclass($1) is not null", &[&nq])?[0].get(0);
    if taken {
        bail!("{nq} already exists: pick another name");
    }
    let id = id_of(req);
    let what = format!("rename-table {} to {to}", t.qualified);
    let expand = sync::header(&id, &what, "expand", &req.contract_after)
        + LOCK_TIMEOUT
        + &format!(
            "-- lakelet:allow rename-table the view {} keeps old readers and writers working\n",
            t.name
        )
        + &guarded(
            &format!(
                "(SELECT relkind FROM pg_class WHERE oid = to_regclass({})) IN ('r', 'p')",
                quote_literal(&t.qualified)
            ),
            &format!("ALTER TABLE {} RENAME TO {};", t.qualified, quote_ident(to)),
        )
        + &format!(
            "-- Old readers and writers: a view under the old name (simple, so updatable).\n\
             CREATE OR REPLACE VIEW {} AS SELECT * FROM {nq};\n",
            t.qualified
        );
    let contract = sync::header(&id, &what, "contract", &req.contract_after)
        + LOCK_TIMEOUT
        + &format!("DROP VIEW IF EXISTS {};\n", t.qualified);
    let mut p = expand_contract(req, &t, "", expand, vec![], Some(contract));
    p.columns = vec![];
    p.old_shape = vec![(t.qualified.clone(), String::new())];
    Ok(p)
}

pub(super) fn move_column(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    let Some(to) = &req.to else {
        bail!("move-column needs the table it moves to: --to TABLE --via COLUMN");
    };
    let u = inspect(db, to)?;
    let Some(via) = &req.via else {
        bail!(
            "move-column needs the column of {} that points at {}: --via COLUMN",
            u.qualified,
            t.qualified
        );
    };
    u.column(via)?;
    let [key] = t.key.as_slice() else {
        bail!(
            "move-column needs {} to have a one-column primary key",
            t.qualified
        );
    };
    must_be_new(&u, std::slice::from_ref(&col))?;
    let id = id_of(req);
    let (qc, qv, qk) = (quote_ident(&col), quote_ident(via), quote_ident(key));
    let f = sync::sync_name(&id);
    let what = format!("move-column {}.{col} to {}", t.qualified, u.qualified);
    let mut expand = sync::header(&id, &what, "expand", &req.contract_after) + LOCK_TIMEOUT;
    expand += &sync::add_columns(&u, &[(col.clone(), c.ty.clone())]);
    // Source → target after every write of the column; target → source for writers of the
    // target's copy; a new target row starts with the source's value. The IS DISTINCT FROM
    // guards stop the two triggers from firing each other forever.
    let trigger = |name: &str, when: &str, on: &Table, body: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION {n}() RETURNS trigger LANGUAGE plpgsql AS $sync$\n\
             BEGIN\n  {body}\n  RETURN NEW;\nEND $sync$;\n\
             DROP TRIGGER IF EXISTS {n} ON {tbl};\n\
             CREATE TRIGGER {n} {when} ON {tbl}\n  FOR EACH ROW EXECUTE FUNCTION {n}();\n",
            n = quote_ident(name),
            tbl = on.qualified
        )
    };
    expand += &trigger(
        &f,
        &format!("AFTER INSERT OR UPDATE OF {qc}"),
        &t,
        &format!(
            "UPDATE {} SET {qc} = NEW.{qc} WHERE {qv} = NEW.{qk} AND {qc} IS DISTINCT FROM NEW.{qc};",
            u.qualified
        ),
    );
    expand += &trigger(
        &format!("{f}_in"),
        "BEFORE INSERT",
        &u,
        &format!(
            "IF NEW.{qc} IS NULL THEN\n    SELECT {qc} INTO NEW.{qc} FROM {} WHERE {qk} = NEW.{qv};\n  END IF;",
            t.qualified
        ),
    );
    expand += &trigger(
        &format!("{f}_back"),
        &format!("AFTER UPDATE OF {qc}"),
        &u,
        &format!(
            "UPDATE {} SET {qc} = NEW.{qc} WHERE {qk} = NEW.{qv} AND {qc} IS DISTINCT FROM NEW.{qc};",
            t.qualified
        ),
    );
    let contract = sync::header(&id, &what, "contract", &req.contract_after)
        + LOCK_TIMEOUT
        + &sync::drop_sync(&t, &id)
        + &format!(
            "DROP TRIGGER IF EXISTS {i} ON {u};\nDROP FUNCTION IF EXISTS {i}();\n\
             DROP TRIGGER IF EXISTS {b} ON {u};\nDROP FUNCTION IF EXISTS {b}();\n\
             -- lakelet:allow drop-column the transition {id} ended; readers use {u}.{col}\n\
             ALTER TABLE {} DROP COLUMN IF EXISTS {qc};\n",
            t.qualified,
            i = quote_ident(&format!("{f}_in")),
            b = quote_ident(&format!("{f}_back")),
            u = u.qualified,
        );
    let mut p = expand_contract(
        req,
        &t,
        &col,
        expand,
        vec![sync::backfill(&id, &t, &col, "")],
        Some(contract),
    );
    p.old_shape = vec![(t.qualified.clone(), col)];
    Ok(p)
}
