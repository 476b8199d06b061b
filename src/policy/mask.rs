//! Masking a branch: the rules of `[masking.columns]` applied, by the daemon, on the branch's own
//! compute, before anyone may connect to it.
//!
//! Per table: one UPDATE of every masked column (triggers and foreign keys off, so the masking
//! is only the masking), then `VACUUM (FULL, ANALYZE)`: the rewrite leaves no dead tuple and no
//! index entry holding a raw value, and the fresh statistics (pg_stats shows sample values)
//! are of masked data. A CHECKPOINT last, so the masked state is the branch's durable state and
//! a child cut from it never replays the raw values. Tables the rules do not name are never
//! written: their pages stay shared with the parent.
//!
//! Hashes are keyed (HMAC-like: SHA-256 of a per-daemon secret and the value), deterministic
//! so equal values stay equal and joins on masked keys still match, and not reversible by
//! hashing a dictionary of likely values without the key.

use std::path::Path;

use anyhow::{Context, Result};

use super::model::{MaskMethod, MaskRule};

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Column {
    pub data_type: String,
    pub max_len: Option<i32>,
    pub nullable: bool,
}

/// The SQL expression that replaces column `c`'s value.
pub fn expr(rule: &MaskRule, col: &Column, key: &str) -> Result<String, String> {
    let c = ident(&rule.column);
    let text = matches!(
        col.data_type.as_str(),
        "text" | "character varying" | "character" | "citext"
    );
    let int_max = match col.data_type.as_str() {
        "smallint" => Some("32767"),
        "integer" => Some("2147483647"),
        "bigint" => Some("9223372036854775807"),
        _ => None,
    };
    let hex = format!(
        "encode(sha256(convert_to({} || {c}::text, 'UTF8')), 'hex')",
        literal(key)
    );
    let fit = |e: String| match col.max_len {
        Some(n) => format!("left({e}, {n})"),
        None => e,
    };
    let need_text = |m: &str| {
        format!(
            "{m} needs a text column, and {}.{}.{} is {}: use hash, null or fixed",
            rule.schema, rule.table, rule.column, col.data_type
        )
    };
    Ok(match &rule.method {
        MaskMethod::Hash if text => fit(format!("left({hex}, 32)")),
        MaskMethod::Hash => match int_max {
            // 60 bits of the hash, folded into the column's range: still deterministic.
            Some(max) => format!(
                "(('x' || left({hex}, 15))::bit(60)::bigint % {max})::{}",
                col.data_type
            ),
            None => return Err(need_text("hash")),
        },
        MaskMethod::Email if text => {
            fit(format!("left({hex}, 16) || '@' || split_part({c}, '@', 2)"))
        }
        MaskMethod::Email => return Err(need_text("email")),
        MaskMethod::Partial {
            keep_first,
            keep_last,
        } if text => {
            let (a, b) = (keep_first, keep_last);
            format!(
                "CASE WHEN length({c}) <= {a} + {b} THEN repeat('*', length({c})) \
                 ELSE left({c}, {a}) || repeat('*', length({c}) - {a} - {b}) || right({c}, {b}) END"
            )
        }
        MaskMethod::Partial { .. } => return Err(need_text("partial")),
        MaskMethod::Null if !col.nullable => {
            return Err(format!(
                "{}.{}.{} is NOT NULL; mask it with fixed or hash",
                rule.schema, rule.table, rule.column
            ))
        }
        MaskMethod::Null => "NULL".into(),
        MaskMethod::Fixed(v) => literal(v),
    })
}

/// What masking did, for the audit.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub tables: Vec<String>,
    pub rows: u64,
    /// Rules whose table or column the branch does not have (yet).
    pub skipped: Vec<String>,
}

/// Applies `rules` on the compute listening in `sockdir`, in every database.
pub async fn apply(sockdir: &Path, rules: &[MaskRule], key: &str) -> Result<Report> {
    let mut report = Report::default();
    let dbs = {
        let client = super::connect(sockdir, "postgres").await?;
        client
            .query(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    for db in &dbs {
        let client = super::connect(sockdir, db).await?;
        // Group the rules by table: one UPDATE rewrites each row once.
        let mut tables: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.schema.as_str(), r.table.as_str()))
            .collect();
        tables.sort();
        tables.dedup();
        for (schema, table) in tables {
            let mut sets = vec![];
            for rule in rules
                .iter()
                .filter(|r| r.schema == schema && r.table == table)
            {
                let row = client
                    .query_opt(
                        "SELECT data_type, character_maximum_length, is_nullable = 'YES' \
                         FROM information_schema.columns \
                         WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
                        &[&schema, &table, &rule.column],
                    )
                    .await?;
                let Some(row) = row else {
                    report
                        .skipped
                        .push(format!("{db}:{schema}.{table}.{}", rule.column));
                    continue;
                };
                let col = Column {
                    data_type: row.get(0),
                    max_len: row.get(1),
                    nullable: row.get(2),
                };
                let e = expr(rule, &col, key).map_err(|m| {
                    anyhow::anyhow!("masking.columns.\"{schema}.{table}.{}\": {m}", rule.column)
                })?;
                sets.push(format!("{} = {e}", ident(&rule.column)));
            }
            if sets.is_empty() {
                continue;
            }
            let t = format!("{}.{}", ident(schema), ident(table));
            client
                .batch_execute("BEGIN; SET LOCAL session_replication_role = replica")
                .await
                .with_context(|| format!("masking {db}:{t}"))?;
            let rows = client
                .execute(&format!("UPDATE {t} SET {}", sets.join(", ")), &[])
                .await
                .with_context(|| format!("masking {db}:{t}"))?;
            client.batch_execute("COMMIT").await?;
            client
                .batch_execute(&format!("VACUUM (FULL, ANALYZE) {t}"))
                .await
                .with_context(|| format!("rewriting {db}:{t} after masking"))?;
            report.rows += rows;
            report.tables.push(format!("{db}:{schema}.{table}"));
        }
    }
    let client = super::connect(sockdir, "postgres").await?;
    client.batch_execute("CHECKPOINT").await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(m: MaskMethod) -> MaskRule {
        MaskRule {
            schema: "public".into(),
            table: "t".into(),
            column: "c".into(),
            method: m,
        }
    }

    fn col(t: &str, nullable: bool) -> Column {
        Column {
            data_type: t.into(),
            max_len: None,
            nullable,
        }
    }

    #[test]
    fn expressions_fit_the_column() {
        let e = expr(&rule(MaskMethod::Email), &col("text", true), "k").unwrap();
        assert!(e.contains("split_part(\"c\", '@', 2)"), "{e}");
        let e = expr(&rule(MaskMethod::Hash), &col("integer", true), "k").unwrap();
        assert!(e.ends_with("::integer"), "{e}");
        assert!(expr(&rule(MaskMethod::Email), &col("integer", true), "k").is_err());
        assert!(expr(&rule(MaskMethod::Null), &col("text", false), "k")
            .unwrap_err()
            .contains("NOT NULL"));
        let e = expr(
            &rule(MaskMethod::Fixed("it's".into())),
            &col("text", true),
            "k",
        )
        .unwrap();
        assert_eq!(e, "'it''s'");
        let mut c = col("character varying", true);
        c.max_len = Some(8);
        assert!(expr(&rule(MaskMethod::Hash), &c, "k")
            .unwrap()
            .starts_with("left(left("));
    }
}
