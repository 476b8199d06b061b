//! Renames: proved (an index or constraint with the same definition under a new name) or
//! only suspected (a table or column that looks the same), which the reviewer is told about.

use std::collections::{BTreeMap, BTreeSet};

use super::{Hazard, Work};
use crate::diff::catalog::Catalog;
use crate::diff::model::{Key, Kind};

/// An index or constraint dropped and one added on the same table with the same definition
/// but another name: a rename, which keeps the index instead of building it again.
pub(super) fn renames(
    base: &Catalog,
    target: &Catalog,
    added: &mut BTreeSet<Key>,
    dropped: &mut BTreeSet<Key>,
) -> Vec<(Key, Key)> {
    let mut out = vec![];
    for d in dropped.iter() {
        if !matches!(d.kind, Kind::Index | Kind::Constraint) {
            continue;
        }
        let b = &base.objects[d];
        let same = |a: &&Key| {
            let t = &target.objects[*a];
            if a.kind != d.kind || t.parent != b.parent {
                return false;
            }
            if d.kind == Kind::Index {
                let renamed = b.prop("definition").replacen(
                    &format!(" {} ON ", b.local),
                    &format!(" {} ON ", t.local),
                    1,
                );
                renamed == t.prop("definition") && b.prop("invalid") == t.prop("invalid")
            } else {
                b.props == t.props
            }
        };
        if let Some(a) = added
            .iter()
            .filter(same)
            .find(|a| !out.iter().any(|(_, x): &(Key, Key)| x == *a))
        {
            out.push((d.clone(), a.clone()));
        }
    }
    for (d, a) in &out {
        dropped.remove(d);
        added.remove(a);
    }
    out
}

/// A table dropped and one added with the same columns, or a column dropped and one of the
/// same type added to the same table, may be a rename the catalogs cannot prove. The SQL
/// drops and adds (losing the data); the reviewer is told.
pub(super) fn possible_renames(
    base: &Catalog,
    target: &Catalog,
    added: &BTreeSet<Key>,
    dropped: &BTreeSet<Key>,
    work: &mut BTreeMap<Key, Work>,
) {
    let shape = |cat: &Catalog, k: &Key| -> Vec<String> {
        cat.children(k)
            .filter(|c| c.key.kind == Kind::Column)
            .map(|c| format!("{} {}", c.local, c.prop("type")))
            .collect()
    };
    let mut flags = vec![];
    for d in dropped {
        // A dropped table's columns, read once, not once per added table.
        let d_shape = (d.kind == Kind::Table).then(|| shape(base, d));
        for a in added {
            if d.kind != a.kind {
                continue;
            }
            let (bo, to) = (&base.objects[d], &target.objects[a]);
            let similar = match d.kind {
                Kind::Table => {
                    bo.extra("schema") == to.extra("schema")
                        && d_shape.as_ref() == Some(&shape(target, a))
                }
                Kind::Column => bo.parent == to.parent && bo.prop("type") == to.prop("type"),
                _ => false,
            };
            if similar {
                flags.push((d.clone(), a.clone()));
            }
        }
    }
    for (d, a) in flags {
        let msg = format!(
            "{d} is dropped and {a} added: if this is a rename, write `ALTER … RENAME` instead, or the data is lost"
        );
        for k in [&d, &a] {
            if let Some(w) = work.get_mut(k) {
                w.hazards.push(Hazard::new("possible-rename", msg.clone()));
            }
        }
    }
}
