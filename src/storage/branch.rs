//! Branch names, timelines, and which lsns a timeline retains.
//!
//! A branch is a name pointing at a timeline. Creating a branch writes one timeline record and
//! one name record in a single batch: O(1) in the parent's size, zero data bytes. Reset, restore
//! and rollback move the name to a *new* timeline; a timeline never changes, and a writable
//! branch always owns its timeline exclusively (so a snapshot can never be written through
//! another name).

use std::sync::atomic::Ordering;

use rocksdb::WriteBatch;
use rustc_hash::FxHashSet;

use super::codec::{self, meta, Attr, BranchRec, FileKind, ObjKey, TimelineRec};
use super::error::{Error, Result};
use super::ids::{format_time, Lsn, Nanos, TimelineId, ROOT_INO};
use super::index::TlIdx;
use super::store::{State, Store, CF_ATTRS, CF_MARKERS, CF_META};

/// Where in a parent's history a new timeline starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The parent's current state.
    Head,
    /// Exactly this lsn; refused unless retained.
    Lsn(Lsn),
    /// The newest retained state at or before this time.
    Time(Nanos),
}

/// A branch as reported to callers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BranchInfo {
    pub name: String,
    pub timeline: String,
    pub parent: Option<String>,
    pub parent_timeline: Option<String>,
    pub branch_lsn: Option<Lsn>,
    pub start_lsn: Lsn,
    pub created_at: String,
    pub snapshot: bool,
    /// The control plane's notes (see `BranchRec::annotations`).
    pub annotations: String,
}

/// What a timeline retains: these exact lsns, plus every lsn from `fine_from` on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Retained {
    pub points: Vec<RetainedPoint>,
    pub fine_from: Option<Lsn>,
    pub last_lsn: Lsn,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RetainedPoint {
    pub lsn: Lsn,
    pub kind: &'static str,
    pub time: Option<String>,
}

