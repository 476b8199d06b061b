//! The refactorings that compute new columns from old ones (Split Column, Merge Columns,
//! Rename Column, Replace Type): one [`Transform`] each.

use anyhow::{bail, Result};

use super::super::db::Db;
use super::catalog::*;
use super::ident as quote_ident;
use super::sync;
use super::{inspect, probe_expressions, table_column, Plan, Request};

pub(super) fn split_column(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?;
    if c.category != "S" {
        bail!(
            "split-column splits a text column; {}.{col} is {}. Change its type first \
             (lakelet refactor replace-type)",
            t.qualified,
            c.ty
        );
    }
    if req.into.is_empty() {
        bail!("split-column needs the new columns: --into a,b,c");
    }
    must_be_new(&t, &req.into)?;
    let using = per_column(&req.using, req.into.len(), "--using", "split-column")?;
    let probed = probe_expressions(db, &t, &using, "--using")?;
    let new = typed(&req.into, &req.types, probed)?;
    let reverse = if req.reverse.is_empty() {
        None
    } else {
        let r = per_column(&req.reverse, 1, "--reverse", "split-column's old column")?;
        check_reverse(db, &t, &new, &r)?;
        Some(sync::assign(&t, &r, std::slice::from_ref(&col)))
    };
    let what = format!(
        "split-column {}.{col} into {}",
        t.qualified,
        req.into.join(", ")
    );
    Ok(transform(
        req,
        Transform {
            forward: sync::assign(&t, &using, &req.into),
            reverse,
            what,
            old: vec![col],
            new,
            t: &t,
        },
    ))
}

pub(super) fn merge_columns(db: &Db, req: &Request) -> Result<Plan> {
    let (table, cols) = table_column(&req.target)?;
    let old: Vec<String> = cols.split(',').map(|c| c.trim().to_string()).collect();
    let t = inspect(db, &table)?;
    for c in &old {
        t.column(c)?;
    }
    if old.len() < 2 {
        bail!("merge-columns merges two or more columns: TABLE.A,B");
    }
    let [into] = req.into.as_slice() else {
        bail!("merge-columns needs one new column: --into NAME");
    };
    must_be_new(&t, &req.into)?;
    let using = per_column(&req.using, 1, "--using", "merge-columns")?;
    let probed = probe_expressions(db, &t, &using, "--using")?;
    let new = typed(&req.into, &req.types, probed)?;
    let reverse = if req.reverse.is_empty() {
        None
    } else {
        let r = per_column(
            &req.reverse,
            old.len(),
            "--reverse",
            "merge-columns's old columns",
        )?;
        check_reverse(db, &t, &new, &r)?;
        Some(sync::assign(&t, &r, &old))
    };
    Ok(transform(
        req,
        Transform {
            what: format!(
                "merge-columns {}.{} into {into}",
                t.qualified,
                old.join(", ")
            ),
            forward: sync::assign(&t, &using, &req.into),
            reverse,
            old,
            new,
            t: &t,
        },
    ))
}

pub(super) fn rename_column(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    let Some(to) = &req.to else {
        bail!("rename-column needs the new name: --to NAME");
    };
    must_be_new(&t, std::slice::from_ref(to))?;
    Ok(transform(
        req,
        Transform {
            what: format!("rename-column {}.{col} to {to}", t.qualified),
            forward: sync::assign(&t, &[quote_ident(&col)], std::slice::from_ref(to)),
            reverse: Some(sync::assign(
                &t,
                &[quote_ident(to)],
                std::slice::from_ref(&col),
            )),
            old: vec![col],
            new: vec![(to.clone(), c.ty)],
            t: &t,
        },
    ))
}

pub(super) fn replace_type(db: &Db, req: &Request) -> Result<Plan> {
    let (table, col) = table_column(&req.target)?;
    let t = inspect(db, &table)?;
    let c = t.column(&col)?.clone();
    let [ty] = req.types.as_slice() else {
        bail!("replace-type needs the new type: --type TYPE");
    };
    let canonical = db
        .query("select format_type(to_regtype($1), null)", &[ty])?
        .first()
        .and_then(|r| r.get::<_, Option<String>>(0));
    let Some(canonical) = canonical else {
        bail!("replace-type: no type {ty:?} on this branch");
    };
    if canonical == c.ty || ty == &c.ty {
        bail!(
            "{}.{col} is already {}: nothing to replace",
            t.qualified,
            c.ty
        );
    }
    let to = req.to.clone().unwrap_or_else(|| format!("{col}_new"));
    must_be_new(&t, std::slice::from_ref(&to))?;
    let using = if req.using.is_empty() {
        vec![format!("{}::{ty}", quote_ident(&col))]
    } else {
        per_column(&req.using, 1, "--using", "replace-type")?
    };
    probe_expressions(db, &t, &using, "--using")?;
    let new = vec![(to.clone(), ty.clone())];
    let reverse = if req.reverse.is_empty() {
        vec![format!("{}::{}", quote_ident(&to), c.ty)]
    } else {
        per_column(&req.reverse, 1, "--reverse", "replace-type")?
    };
    check_reverse(db, &t, &new, &reverse)?;
    Ok(transform(
        req,
        Transform {
            what: format!("replace-type {}.{col} {} → {ty} as {to}", t.qualified, c.ty),
            forward: sync::assign(&t, &using, std::slice::from_ref(&to)),
            reverse: Some(sync::assign(&t, &reverse, std::slice::from_ref(&col))),
            old: vec![col],
            new,
            t: &t,
        },
    ))
}
