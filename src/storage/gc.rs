//! Garbage collection in bounded steps.
//!
//! A version is kept while something can still read it:
//! - it is newer than the pass's horizon (written while the pass runs), or
//! - its timeline is named and the version is visible at the head or anywhere in the
//!   fine-grained window, or
//! - it is the visible version at one of its timeline's retained points: a live child's branch
//!   point, a restore point inside the retention window, the timeline's start.
//!
//! "Visible at p" means `lsn <= p < end`, where `end` is the next newer version of the same object
//! on the same timeline, or the lsn at which the file's data was dropped (unlink, truncate to 0).
//! Everything of a timeline nothing reads (no name, no live descendant) is garbage; once a pass
//! has swept it, its metadata goes too.
//!
//! One step scans at most about `budget` keys, always stopping on an object boundary, and holds
//! the writer lock only while applying its deletes, so foreground writes wait at most one step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocksdb::WriteBatch;
use rustc_hash::{FxHashMap, FxHashSet};

use super::branch::live_timelines;
use super::codec::{self, meta, ObjKey};
use super::error::{Error, Result};
use super::ids::{DataId, Lsn, TimelineId};
use super::index::TlIdx;
use super::store::{Store, CF_ATTRS, CF_DIRENTS, CF_MARKERS, CF_META, CF_PAGES};

const CFS: [&str; 3] = [CF_PAGES, CF_ATTRS, CF_DIRENTS];

/// Where a pass has got to.
#[derive(Default)]
pub(crate) struct GcCursor {
    cf: usize,
    next: Option<Vec<u8>>,
    running: bool,
    drops: FxHashMap<(TimelineId, DataId), Lsn>,
    report: GcReport,
}

/// What a pass (or the steps of it so far) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub scanned: u64,
    pub deleted_versions: u64,
    pub deleted_bytes: u64,
    pub removed_timelines: u64,
}

/// Per timeline: what to keep.
struct Keep {
    named: bool,
    /// Sorted lsns at which the visible version must survive.
    points: Vec<Lsn>,
}

struct Plan {
    horizon: Lsn,
    fine_start: Lsn,
    timelines: FxHashMap<TimelineId, (TlIdx, Option<Keep>)>,
}

impl Store {
    fn plan(&self) -> Plan {
        let horizon = self.last_lsn();
        let now = self.now();
        let st = self.state.read().unwrap();
        let live = live_timelines(&st);
        let window_start = now - self.opts.retention_window.as_nanos() as i64;
        let mut timelines: FxHashMap<TimelineId, (TlIdx, Option<Keep>)> = FxHashMap::default();
        for (i, e) in st.tls.iter().enumerate() {
            let Some(e) = e else { continue };
            let keep = live.contains(&(i as TlIdx)).then(|| {
                let named = st.is_named(e.id);
                let mut points = vec![];
                if named {
                    points.push(e.rec.start_lsn);
                    points.extend(
                        e.restore_points
                            .iter()
                            .filter(|(_, &t)| t >= window_start)
                            .map(|(&l, _)| l),
                    );
                }
                Keep { named, points }
            });
            timelines.insert(e.id, (i as TlIdx, keep));
        }
        for &c in &live {
            if let Some((p, l)) = st.tl(c).rec.branch_point {
                if let Some((_, Some(k))) = timelines.get_mut(&p) {
                    k.points.push(l);
                }
            }
        }
        for (_, k) in timelines.values_mut() {
            if let Some(k) = k {
                k.points.sort_unstable();
                k.points.dedup();
            }
        }
        drop(st);
        Plan {
            horizon,
            fine_start: self.fine_start(now, horizon),
            timelines,
        }
    }