impl Retained {
    pub fn contains(&self, lsn: Lsn) -> bool {
        self.fine_from
            .is_some_and(|f| lsn >= f && lsn <= self.last_lsn)
            || self.points.iter().any(|p| p.lsn == lsn)
    }
    /// The retained lsn closest to `lsn`.
    pub fn nearest(&self, lsn: Lsn) -> Option<Lsn> {
        let mut c: Vec<Lsn> = self.points.iter().map(|p| p.lsn).collect();
        if let Some(f) = self.fine_from {
            c.push(f);
            c.push(self.last_lsn);
        }
        c.into_iter().min_by_key(|&p| p.abs_diff(lsn))
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidBranchName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 63 {
        return bad("it must be 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    {
        return bad("use letters, digits and - _ . /");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() || name.contains("..") || name.ends_with('/') {
        return bad("it must start with a letter or digit and contain no '..'");
    }
    Ok(())
}

/// The timelines something still reads: every branch's timeline and its ancestors.
pub(crate) fn live_timelines(st: &State) -> FxHashSet<TlIdx> {
    let mut live = FxHashSet::default();
    for b in st.branches.values() {
        if let Some(&i) = st.by_id.get(&b.timeline) {
            for &(t, _, _) in &st.tl(i).lineage.chain {
                live.insert(t);
            }
        }
    }
    live
}

impl Store {
    fn info(&self, st: &State, name: &str, b: &BranchRec) -> BranchInfo {
        let e = st.tl(st.idx(b.timeline).expect("branch timeline loaded"));
        BranchInfo {
            name: name.to_string(),
            timeline: b.timeline.to_string(),
            parent: b.parent.clone(),
            parent_timeline: e.rec.branch_point.map(|(p, _)| p.to_string()),
            branch_lsn: e.rec.branch_point.map(|(_, l)| l),
            start_lsn: e.rec.start_lsn,
            created_at: format_time(b.created_at),
            snapshot: b.snapshot,
            annotations: b.annotations.clone(),
        }
    }

    pub fn branches(&self) -> Vec<BranchInfo> {
        let st = self.state.read().unwrap();
        st.branches
            .iter()
            .map(|(n, b)| self.info(&st, n, b))
            .collect()
    }

    /// Up to `limit` branches after `after` in name order that `keep` accepts, and whether
    /// more follow: one page of a listing at the cost of the page, not of every branch.
    pub fn branches_page(
        &self,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&BranchInfo) -> bool,
    ) -> (Vec<BranchInfo>, bool) {
        use std::ops::Bound;
        let st = self.state.read().unwrap();
        let from = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for (n, b) in st.branches.range::<String, _>((from, Bound::Unbounded)) {
            let info = self.info(&st, n, b);
            if !keep(&info) {
                continue;
            }
            if out.len() == limit {
                return (out, true);
            }
            out.push(info);
        }
        (out, false)
    }

    pub fn branch(&self, name: &str) -> Result<BranchInfo> {
        let st = self.state.read().unwrap();
        let b = st.branch(name)?;
        Ok(self.info(&st, name, b))
    }

    /// Changes whenever any branch record does (see `State::names_version`).
    pub fn names_version(&self) -> u64 {
        self.state.read().unwrap().names_version
    }

    /// The timeline a branch points at now.
    pub fn branch_timeline(&self, name: &str) -> Result<TimelineId> {
        Ok(self.state.read().unwrap().branch(name)?.timeline)
    }

    /// Creates the first timeline, with an empty root directory, named `name`.
    pub fn create_root_branch(&self, name: &str, uid: u32, gid: u32) -> Result<BranchInfo> {
        validate_name(name)?;
        let mut w = self.writer.lock().unwrap();
        if self.state.read().unwrap().branches.contains_key(name) {
            return Err(Error::BranchExists(name.to_string()));
        }
        let now = self.now();
        let lsn = w.last_lsn + 1;
        let id = TimelineId::generate();
        let rec = TimelineRec {
            branch_point: None,
            start_lsn: lsn,
            created_at: now,
        };
        let brec = BranchRec {
            timeline: id,
            parent: None,
            created_at: now,
            snapshot: false,
            annotations: String::new(),
        };
        let root = Attr {
            kind: FileKind::Dir,
            mode: 0o700,
            uid,
            gid,
            size: 0,
            mtime: now,
            ctime: now,
            did: 0,
            target: vec![],
        };
        let mut batch = WriteBatch::default();
        let meta_cf = self.cf(CF_META);
        let k = meta::timeline(id);
        batch.put_cf(meta_cf, &k, rec.encode(&k));
        let k = meta::branch(name);
        batch.put_cf(meta_cf, &k, brec.encode(&k));
        let k = codec::attr_key(id, ROOT_INO, lsn);
        let v = codec::encode_attr(&k, Some(&root));
        let bytes = (k.len() + v.len()) as u64;
        batch.put_cf(self.cf(CF_ATTRS), &k, &v);
        let mk = codec::marker_key(ObjKey::attr(ROOT_INO), id);
        batch.put_cf(self.cf(CF_MARKERS), &mk, codec::encode_u64s(&mk, &[lsn]));
        let stats = codec::StatsRec {
            own_bytes: bytes,
            versions: 1,
            last_write: lsn,
        };
        let k = meta::stats(id);
        batch.put_cf(meta_cf, &k, stats.encode(&k));
        batch.put_cf(
            meta_cf,
            meta::GLOBAL,
            codec::encode_u64s(meta::GLOBAL, &[lsn, w.next_ino]),
        );
        self.db
            .write_opt(batch, &self.write_opts())
            .map_err(Error::db(format!("creating branch '{name}'")))?;
        let mut st = self.state.write().unwrap();
        let idx = st.insert_timeline(id, rec, lsn)?;
        st.tls[idx as usize].as_mut().unwrap().stats = stats;
        st.set_branch(name, brec);
        self.markers
            .write()
            .unwrap()
            .add(ObjKey::attr(ROOT_INO), idx, lsn);
        w.last_lsn = lsn;
        self.visible.store(lsn, Ordering::Release);
        Ok(self.info(&st, name, &st.branches[name]))
    }

    /// Creates branch `name` from branch `from` as of `at`.
    pub fn create_branch(&self, name: &str, from: &str, at: At) -> Result<BranchInfo> {
        self.fork(name, from, at, false, false, None)
    }

    /// Creates a snapshot: a branch that is never written.
    pub fn create_snapshot(&self, name: &str, from: &str, at: At) -> Result<BranchInfo> {
        self.fork(name, from, at, true, false, None)
    }

    /// Creates a branch (or snapshot) with its annotations in the same record.
    pub fn create_annotated(
        &self,
        name: &str,
        from: &str,
        at: At,
        snapshot: bool,
        annotations: &str,
    ) -> Result<BranchInfo> {
        self.fork(name, from, at, snapshot, false, Some(annotations))
    }

    /// Moves `name` to a new timeline forked from `from` as of `at` (restore, rollback by
    /// repoint). The old timeline is left to GC unless something else still reads it.
    pub fn restore_branch(&self, name: &str, from: &str, at: At) -> Result<BranchInfo> {
        self.fork(name, from, at, false, true, None)
    }

    /// Resets `name` to the current state of the branch it was forked from.
    pub fn reset_branch(&self, name: &str) -> Result<BranchInfo> {
        let parent = self.state.read().unwrap().branch(name)?.parent.clone();
        let parent = parent.ok_or_else(|| Error::NoParent(name.to_string()))?;
        self.fork(name, &parent, At::Head, false, true, None)
    }

    /// Replaces a branch's annotations; the name keeps its timeline.
    pub fn annotate(&self, name: &str, annotations: &str) -> Result<BranchInfo> {
        let _w = self.writer.lock().unwrap();
        let mut rec = self.state.read().unwrap().branch(name)?.clone();
        rec.annotations = annotations.to_string();
        let k = meta::branch(name);
        self.db
            .put_cf_opt(self.cf(CF_META), &k, rec.encode(&k), &self.write_opts())
            .map_err(Error::db(format!("annotating branch '{name}'")))?;
        let mut st = self.state.write().unwrap();
        // Same timeline, same name: only the record changes.
        st.branches.insert(name.to_string(), rec);
        st.names_version += 1;
        Ok(self.info(&st, name, &st.branches[name]))
    }

    pub fn delete_branch(&self, name: &str) -> Result<()> {
        let _w = self.writer.lock().unwrap();
        self.state.read().unwrap().branch(name)?;
        self.db
            .delete_cf(self.cf(CF_META), meta::branch(name))
            .map_err(Error::db(format!("deleting branch '{name}'")))?;
        self.state.write().unwrap().remove_branch(name);
        Ok(())
    }

    fn fork(
        &self,
        name: &str,
        from: &str,
        at: At,
        snapshot: bool,
        replace: bool,
        annotations: Option<&str>,
    ) -> Result<BranchInfo> {
        validate_name(name)?;
        // Order: GC lock, then writer lock (as gc.rs takes them), so the retention check and
        // the new branch point are atomic with respect to GC.
        let _gc = self.gc_lock.lock().unwrap();
        let w = self.writer.lock().unwrap();
        let (parent_tl, lsn, old) = {
            let st = self.state.read().unwrap();
            let old = st.branches.get(name).cloned();
            match (&old, replace) {
                (Some(_), false) => return Err(Error::BranchExists(name.to_string())),
                (None, true) => return Err(Error::BranchNotFound(name.to_string())),
                _ => {}
            }
            let p = st.branch(from)?.timeline;
            let lsn = self.resolve_locked(&st, from, p, at, w.last_lsn)?;
            (p, lsn, old)
        };
        let now = self.now();
        let id = TimelineId::generate();
        let rec = TimelineRec {
            branch_point: Some((parent_tl, lsn)),
            start_lsn: lsn,
            created_at: now,
        };
        // A reset keeps the branch's recorded parent; a restore from elsewhere records `from`.
        let parent_name = match (&old, at) {
            (Some(o), At::Head) if o.parent.as_deref() == Some(from) => o.parent.clone(),
            _ => Some(from.to_string()),
        };
        let brec = BranchRec {
            timeline: id,
            parent: parent_name,
            created_at: old.as_ref().map_or(now, |o| o.created_at),
            snapshot,
            annotations: match (annotations, &old) {
                (Some(a), _) => a.to_string(),
                (None, Some(o)) => o.annotations.clone(),
                (None, None) => String::new(),
            },
        };
        let mut batch = WriteBatch::default();
        let meta_cf = self.cf(CF_META);
        let k = meta::timeline(id);
        batch.put_cf(meta_cf, &k, rec.encode(&k));
        let k = meta::branch(name);
        batch.put_cf(meta_cf, &k, brec.encode(&k));
        // A fork has written nothing: the parent's last walk, if it still holds at the branch
        // point, is the fork's with every page shared. Listing 1,000 fresh branches then walks
        // no tree. (The writer lock keeps the parent from committing meanwhile.)
        let inherited = {
            let st = self.state.read().unwrap();
            st.tl(st.idx(parent_tl)?)
                .walked_at(lsn)
                .map(|w| w.forked(lsn))
        };
        if let Some(walk) = inherited {
            let k = meta::walked(id);
            batch.put_cf(meta_cf, &k, walk.encode(&k));
        }
        self.db
            .write_opt(batch, &self.write_opts())
            .map_err(Error::db(format!("creating branch '{name}'")))?;
        let mut st = self.state.write().unwrap();
        let idx = st.insert_timeline(id, rec, lsn)?;
        st.tls[idx as usize].as_mut().unwrap().walked = inherited;
        st.set_branch(name, brec);
        drop(w);
        Ok(self.info(&st, name, &st.branches[name]))
    }

    /// What timeline `tl` retains now.
    pub(crate) fn retained_locked(
        &self,
        st: &State,
        tl: TimelineId,
        last: Lsn,
    ) -> Result<Retained> {
        let idx = st.idx(tl)?;
        let e = st.tl(idx);
        let now = self.now();
        let live = live_timelines(st);
        let named = st.is_named(tl);
        let mut points = vec![];
        if named {
            points.push(RetainedPoint {
                lsn: e.rec.start_lsn,
                kind: "start",
                time: Some(format_time(e.rec.created_at)),
            });
            points.push(RetainedPoint {
                lsn: last,
                kind: "head",
                time: None,
            });
        }
        let horizon = now - self.opts.retention_window.as_nanos() as i64;
        for (&lsn, &t) in e.restore_points.range(e.rec.start_lsn..) {
            if t >= horizon && named {
                points.push(RetainedPoint {
                    lsn,
                    kind: "restore_point",
                    time: Some(format_time(t)),
                });
            }
        }
        for c in live.iter().map(|&i| st.tl(i)) {
            if let Some((p, l)) = c.rec.branch_point {
                if p == tl {
                    points.push(RetainedPoint {
                        lsn: l,
                        kind: "branch_point",
                        time: Some(format_time(c.rec.created_at)),
                    });
                }
            }
        }
        points.sort_by_key(|p| p.lsn);
        points.dedup_by_key(|p| p.lsn);
        let fine_from = named.then(|| self.fine_start(now, last).max(e.rec.start_lsn));
        Ok(Retained {
            points,
            fine_from,
            last_lsn: last,
        })
    }

    /// The lsns branch `name` retains now (any of them can start a new branch).
    pub fn retained(&self, name: &str) -> Result<Retained> {
        let last = self.last_lsn();
        let st = self.state.read().unwrap();
        let tl = st.branch(name)?.timeline;
        self.retained_locked(&st, tl, last)
    }

    /// The first lsn of the fine-grained window: the state at `now - fine_window`.
    pub(crate) fn fine_start(&self, now: Nanos, last: Lsn) -> Lsn {
        // No commit that early: the whole history is inside the window.
        self.lsn_at_time(now - self.opts.fine_window.as_nanos() as i64, last)
            .unwrap_or(0)
    }

    /// The last lsn committed at or before `t` (millisecond resolution), from the time index;
    /// `None` when the index does not reach back to `t` (no commit then, or pruned by GC).
    pub(crate) fn lsn_at_time(&self, t: Nanos, last: Lsn) -> Option<Lsn> {
        let ms = t.div_euclid(1_000_000);
        let mut it = self.db.raw_iterator_cf(self.cf(CF_META));
        it.seek_for_prev(meta::time_index(ms));
        time_index_entry(&it)?;
        it.seek(meta::time_index(ms.saturating_add(1)));
        Some(time_index_entry(&it).map_or(last, |(_, first)| first - 1))
    }

    /// When `lsn` was committed on branch `name`: a restore point's own time, else the end of
    /// the millisecond the time index puts it in (so every commit at or before `lsn` is at or
    /// before the answer). `None` if the index no longer reaches back to `lsn`.
    pub fn time_of_lsn(&self, name: &str, lsn: Lsn) -> Option<Nanos> {
        {
            let st = self.state.read().unwrap();
            let tl = st.branch(name).ok()?.timeline;
            let e = st.tl(st.idx(tl).ok()?);
            if let Some(&t) = e.restore_points.get(&lsn) {
                return Some(t);
            }
        }
        let mut it = self.db.raw_iterator_cf(self.cf(CF_META));
        it.seek_for_prev(meta::time_index(i64::MAX));
        while let Some((ms, first)) = time_index_entry(&it) {
            if first <= lsn {
                return Some((ms + 1) * 1_000_000 - 1);
            }
            it.prev();
        }
        None
    }

    fn resolve_locked(
        &self,
        st: &State,
        branch: &str,
        tl: TimelineId,
        at: At,
        last: Lsn,
    ) -> Result<Lsn> {
        // The head is always retained; computing the retention set is O(branches), so branch
        // creation "as of now" skips it and stays O(1).
        if at == At::Head {
            return Ok(last);
        }
        let r = self.retained_locked(st, tl, last)?;
        match at {
            At::Head => Ok(last),
            At::Lsn(l) if l > last => Err(Error::LsnInFuture { lsn: l, last }),
            At::Lsn(l) if r.contains(l) => Ok(l),
            At::Lsn(l) => Err(Error::LsnNotRetained {
                branch: branch.to_string(),
                lsn: l,
                nearest: r.nearest(l),
            }),
            At::Time(t) => {
                let e = st.tl(st.idx(tl)?);
                let target = self.lsn_at_time(t, last).unwrap_or(0);
                let exact =
                    (e.rec.created_at <= t && target > 0 && r.contains(target)).then_some(target);
                let coarse = r
                    .points
                    .iter()
                    .filter(|p| p.lsn <= target && p.kind != "head")
                    .filter(|p| p.kind != "start" || e.rec.created_at <= t)
                    .map(|p| p.lsn)
                    .max();
                exact.or(coarse).ok_or_else(|| Error::TimeNotRetained {
                    branch: branch.to_string(),
                    time: format_time(t),
                    earliest: r.points.first().and_then(|p| p.time.clone()),
                })
            }
        }
    }

    /// Resolves `at` on branch `name` to the lsn a new branch would start at.
    pub fn resolve(&self, name: &str, at: At) -> Result<Lsn> {
        let last = self.last_lsn();
        let st = self.state.read().unwrap();
        let tl = st.branch(name)?.timeline;
        self.resolve_locked(&st, name, tl, at, last)
    }

    /// Records a restore point at the branch's current state (e.g. after a checkpoint).
    pub fn create_restore_point(&self, name: &str) -> Result<Lsn> {
        let w = self.writer.lock().unwrap();
        let tl = self.state.read().unwrap().branch(name)?.timeline;
        let lsn = w.last_lsn;
        let now = self.now();
        let k = meta::restore_point(tl, lsn);
        self.db
            .put_cf_opt(
                self.cf(CF_META),
                &k,
                codec::encode_u64s(&k, &[now as u64]),
                &self.write_opts(),
            )
            .map_err(Error::db(format!("recording a restore point of '{name}'")))?;
        let mut st = self.state.write().unwrap();
        let idx = st.idx(tl)?;
        st.tls[idx as usize]
            .as_mut()
            .unwrap()
            .restore_points
            .insert(lsn, now);
        Ok(lsn)
    }
}

/// The time index entry (millisecond, first lsn committed in it) under `it`, if it is on one.
fn time_index_entry(
    it: &rocksdb::DBRawIteratorWithThreadMode<'_, rocksdb::DB>,
) -> Option<(i64, Lsn)> {
    let k = it.key()?;
    if k.len() != 9 || k[0] != meta::TIME_INDEX {
        return None;
    }
    let body = codec::unseal(k, it.value()?, String::new).ok()?;
    let [first] = codec::decode_u64s::<1>(body, "time index").ok()?;
    Some((i64::from_be_bytes(k[1..9].try_into().ok()?), first))
}
