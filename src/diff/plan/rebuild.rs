//! Rebuilding a table by copy: when a plain table becomes partitioned, or a partitioned one
//! plain, or its partition key changes (Postgres has no ALTER for any of these; any other
//! change that replaces a root table takes this path too), the old table is renamed aside, the new one is
//! created under the name with its partitions, the rows are copied across, and the old table
//! goes last. Nothing is dropped before its rows are somewhere else.
//!
//! Names that would collide while both tables exist are freed first: the old table's
//! constraints and indexes are dropped (the copy needs none of them), its partitions and its
//! identity sequences are renamed aside, and sequences owned by its columns are let go and
//! owned again by the new columns afterwards.

use std::collections::{BTreeMap, BTreeSet};

use super::ddl;
use super::{inherited, Hazard, Stmt, Work};
use crate::diff::catalog::Catalog;
use crate::diff::model::{Key, Kind, Object};
use crate::migrate::db::{quote_ident, quote_literal};

/// Tables rebuilt by copy in this plan, and the base's partitions (at any depth) of them,
/// which are renamed aside and go with the old table.
#[derive(Default)]
pub(super) struct Rebuild {
    pub tables: BTreeSet<Key>,
    pub old_parts: BTreeSet<Key>,
}

/// Whether a replaced table can be rebuilt by copy: a root table on both sides (a partition
/// goes with its root; inheritance children are not carried over).
fn copyable(b: &Object, t: &Object) -> bool {
    [b, t]
        .iter()
        .all(|o| o.prop("partition_of").is_empty() && o.prop("inherits").is_empty())
}

pub(super) fn find(base: &Catalog, target: &Catalog, replaced: &BTreeMap<Key, String>) -> Rebuild {
    let mut r = Rebuild::default();
    for k in replaced.keys().filter(|k| k.kind == Kind::Table) {
        if let (Some(b), Some(t)) = (base.get(k), target.get(k)) {
            if copyable(b, t) {
                r.tables.insert(k.clone());
            }
        }
    }
    // Partitions of partitions: until no more are found.
    loop {
        let more: Vec<Key> = base
            .objects
            .values()
            .filter(|o| o.key.kind == Kind::Table && !o.prop("partition_of").is_empty())
            .filter(|o| {
                let p = Key::new(Kind::Table, o.prop("partition_of"));
                (r.tables.contains(&p) || r.old_parts.contains(&p)) && !r.old_parts.contains(&o.key)
            })
            .map(|o| o.key.clone())
            .collect();
        if more.is_empty() {
            return r;
        }
        r.old_parts.extend(more);
    }
}

/// `s.t` → `s."t__lakelet_old"`.
fn aside(o: &Object, name: &str) -> String {
    let local = name.rsplit_once('.').map_or(name, |x| x.1);
    let raw = local.trim_matches('"').replace("\"\"", "\"");
    format!(
        "{}.{}",
        o.extra("schema"),
        quote_ident(&format!("{raw}__lakelet_old"))
    )
}

fn rename_aside(o: &Object) -> Stmt {
    let to = aside(o, &o.key.name);
    let to_local = to.rsplit_once('.').map_or(to.as_str(), |x| x.1);
    Stmt::tx(format!("ALTER TABLE {} RENAME TO {to_local}", o.key.name))
}

/// A column's raw name, as `pg_get_serial_sequence` wants it.
fn raw(local: &str) -> String {
    local.trim_matches('"').replace("\"\"", "\"")
}

impl Rebuild {
    pub fn parent_rebuilt(&self, o: &Object) -> bool {
        o.parent
            .as_ref()
            .is_some_and(|p| self.tables.contains(p) || self.old_parts.contains(p))
    }

