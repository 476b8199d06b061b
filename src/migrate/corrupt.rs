//! Destructive testing on purpose: damage a slice of a column the way real data is damaged
//! (a missing digit, an embedded space, a trailing blank), so a rehearsal shows what the
//! migration does with rows nobody expected. Only ever run on a throwaway branch.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::db::{quote_ident, Db};

/// `--corrupt [SCHEMA.]TABLE.COLUMN[:PERCENT]`.
#[derive(Debug, Clone, Serialize)]
pub struct Corruption {
    pub table: String,
    pub column: String,
    pub percent: f64,
}

impl std::str::FromStr for Corruption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (target, pct) = match s.rsplit_once(':') {
            Some((t, p)) => {
                let p: f64 = p
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("{p:?} is not a percentage (e.g. 1 or 0.5%)"))?;
                if !(0.0..=100.0).contains(&p) || p == 0.0 {
                    return Err(format!("{p}% is not in (0, 100]"));
                }
                (t, p)
            }
            None => (s, 1.0),
        };
        let parts: Vec<&str> = target.split('.').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{target:?}: name a column as TABLE.COLUMN or SCHEMA.TABLE.COLUMN"
            ));
        }
        let column = parts[parts.len() - 1].to_string();
        let table = parts[..parts.len() - 1]
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join(".");
        Ok(Corruption {
            table,
            column,
            percent: pct,
        })
    }
}

/// How many rows got each kind of damage.
#[derive(Debug, Clone, Serialize)]
pub struct Corrupted {
    pub table: String,
    pub column: String,
    pub rows: u64,
    pub missing_digit: u64,
    pub embedded_space: u64,
    pub trailing_blank: u64,
}

/// Damages about `percent`% of the non-null values of the column, chosen by a hash of each
/// row's ctid and `seed` (the same seed picks the same rows).
pub fn apply(db: &Db, c: &Corruption, seed: u32) -> Result<Corrupted> {
    let col = quote_ident(&c.column);
    let basis_points = (c.percent * 100.0).round() as i64;
    let pick = format!("abs(hashtext(ctid::text || '{seed}')) % 10000 < {basis_points}");
    let kind = format!("abs(hashtext(ctid::text || '{seed}k')) % 3");
    let counts = db
        .query(
            &format!(
                "select count(*) filter (where k = 0), count(*) filter (where k = 1), \
                 count(*) filter (where k = 2) from \
                 (select {kind} as k from {t} where {col} is not null and {pick}) s",
                t = c.table
            ),
            &[],
        )
        .with_context(|| format!("reading {}.{}", c.table, c.column))?;
    let n = |i: usize| counts[0].get::<_, i64>(i) as u64;
    let rows = db
        .execute(
            &format!(
                "update {t} set {col} = case {kind} \
                   when 0 then regexp_replace({col}::text, '[0-9]', '') \
                   when 1 then overlay({col}::text placing ' ' from length({col}::text) / 2 + 1 for 0) \
                   else {col}::text || ' ' end \
                 where {col} is not null and {pick}",
                t = c.table
            ),
            &[],
        )
        .with_context(|| {
            format!(
                "corrupting {}.{} (a text column is needed)",
                c.table, c.column
            )
        })?;
    if rows == 0 {
        bail!(
            "--corrupt {}.{}:{}% picked no row; the table may be empty or the share too small",
            c.table,
            c.column,
            c.percent
        );
    }
    Ok(Corrupted {
        table: c.table.clone(),
        column: c.column.clone(),
        rows,
        missing_digit: n(0),
        embedded_space: n(1),
        trailing_blank: n(2),
    })
}
