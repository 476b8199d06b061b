//! What changed in a branch's rows against another running branch: the check `lakelet
//! rollback` makes before it repoints a tier, so rows written after a promotion are never
//! dropped without being named.
//!
//! Per table of every database both sides have: the row count and a sum of per-row hashes
//! over the columns both sides have. Equal sums are not proof of equal rows, but unequal sums
//! are proof of a change, which is what a refusal needs; a rollback that goes ahead on a
//! collision loses writes that a 64-bit sum did not see.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Endpoint;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableChange {
    pub database: String,
    /// `schema.table`.
    pub table: String,
    /// Rows at the earlier point; `None`: the table was not there.
    pub rows_then: Option<i64>,
    /// Rows now; `None`: the table is gone.
    pub rows_now: Option<i64>,
}

impl std::fmt::Display for TableChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = format!("{}.{}", self.database, self.table);
        match (self.rows_then, self.rows_now) {
            (None, Some(n)) => write!(f, "{t}: created since ({n} rows)"),
            (Some(n), None) => write!(f, "{t}: dropped since ({n} rows then)"),
            (Some(a), Some(b)) if a == b => write!(f, "{t}: {a} rows, some changed"),
            (Some(a), Some(b)) => write!(f, "{t}: {a} rows then, {b} now"),
            (None, None) => write!(f, "{t}"),
        }
    }
}

async fn session(ep: &Endpoint, db: &str) -> Result<tokio_postgres::Client> {
    let mut cfg = super::postgres::config(&ep.socket_dir);
    cfg.dbname(db);
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to database {db} of '{}'", ep.branch))?;
    tokio::spawn(conn);
    Ok(client)
}

/// The user's tables of a database and their columns, in column order.
async fn tables(c: &tokio_postgres::Client) -> Result<Vec<(String, Vec<String>)>> {
    let rows = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    coalesce(array_agg(quote_ident(a.attname) ORDER BY a.attnum)
                             FILTER (WHERE a.attnum > 0), '{}')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE c.relkind = 'r' AND n.nspname !~ '^pg_'
                AND n.nspname NOT IN ('information_schema', '_lakelet')
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// (rows, sum of row hashes over `cols`).
async fn fingerprint(
    c: &tokio_postgres::Client,
    table: &str,
    cols: &[String],
) -> Result<(i64, i64)> {
    let row = if cols.is_empty() {
        "''".to_string()
    } else {
        format!("row({})::text", cols.join(", "))
    };
    let q = format!(
        "SELECT count(*), coalesce(sum(hashtext({row})::bigint), 0)::bigint FROM ONLY {table}"
    );
    let r = c
        .query_one(&q, &[])
        .await
        .with_context(|| format!("reading {table}"))?;
    Ok((r.get(0), r.get(1)))
}

/// Every table whose rows differ between `then` and `now` (both running), database by
/// database; a database only one side has counts as all its tables.
pub async fn changes(then: &Endpoint, now: &Endpoint) -> Result<Vec<TableChange>> {
    let dbs = |c: tokio_postgres::Client| async move {
        let rows = c
            .query(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
                &[],
            )
            .await?;
        Ok::<Vec<String>, anyhow::Error>(rows.iter().map(|r| r.get(0)).collect())
    };
    let dbs_then = dbs(session(then, "postgres").await?).await?;
    let dbs_now = dbs(session(now, "postgres").await?).await?;
    let mut all: Vec<&String> = dbs_then.iter().chain(&dbs_now).collect();
    all.sort();
    all.dedup();
    let mut out = vec![];
    for db in all {
        let a = match dbs_then.contains(db) {
            true => Some(session(then, db).await?),
            false => None,
        };
        let b = match dbs_now.contains(db) {
            true => Some(session(now, db).await?),
            false => None,
        };
        let ta = match &a {
            Some(c) => tables(c).await?,
            None => vec![],
        };
        let tb = match &b {
            Some(c) => tables(c).await?,
            None => vec![],
        };
        for (name, cols_a) in &ta {
            let cols_b = tb.iter().find(|(n, _)| n == name).map(|(_, c)| c);
            let Some(cols_b) = cols_b else {
                let (n, _) = fingerprint(a.as_ref().unwrap(), name, cols_a).await?;
                out.push(TableChange {
                    database: db.clone(),
                    table: name.clone(),
                    rows_then: Some(n),
                    rows_now: None,
                });
                continue;
            };
            let common: Vec<String> = cols_b
                .iter()
                .filter(|c| cols_a.contains(c))
                .cloned()
                .collect();
            let fa = fingerprint(a.as_ref().unwrap(), name, &common).await?;
            let fb = fingerprint(b.as_ref().unwrap(), name, &common).await?;
            if fa != fb {
                out.push(TableChange {
                    database: db.clone(),
                    table: name.clone(),
                    rows_then: Some(fa.0),
                    rows_now: Some(fb.0),
                });
            }
        }
        for (name, cols_b) in &tb {
            if !ta.iter().any(|(n, _)| n == name) {
                let (n, _) = fingerprint(b.as_ref().unwrap(), name, cols_b).await?;
                out.push(TableChange {
                    database: db.clone(),
                    table: name.clone(),
                    rows_then: None,
                    rows_now: Some(n),
                });
            }
        }
    }
    Ok(out)
}
