//! Which timelines wrote which object: the structure that keeps reads flat in ancestor depth.
//!
//! A naive copy-on-write read walks the ancestor chain and probes each ancestor's key range in
//! turn: one RocksDB seek per ancestor, so a read through 64 ancestors costs 64 seeks (Neon's
//! known weakness). Instead the store keeps, per object (a page, an inode's attrs, a directory's
//! entries), the short list of timelines that have ever written it, with the first lsn each wrote
//! it at. The list is persisted as *marker* records (one per object and timeline, not per version)
//! and held in memory. A read intersects that list with the reader's lineage in memory and then
//! makes exactly one seek, into the one timeline that holds the answer. Ancestor depth costs one
//! hash-map probe per writer of the object, which is almost always one or two.
//!
//! Markers can only be *stale-low*: GC may delete a timeline's oldest versions of an object
//! without raising its first lsn. A stale marker costs a wasted seek, never a wrong answer,
//! because the seek itself checks the lsn bound and the read then tries the next candidate.

use rustc_hash::FxHashMap;

use super::codec::ObjKey;
use super::ids::{Lsn, TimelineId};

/// Dense in-memory index of a timeline, assigned at load or creation; never reused while the
/// store is open.
pub type TlIdx = u32;

#[derive(Debug, Clone)]
enum Writers {
    /// The common case (an object written by one timeline) without a heap allocation.
    One([(TlIdx, Lsn); 1]),
    Many(Vec<(TlIdx, Lsn)>),
}

/// Object → the timelines that wrote it.
#[derive(Default, Debug)]
pub struct MarkerIndex {
    map: FxHashMap<ObjKey, Writers>,
}

impl MarkerIndex {
    pub fn writers(&self, obj: &ObjKey) -> &[(TlIdx, Lsn)] {
        match self.map.get(obj) {
            None => &[],
            Some(Writers::One(one)) => one,
            Some(Writers::Many(v)) => v,
        }
    }

    pub fn has(&self, obj: &ObjKey, tl: TlIdx) -> bool {
        self.writers(obj).iter().any(|&(t, _)| t == tl)
    }

    /// Records that `tl` wrote `obj` first at `lsn` (keeps the lower first lsn if present).
    pub fn add(&mut self, obj: ObjKey, tl: TlIdx, lsn: Lsn) {
        match self.map.get_mut(&obj) {
            None => {
                self.map.insert(obj, Writers::One([(tl, lsn)]));
            }
            Some(Writers::One([(t, l)])) => {
                if *t == tl {
                    *l = (*l).min(lsn);
                } else {
                    let v = vec![(*t, *l), (tl, lsn)];
                    self.map.insert(obj, Writers::Many(v));
                }
            }
            Some(Writers::Many(v)) => match v.iter_mut().find(|(t, _)| *t == tl) {
                Some((_, l)) => *l = (*l).min(lsn),
                None => v.push((tl, lsn)),
            },
        }
    }

    pub fn remove(&mut self, obj: &ObjKey, tl: TlIdx) {
        let Some(w) = self.map.get_mut(obj) else {
            return;
        };
        match w {
            Writers::One([(t, _)]) => {
                if *t == tl {
                    self.map.remove(obj);
                }
            }
            Writers::Many(v) => {
                v.retain(|(t, _)| *t != tl);
                if v.len() == 1 {
                    *w = Writers::One([v[0]]);
                } else if v.is_empty() {
                    self.map.remove(obj);
                }
            }
        }
    }
}

/// The chain a timeline reads through: itself, then each ancestor with the lsn bound at which
/// it is visible (the branch point, clamped down the chain). Immutable: timelines never change.
#[derive(Debug)]
pub struct Lineage {
    /// `[0]` is the timeline itself (bound = the read lsn); then parent, grandparent, ….
    pub chain: Vec<(TlIdx, TimelineId, Lsn)>,
    pos: FxHashMap<TlIdx, usize>,
}

impl Lineage {
    pub fn new(chain: Vec<(TlIdx, TimelineId, Lsn)>) -> Lineage {
        let pos = chain
            .iter()
            .enumerate()
            .map(|(i, &(t, _, _))| (t, i))
            .collect();
        // Invariant: bounds never increase going up the chain.
        debug_assert!(chain.windows(2).skip(1).all(|w| w[1].2 <= w[0].2));
        Lineage { chain, pos }
    }

    /// The timelines that may hold the version of an object visible at `lsn`, nearest first,
    /// each with the lsn bound to seek at.
    pub fn candidates(
        &self,
        writers: &[(TlIdx, Lsn)],
        lsn: Lsn,
        out: &mut Vec<(usize, TimelineId, Lsn)>,
    ) {
        out.clear();
        for &(tl, first) in writers {
            if let Some(&p) = self.pos.get(&tl) {
                let (_, id, b) = self.chain[p];
                let bound = if p == 0 { lsn } else { b.min(lsn) };
                if first <= bound {
                    out.push((p, id, bound));
                }
            }
        }
        if out.len() > 1 {
            out.sort_unstable_by_key(|c| c.0);
        }
    }
}
