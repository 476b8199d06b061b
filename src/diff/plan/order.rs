//! Dependency order: a topological sort of one catalog's pg_depend graph.
//!
//! Ties (and the rare cycle) are broken by kind, then name, so the same two databases always
//! give the same script.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::diff::catalog::Catalog;
use crate::diff::model::{Key, Kind};

/// Each object's position, dependencies first. With `inline_columns`, a table also waits for
/// what its columns need (a type, a sequence, a function in a default), because CREATE TABLE
/// creates its columns with it.
pub fn ranks(cat: &Catalog, inline_columns: bool) -> HashMap<Key, usize> {
    let mut deps: HashMap<&Key, BTreeSet<&Key>> = HashMap::new();
    for o in cat.objects.values() {
        let e = deps.entry(&o.key).or_default();
        e.extend(o.deps.iter());
    }
    if inline_columns {
        for o in cat.objects.values() {
            if o.key.kind != Kind::Column {
                continue;
            }
            let Some(table) = &o.parent else { continue };
            let extra: Vec<&Key> = o
                .deps
                .iter()
                .filter(|d| *d != table && d.kind != Kind::Column)
                .collect();
            if let Some(e) = deps.get_mut(table) {
                e.extend(extra);
            }
        }
    }
    let mut waiting: HashMap<&Key, usize> = HashMap::new();
    let mut users: HashMap<&Key, Vec<&Key>> = HashMap::new();
    for (k, ds) in &deps {
        let ds: Vec<&&Key> = ds
            .iter()
            .filter(|d| **d != *k && deps.contains_key(**d))
            .collect();
        waiting.insert(k, ds.len());
        for d in ds {
            users.entry(*d).or_default().push(k);
        }
    }
    let mut ready: BinaryHeap<Reverse<&Key>> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| Reverse(*k))
        .collect();
    let mut rank = HashMap::new();
    let mut left: BTreeSet<&Key> = deps.keys().copied().collect();
    while !left.is_empty() {
        let k = match ready.pop() {
            Some(Reverse(k)) => k,
            // A cycle: let the smallest remaining object go first.
            None => *left.iter().next().unwrap(),
        };
        if !left.remove(k) {
            continue;
        }
        rank.insert(k.clone(), rank.len());
        for u in users.get(k).into_iter().flatten() {
            let n = waiting.get_mut(u).unwrap();
            *n = n.saturating_sub(1);
            if *n == 0 && left.contains(u) {
                ready.push(Reverse(*u));
            }
        }
    }
    rank
}