    /// Runs one bounded step of the current pass (starting a pass if none runs). Returns the
    /// pass's report when this step finished it.
    pub fn gc_step(&self, budget: usize) -> Result<Option<GcReport>> {
        let mut cur = self.gc_lock.lock().unwrap();
        if !cur.running {
            *cur = GcCursor {
                running: true,
                drops: self.load_drops()?,
                ..Default::default()
            };
        }
        let plan = self.plan();
        let cf_name = CFS[cur.cf];
        let cf = self.cf(cf_name);
        let prefix_len = |k: &[u8]| match cf_name {
            CF_PAGES => codec::PAGE_PREFIX,
            _ => k.len() - 8, // one attr, or one directory entry name
        };
        let mut it = self.db.raw_iterator_cf(cf);
        match &cur.next {
            Some(k) => it.seek(k),
            None => it.seek_to_first(),
        }
        let mut batch = WriteBatch::default();
        let mut freed: FxHashMap<TimelineId, (u64, u64)> = FxHashMap::default();
        let mut gone_markers: Vec<(ObjKey, TimelineId)> = vec![];
        let mut scanned = 0usize;
        // The current object's versions, newest first: (key, value length).
        let mut group: Vec<(Vec<u8>, usize)> = vec![];
        // The marker object being swept and whether any of its versions survive. For pages and
        // attrs it is the group itself; a directory's marker spans all of its names' groups.
        let mut run: Option<(ObjKey, TimelineId, bool)> = None;
        loop {
            let next = if it.valid() {
                Some((it.key().unwrap().to_vec(), it.value().unwrap().len()))
            } else {
                None
            };
            let group_ends = match (&next, group.first()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((k, _)), Some((g, _))) => k[..prefix_len(k)] != g[..prefix_len(g)],
            };
            if group_ends {
                let (obj, tl, kept) =
                    self.sweep_group(&plan, &cur.drops, cf_name, &group, &mut batch, &mut freed)?;
                group.clear();
                run = Some(match run {
                    Some((o, t, k)) if (o, t) == (obj, tl) => (o, t, k || kept),
                    _ => (obj, tl, kept),
                });
                let run_ends = match &next {
                    None => true,
                    Some((k, _)) => self.obj_of(cf_name, k) != run.map(|(o, t, _)| (o, t)),
                };
                if run_ends {
                    if let Some((o, t, false)) = run.take() {
                        gone_markers.push((o, t));
                    }
                    run = None;
                    // Steps stop only between marker objects, so a run is never split.
                    if scanned >= budget {
                        break;
                    }
                }
            }
            let Some((k, vlen)) = next else { break };
            group.push((k, vlen));
            scanned += 1;
            it.next();
        }
        it.status().map_err(Error::db("scanning for garbage"))?;
        let next_key = if it.valid() {
            Some(it.key().unwrap().to_vec())
        } else {
            None
        };
        drop(it);
        self.apply(batch, cf_name, &freed, gone_markers, &plan)?;
        cur.report.scanned += scanned as u64;
        for (b, v) in freed.values() {
            cur.report.deleted_bytes += b;
            cur.report.deleted_versions += v;
        }
        match next_key {
            Some(k) => {
                cur.next = Some(k);
                Ok(None)
            }
            None if cur.cf + 1 < CFS.len() => {
                cur.cf += 1;
                cur.next = None;
                Ok(None)
            }
            None => {
                let removed = self.finish_pass(&plan, &cur.drops)?;
                cur.report.removed_timelines = removed;
                let report = cur.report;
                *cur = GcCursor::default();
                Ok(Some(report))
            }
        }
    }

    /// Runs a whole pass.
    pub fn gc(&self) -> Result<GcReport> {
        loop {
            if let Some(r) = self.gc_step(4096)? {
                return Ok(r);
            }
        }
    }

    fn obj_of(&self, cf: &str, k: &[u8]) -> Option<(ObjKey, TimelineId)> {
        if k.len() < 24 {
            return None;
        }
        let tl = TimelineId(u128::from_be_bytes(k[..16].try_into().ok()?));
        let id = u64::from_be_bytes(k[16..24].try_into().ok()?);
        Some(match cf {
            CF_PAGES => (
                ObjKey::page(id, u32::from_be_bytes(k.get(24..28)?.try_into().ok()?)),
                tl,
            ),
            CF_ATTRS => (ObjKey::attr(id), tl),
            _ => (ObjKey::dir(id), tl),
        })
    }

    /// Decides each version of one object; returns the object and whether anything was kept.
    fn sweep_group(
        &self,
        plan: &Plan,
        drops: &FxHashMap<(TimelineId, DataId), Lsn>,
        cf_name: &str,
        group: &[(Vec<u8>, usize)],
        batch: &mut WriteBatch,
        freed: &mut FxHashMap<TimelineId, (u64, u64)>,
    ) -> Result<(ObjKey, TimelineId, bool)> {
        let (obj, tl) = self
            .obj_of(cf_name, &group[0].0)
            .ok_or_else(|| Error::corrupt(format!("{cf_name} key"), "too short"))?;
        let keep = plan.timelines.get(&tl).and_then(|(_, k)| k.as_ref());
        let drop_at = match cf_name {
            CF_PAGES => drops.get(&(tl, obj.id)).copied(),
            _ => None,
        };
        let mut end = drop_at.unwrap_or(Lsn::MAX);
        let mut kept_any = false;
        for (k, vlen) in group {
            let lsn = codec::uninv(&k[k.len() - 8..]);
            let keep_it = lsn > plan.horizon
                || keep.is_some_and(|kp| {
                    // fine_start <= horizon: this covers "visible at the head" too.
                    (kp.named && end > plan.fine_start)
                        || kp.points.iter().any(|&p| lsn <= p && p < end)
                });
            if keep_it {
                kept_any = true;
            } else {
                batch.delete_cf(self.cf(cf_name), k);
                let f = freed.entry(tl).or_default();
                f.0 += (k.len() + vlen) as u64;
                f.1 += 1;
            }
            end = end.min(lsn);
        }
        Ok((obj, tl, kept_any))
    }

    fn apply(
        &self,
        mut batch: WriteBatch,
        cf_name: &str,
        freed: &FxHashMap<TimelineId, (u64, u64)>,
        mut gone_markers: Vec<(ObjKey, TimelineId)>,
        plan: &Plan,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let _w = self.writer.lock().unwrap();
        // A commit since the plan may have written an object whose marker we are about to
        // delete (it saw the marker and did not write a new one). Keep such markers.
        let mut still = vec![];
        for &(o, t) in &gone_markers {
            if self.has_version_after(cf_name, o, t, plan.horizon)? {
                still.push((o, t));
            }
        }
        gone_markers.retain(|m| !still.contains(m));
        for (o, t) in &gone_markers {
            batch.delete_cf(self.cf(CF_MARKERS), codec::marker_key(*o, *t));
        }
        let mut st = self.state.write().unwrap();
        for (tl, (bytes, versions)) in freed {
            if let Some(&i) = st.by_id.get(tl) {
                let e = st.tls[i as usize].as_mut().unwrap();
                e.stats.own_bytes = e.stats.own_bytes.saturating_sub(*bytes);
                e.stats.versions = e.stats.versions.saturating_sub(*versions);
                let k = meta::stats(*tl);
                batch.put_cf(self.cf(CF_META), &k, e.stats.encode(&k));
            }
        }
        self.db
            .write_opt(batch, &self.write_opts())
            .map_err(Error::db("applying garbage collection"))?;
        let mut m = self.markers.write().unwrap();
        for (o, t) in &gone_markers {
            if let Some((i, _)) = plan.timelines.get(t) {
                m.remove(o, *i);
            }
        }
        Ok(())
    }

    /// Whether timeline `tl` has a version of `obj` newer than `lsn`.
    fn has_version_after(
        &self,
        cf_name: &str,
        obj: ObjKey,
        tl: TimelineId,
        lsn: Lsn,
    ) -> Result<bool> {
        let mut prefix = tl.to_bytes().to_vec();
        prefix.extend_from_slice(&obj.id.to_be_bytes());
        if obj.kind == codec::ObjKind::Page {
            prefix.extend_from_slice(&obj.sub.to_be_bytes());
        }
        // Bounded to the object's own keys. Unbounded, a seek for an object whose versions
        // were all deleted skips every tombstone after it until a live key: right after a
        // pass freed a deleted branch, that is every version the branch had, once per marker,
        // with the writer lock held (found by `lakelet bench` at scale 100: writes stalled for
        // minutes).
        let mut ro = rocksdb::ReadOptions::default();
        if let Some(end) = successor(&prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf_name), ro);
        it.seek(&prefix);
        while it.valid() {
            let k = it.key().unwrap();
            if !k.starts_with(&prefix) {
                break;
            }
            if codec::uninv(&k[k.len() - 8..]) > lsn {
                return Ok(true);
            }
            it.next();
        }
        it.status().map_err(Error::db("checking markers"))?;
        Ok(false)
    }

    fn load_drops(&self) -> Result<FxHashMap<(TimelineId, DataId), Lsn>> {
        let mut out = FxHashMap::default();
        let mut it = self.db.raw_iterator_cf(self.cf(CF_META));
        it.seek([meta::DROP]);
        while it.valid() {
            let k = it.key().unwrap();
            if k[0] != meta::DROP {
                break;
            }
            let body = codec::unseal(k, it.value().unwrap(), || "data drop record".into())?;
            let [lsn] = codec::decode_u64s::<1>(body, "data drop record")?;
            let mut d = codec::Dec::new(&k[1..], "data drop key");
            out.insert((d.tl()?, d.u64()?), lsn);
            it.next();
        }
        it.status()
            .map_err(Error::db("reading data drop records"))?;
        Ok(out)
    }

    /// After a full sweep: forget swept timelines, expired restore points, old time index entries.
    /// `drops` are the pass's drop records, loaded at its start: a dead timeline cannot write,
    /// so no drop record of one can have appeared since.
    fn finish_pass(
        &self,
        plan: &Plan,
        drops: &FxHashMap<(TimelineId, DataId), Lsn>,
    ) -> Result<u64> {
        let mut batch = WriteBatch::default();
        let meta_cf = self.cf(CF_META);
        let _w = self.writer.lock().unwrap();
        let mut st = self.state.write().unwrap();
        let dead: FxHashSet<TimelineId> = plan
            .timelines
            .iter()
            .filter(|(_, (_, k))| k.is_none())
            .map(|(t, _)| *t)
            .collect();
        let window_start = self.now() - self.opts.retention_window.as_nanos() as i64;
        for (tl, (idx, keep)) in &plan.timelines {
            if dead.contains(tl) {
                batch.delete_cf(meta_cf, meta::timeline(*tl));
                batch.delete_cf(meta_cf, meta::stats(*tl));
                batch.delete_cf(meta_cf, meta::walked(*tl));
                for ino in self.orphans(*tl)? {
                    batch.delete_cf(meta_cf, meta::orphan(*tl, ino));
                }
            }
            if let Some(e) = st.tls[*idx as usize].as_mut() {
                let named = keep.as_ref().is_some_and(|k| k.named);
                let expired: Vec<Lsn> = e
                    .restore_points
                    .iter()
                    .filter(|(_, &t)| !named || t < window_start)
                    .map(|(&l, _)| l)
                    .collect();
                for l in expired {
                    // Keep the newest restore point of a named timeline: it anchors the
                    // automatic interval.
                    if named && Some(&l) == e.restore_points.keys().next_back() {
                        continue;
                    }
                    batch.delete_cf(meta_cf, meta::restore_point(*tl, l));
                    e.restore_points.remove(&l);
                }
            }
        }
        for (tl, did) in drops.keys() {
            if dead.contains(tl) {
                batch.delete_cf(meta_cf, meta::drop(*tl, *did));
            }
        }
        // Time index entries older than the fine window are no longer needed, except the newest
        // of them: it marks where the index's coverage starts (see `lsn_at_time`). Point deletes,
        // not a range delete: this RocksDB's SeekForPrev is unreliable next to range tombstones.
        let cutoff_ms =
            (self.now() - self.opts.fine_window.as_nanos() as i64).div_euclid(1_000_000) - 1000;
        let mut it = self.db.raw_iterator_cf(meta_cf);
        it.seek([meta::TIME_INDEX]);
        let mut prev: Option<Vec<u8>> = None;
        while let Some(k) = it
            .key()
            .filter(|k| k.len() == 9 && k[0] == meta::TIME_INDEX)
        {
            if k >= &meta::time_index(cutoff_ms)[..] {
                break;
            }
            if let Some(p) = prev.replace(k.to_vec()) {
                batch.delete_cf(meta_cf, p);
            }
            it.next();
        }
        it.status().map_err(Error::db("reading the time index"))?;
        drop(it);
        self.db
            .write_opt(batch, &self.write_opts())
            .map_err(Error::db("finishing garbage collection"))?;
        for tl in &dead {
            if let Some(i) = st.by_id.remove(tl) {
                st.tls[i as usize] = None;
            }
        }
        Ok(dead.len() as u64)
    }

    /// Runs GC passes in a background thread every `every`, in bounded steps with a pause
    /// between them. Stops when the handle is dropped.
    pub fn spawn_gc(self: &Arc<Self>, every: Duration) -> GcHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let (store, stop2) = (Arc::downgrade(self), stop.clone());
        let thread = std::thread::Builder::new()
            .name("lakelet-gc".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Some(s) = store.upgrade() else { return };
                    match s.gc_step(4096) {
                        Ok(Some(r)) => {
                            tracing::info!(?r, "gc pass finished");
                            drop(s);
                            sleep_unless(&stop2, every);
                        }
                        Ok(None) => {
                            drop(s);
                            sleep_unless(&stop2, Duration::from_millis(5));
                        }
                        Err(e) => {
                            tracing::error!("gc step failed: {e}");
                            drop(s);
                            sleep_unless(&stop2, every);
                        }
                    }
                }
            })
            .expect("spawning the gc thread");
        GcHandle {
            stop,
            thread: Some(thread),
        }
    }
}