    /// The work of a rebuilt table `k`: replaces the drop that a replace would do.
    pub fn table(&self, b: &Object, t: &Object, base: &Catalog, target: &Catalog, w: &mut Work) {
        let name = &t.key.name;
        w.drop = Some(rename_aside(b));
        w.hazards.retain(|h| h.code != "deletes-data");
        w.hazards.push(Hazard::new(
            "rewrites-table",
            "rebuilt by copy: the old table is renamed aside, its rows are copied into the new one (ACCESS EXCLUSIVE on both, twice the disk while it runs), then it is dropped",
        ));
        w.details
            .push("its rows are copied into the new table, then the old one is dropped".into());
        let old = aside(b, &b.key.name);
        // The old table's defaults would hold on to sequences the plan drops.
        for c in base.children(&b.key).filter(|c| c.key.kind == Kind::Column) {
            if !c.prop("default").is_empty() {
                w.pre.push(Stmt::tx(format!(
                    "ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT",
                    b.key.name, c.local
                )));
            }
        }
        let lost: Vec<&str> = base
            .children(&b.key)
            .filter(|c| c.key.kind == Kind::Column && target.get(&c.key).is_none())
            .map(|c| c.local.as_str())
            .collect();
        if !lost.is_empty() {
            w.hazards.push(Hazard::new(
                "deletes-data",
                format!("the values of {} are not carried over", lost.join(", ")),
            ));
        }
        // Identity sequences are named after the table: the old ones step aside.
        for c in base.children(&b.key).filter(|c| c.key.kind == Kind::Column) {
            if let Some(seq) = c
                .prop("identity_options")
                .strip_prefix("SEQUENCE NAME ")
                .and_then(|s| s.split(' ').next())
            {
                let local = seq.rsplit_once('.').map_or(seq, |x| x.1);
                let to = quote_ident(&format!("{}__lakelet_old", raw(local)));
                w.pre
                    .push(Stmt::tx(format!("ALTER SEQUENCE {seq} RENAME TO {to}")));
            }
        }
        // Sequences owned by its columns would go with the old table.
        let owned: Vec<&Object> = base
            .objects
            .values()
            .filter(|s| s.key.kind == Kind::Sequence)
            .filter(|s| {
                s.prop("owned_by")
                    .strip_prefix(name.as_str())
                    .is_some_and(|r| r.starts_with('.') && !r[1..].contains('.'))
            })
            .collect();
        for s in &owned {
            w.pre.push(Stmt::tx(format!(
                "ALTER SEQUENCE {} OWNED BY NONE",
                s.key.name
            )));
        }
        let cols: Vec<&Object> = target
            .children(&t.key)
            .filter(|c| c.key.kind == Kind::Column && c.prop("generated").is_empty())
            .filter(|c| base.get(&c.key).is_some())
            .collect();
        let list: Vec<&str> = cols.iter().map(|c| c.local.as_str()).collect();
        let list = list.join(", ");
        // Cast explicitly: a column whose type changes may have no assignment cast.
        let select: Vec<String> = cols
            .iter()
            .map(|c| match base.get(&c.key) {
                Some(bc) if bc.prop("type") == c.prop("type") => c.local.clone(),
                _ => format!("{}::{}", c.local, c.prop("type")),
            })
            .collect();
        w.post.push(Stmt::tx(format!(
            "INSERT INTO {name} ({list}) OVERRIDING SYSTEM VALUE SELECT {} FROM {old}",
            select.join(", ")
        )));
        for c in cols.iter().filter(|c| !c.prop("identity").is_empty()) {
            w.post.push(continue_after_max(name, c));
        }
        w.post.push(Stmt::tx(format!("DROP TABLE {old}")));
        for s in &owned {
            if let Some(ts) = target.get(&s.key) {
                if !ts.prop("owned_by").is_empty() {
                    w.post.push(Stmt::tx(format!(
                        "ALTER SEQUENCE {} OWNED BY {}",
                        s.key.name,
                        ts.prop("owned_by")
                    )));
                }
            }
        }
    }

    /// A partition of a rebuilt table: renamed aside, dropped with the old table.
    pub fn old_part(&self, b: &Object, w: &mut Work) {
        w.drop = Some(rename_aside(b));
        w.hazards.retain(|h| h.code != "deletes-data");
        w.details
            .push("its rows are copied with its rebuilt parent's".into());
    }

    /// A constraint or index of the old table (its own, not a partition's copy): dropped
    /// first, so the new table can take its name.
    pub fn old_child(&self, b: &Object) -> Option<Stmt> {
        if inherited(b) || !matches!(b.key.kind, Kind::Constraint | Kind::Index) {
            return None;
        }
        Some(match b.key.kind {
            Kind::Index => Stmt::tx(format!("DROP INDEX {}", b.key.name)),
            _ => ddl::drop(b),
        })
    }
}

/// Moves a column's identity (or serial) sequence past the largest value the table holds, so
/// the next generated key does not collide with a copied or existing one.
pub(super) fn continue_after_max(table: &str, c: &Object) -> Stmt {
    Stmt::tx(format!(
        "SELECT setval(pg_get_serial_sequence({}, {}), max({col})) FROM {table} HAVING max({col}) IS NOT NULL",
        quote_literal(table),
        quote_literal(&raw(&c.local)),
        col = c.local
    ))
}
