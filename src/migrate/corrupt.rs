//! Destructive testing on purpose: damage a slice of a column the way real data is damaged,
//! by named recipes (a missing digit, an embedded space, a trailing blank, the wrong case, a
//! NULL, a date nobody meant, a duplicate where no constraint stops one, an overlong string),
//! so a rehearsal shows what the migration does with rows nobody expected. Only ever run on a
//! throwaway branch.
//!
//! Reproducible: which rows a spec damages, and with which of its recipes, is a hash of each
//! row's ctid, the seed and the spec's position, so the same seed on the same parent damages
//! the same rows the same way. Every damaged row's key is kept, so the rows that then break
//! a migration can be grouped by the recipe that broke them.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::db::{quote_ident, quote_literal, Db};

/// A named kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    MissingDigit,
    EmbeddedSpace,
    TrailingBlank,
    WrongCase,
    Null,
    OutOfRangeDate,
    DuplicateKey,
    OverlongString,
}

impl Recipe {
    pub const ALL: &'static [Recipe] = &[
        Recipe::MissingDigit,
        Recipe::EmbeddedSpace,
        Recipe::TrailingBlank,
        Recipe::WrongCase,
        Recipe::Null,
        Recipe::OutOfRangeDate,
        Recipe::DuplicateKey,
        Recipe::OverlongString,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Recipe::MissingDigit => "missing-digit",
            Recipe::EmbeddedSpace => "embedded-space",
            Recipe::TrailingBlank => "trailing-blank",
            Recipe::WrongCase => "wrong-case",
            Recipe::Null => "null",
            Recipe::OutOfRangeDate => "out-of-range-date",
            Recipe::DuplicateKey => "duplicate-key",
            Recipe::OverlongString => "overlong-string",
        }
    }

    /// What it does to a value, for `--help` and reports.
    pub fn summary(self) -> &'static str {
        match self {
            Recipe::MissingDigit => "drops the first digit (text)",
            Recipe::EmbeddedSpace => "puts a space in the middle (text)",
            Recipe::TrailingBlank => "appends a blank (text)",
            Recipe::WrongCase => "flips the case (text)",
            Recipe::Null => "sets NULL (a nullable column)",
            Recipe::OutOfRangeDate => {
                "year 0001 or 9999 (date/timestamp), or a day that does not exist (text)"
            }
            Recipe::DuplicateKey => "copies another row's value (no unique index on the column)",
            Recipe::OverlongString => "appends 256 characters (text, not varchar(n))",
        }
    }
}

impl std::str::FromStr for Recipe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Recipe::ALL
            .iter()
            .copied()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Recipe::ALL.iter().map(|r| r.name()).collect();
                format!("no corruption recipe {s:?}; recipes: {}", names.join(", "))
            })
    }
}

/// `--corrupt [SCHEMA.]TABLE.COLUMN[:PERCENT][@RECIPE[,RECIPE…]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Corruption {
    pub table: String,
    pub column: String,
    pub percent: f64,
    /// Empty: the column type's defaults (text: missing digit, embedded space, trailing blank).
    pub recipes: Vec<Recipe>,
}

impl std::str::FromStr for Corruption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (s, recipes) = match s.split_once('@') {
            Some((t, r)) => (
                t,
                r.split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<Recipe>, _>>()?,
            ),
            None => (s, vec![]),
        };
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
            recipes,
        })
    }
}

/// What one spec damaged.
#[derive(Debug, Clone, Serialize)]
pub struct Corrupted {
    pub table: String,
    pub column: String,
    pub rows: u64,
    /// Rows damaged by each recipe.
    pub recipes: BTreeMap<Recipe, u64>,
    /// Every damaged row's key ([`super::diagnose::row_key`]) and the recipe that damaged it.
    #[serde(skip)]
    pub marks: Vec<(String, Recipe)>,
}

/// The column as the recipes need to know it.
struct Column {
    /// `format_type`: what each damaged value is cast back to.
    ty: String,
    /// pg_type.typcategory: S string, D date/time.
    category: String,
    not_null: bool,
    /// A unique index on this column alone.
    unique: bool,
}

fn column(db: &Db, c: &Corruption) -> Result<Column> {
    let rows = db
        .query(
            "select format_type(a.atttypid, a.atttypmod), t.typcategory::text, a.attnotnull, \
               exists (select 1 from pg_index i where i.indrelid = a.attrelid \
                       and i.indisunique and i.indnatts = 1 and i.indkey[0] = a.attnum) \
             from pg_attribute a join pg_type t on t.oid = a.atttypid \
             where a.attrelid = to_regclass($1) and a.attname = $2 and a.attnum > 0 \
               and not a.attisdropped",
            &[&c.table, &c.column],
        )
        .with_context(|| format!("reading {}.{}", c.table, c.column))?;
    let Some(r) = rows.first() else {
        bail!(
            "--corrupt: no column {} in table {} on this branch (is the name right, and the \
             table created by an applied migration?)",
            c.column,
            c.table
        );
    };
    Ok(Column {
        ty: r.get(0),
        category: r.get(1),
        not_null: r.get(2),
        unique: r.get(3),
    })
}