impl GcHandle {
    pub(super) fn new(stop: Arc<AtomicBool>, thread: std::thread::JoinHandle<()>) -> GcHandle {
        GcHandle {
            stop,
            thread: Some(thread),
        }
    }
}

pub(super) fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
}

/// Owns a background thread of the store (GC, the walker); dropping it stops the thread.
pub struct GcHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GcHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The smallest key greater than every key that starts with `prefix` (`None` if the prefix
/// is all 0xff: nothing is greater).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Options;
    use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};

    #[test]
    fn successor_bounds_exactly_the_prefix() {
        assert_eq!(successor(&[1, 2, 3]), Some(vec![1, 2, 4]));
        assert_eq!(successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff, 0xff]), None);
    }

    /// The marker check GC makes under the writer lock must not walk the tombstones a pass
    /// left behind other objects: it did, once per marker, stalling every write for minutes
    /// after a large branch was purged.
    #[test]
    fn marker_check_skips_no_other_objects_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("store"), Options::default()).unwrap();
        let tl = TimelineId(7);
        let cf = s.cf(CF_PAGES);
        for b in 0..5000u32 {
            s.db.put_cf(cf, codec::page_key(tl, 1, b, 10), b"v")
                .unwrap();
        }
        for b in 0..5000u32 {
            s.db.delete_cf(cf, codec::page_key(tl, 1, b, 10)).unwrap();
        }
        s.db.put_cf(cf, codec::page_key(tl, 2, 0, 20), b"v")
            .unwrap();

        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut ctx = PerfContext::default();
        ctx.reset();
        let found = s
            .has_version_after(CF_PAGES, ObjKey::page(1, 0), tl, 5)
            .unwrap();
        let skipped = ctx.metric(PerfMetric::InternalDeleteSkippedCount);
        set_perf_stats(PerfStatsLevel::Disable);
        assert!(!found);
        assert!(skipped <= 1, "the check walked {skipped} tombstones");
        // Still exact within the object.
        assert!(s
            .has_version_after(CF_PAGES, ObjKey::page(2, 0), tl, 10)
            .unwrap());
        assert!(!s
            .has_version_after(CF_PAGES, ObjKey::page(2, 0), tl, 20)
            .unwrap());
    }
}
