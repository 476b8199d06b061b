//! Questions only the base's rows can answer, asked once the plan is made: they turn a
//! hazard that might happen into one that will, with the numbers.
//!
//! Reads only (counts), on the base the migration would run on.

use anyhow::Result;

use super::catalog::Catalog;
use super::model::{Key, Kind};
use super::plan::{ddl, Action, Hazard, Plan};
use crate::migrate::db::{quote_literal, Db};

pub fn probe(db: &Db, base: &Catalog, target: &Catalog, plan: &mut Plan) -> Result<()> {
    for c in plan.changes.iter_mut() {
        if c.kind == Kind::Enum && c.action == Action::Replace {
            let key = Key::new(Kind::Enum, c.object.clone());
            let (Some(b), Some(t)) = (base.get(&key), target.get(&key)) else {
                continue;
            };
            let kept = ddl::labels(t);
            let removed: Vec<String> = ddl::labels(b)
                .into_iter()
                .filter(|l| !kept.contains(l))
                .collect();
            if removed.is_empty() {
                continue;
            }
            let list: Vec<String> = removed.iter().map(|l| quote_literal(l)).collect();
            let list = list.join(", ");
            for col in base.objects.values().filter(|o| {
                o.key.kind == Kind::Column
                    && o.prop("type") == c.object
                    && o.extra("inherited") != "true"
            }) {
                let table = ddl::parent(col);
                let n = db
                    .value(&format!(
                        "select count(*) from {table} where {}::text in ({list})",
                        col.local
                    ))?
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let first = kept.first().cloned().unwrap_or_default();
                c.hazards.push(Hazard::new(
                    "may-fail",
                    format!(
                        "{n} row(s) of {table}.{} hold a removed value ({list}): the conversion fails unless they are mapped first, e.g. UPDATE {table} SET {col_} = {} WHERE {col_}::text IN ({list})",
                        col.local,
                        quote_literal(&first),
                        col_ = col.local,
                    ),
                ));
            }
            c.hazards.sort();
            c.hazards.dedup();
        }
    }
    Ok(())
}