/// The damaged value of `v` under `recipe`, or why the recipe cannot damage this column.
fn damage(recipe: Recipe, v: &str, c: &Column, table: &str) -> Result<String, String> {
    let text = c.category == "S";
    let need_text = || {
        if text {
            Ok(())
        } else {
            Err(format!(
                "{} needs a text column; this one is {}",
                recipe.name(),
                c.ty
            ))
        }
    };
    let expr = match recipe {
        Recipe::MissingDigit => {
            need_text()?;
            format!("regexp_replace({v}::text, '[0-9]', '')")
        }
        Recipe::EmbeddedSpace => {
            need_text()?;
            format!("overlay({v}::text placing ' ' from length({v}::text) / 2 + 1 for 0)")
        }
        Recipe::TrailingBlank => {
            need_text()?;
            format!("{v}::text || ' '")
        }
        Recipe::WrongCase => {
            need_text()?;
            format!("case when {v}::text = upper({v}::text) then lower({v}::text) else upper({v}::text) end")
        }
        Recipe::OverlongString => {
            need_text()?;
            if c.ty.contains('(') {
                return Err(format!(
                    "{} already refuses overlong strings: Postgres stops this damage",
                    c.ty
                ));
            }
            format!("{v}::text || repeat('x', 256)")
        }
        Recipe::Null => {
            if c.not_null {
                return Err("the column is NOT NULL: Postgres stops this damage".into());
            }
            "null".into()
        }
        Recipe::OutOfRangeDate => match c.category.as_str() {
            "D" => format!("case when {v} < '2000-01-01' then '9999-12-31' else '0001-01-01' end"),
            "S" => "'2026-02-30'".into(),
            _ => {
                return Err(format!(
                    "{} needs a date, timestamp or text column; this one is {}",
                    recipe.name(),
                    c.ty
                ))
            }
        },
        Recipe::DuplicateKey => {
            if c.unique {
                return Err("a unique index on the column stops duplicates".into());
            }
            format!("(select d.{v} from {table} d where d.{v} is not null order by d.ctid limit 1)")
        }
    };
    Ok(format!("cast(({expr}) as {})", c.ty))
}

/// Damages about `percent`% of the column's non-null values; `index` is the spec's position
/// among `--corrupt` flags (two specs on one column pick different rows).
pub fn apply(db: &Db, c: &Corruption, seed: u32, index: usize) -> Result<Corrupted> {
    let col = column(db, c)?;
    let recipes = if !c.recipes.is_empty() {
        c.recipes.clone()
    } else if col.category == "S" {
        vec![
            Recipe::MissingDigit,
            Recipe::EmbeddedSpace,
            Recipe::TrailingBlank,
        ]
    } else if col.category == "D" {
        vec![Recipe::OutOfRangeDate]
    } else {
        vec![Recipe::Null]
    };
    let v = quote_ident(&c.column);
    let mut arms = String::new();
    for (k, r) in recipes.iter().enumerate() {
        let e = damage(*r, &v, &col, &c.table).map_err(|why| {
            anyhow::anyhow!(
                "--corrupt {}.{}@{}: {why}; pick another recipe",
                c.table,
                c.column,
                r.name()
            )
        })?;
        arms += &format!(" when {k} then {e}");
    }
    let basis_points = (c.percent * 100.0).round() as i64;
    let salt = quote_literal(&format!("{seed}:{index}"));
    let key = super::diagnose::row_key(db, &c.table)?;
    let sql = format!(
        "update {t} x set {v} = case s.k{arms} end \
         from (select ctid as c0, abs(hashtext(ctid::text || {salt} || 'k')) % {n} as k \
               from {t} where {v} is not null \
               and abs(hashtext(ctid::text || {salt})) % 10000 < {basis_points}) s \
         where x.ctid = s.c0 returning {key}, s.k",
        t = c.table,
        n = recipes.len(),
    );
    let rows = db
        .query(&sql, &[])
        .with_context(|| format!("corrupting {}.{}", c.table, c.column))?;
    if rows.is_empty() {
        bail!(
            "--corrupt {}.{}:{}% picked no row; the table may be empty or the share too small",
            c.table,
            c.column,
            c.percent
        );
    }
    let table = super::diagnose::canonical(db, &c.table)?;
    let mut out = Corrupted {
        table,
        column: c.column.clone(),
        rows: rows.len() as u64,
        recipes: recipes.iter().map(|r| (*r, 0)).collect(),
        marks: vec![],
    };
    for r in &rows {
        let recipe = recipes[r.get::<_, i32>(1) as usize];
        *out.recipes.entry(recipe).or_default() += 1;
        out.marks.push((r.get(0), recipe));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_share_and_recipes() {
        let c: Corruption = "inventory.inventory_code:0.5%@missing-digit,wrong-case"
            .parse()
            .unwrap();
        assert_eq!(c.table, "\"inventory\"");
        assert_eq!(c.percent, 0.5);
        assert_eq!(c.recipes, vec![Recipe::MissingDigit, Recipe::WrongCase]);
        let c: Corruption = "s.t.c@null".parse().unwrap();
        assert_eq!((c.table.as_str(), c.percent), ("\"s\".\"t\"", 1.0));
        let e = "t.c@typo".parse::<Corruption>().unwrap_err();
        assert!(
            e.contains("no corruption recipe \"typo\"") && e.contains("wrong-case"),
            "{e}"
        );
        assert!("t.c:0".parse::<Corruption>().is_err());
        assert!("c".parse::<Corruption>().is_err());
    }
}
