//! The store itself: opening, the in-memory state, and the commit path every write goes through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, ReadOptions,
    SliceTransform, WriteBatch, WriteOptions, DB,
};
use rustc_hash::FxHashMap;

use super::usage::Walked;
use super::codec::{self, meta, BranchRec, GlobalRec, ObjKey, StatsRec, TimelineRec};
use super::error::{Error, Result};
use super::ids::{Ino, Lsn, Nanos, TimelineId, ROOT_INO};
use super::index::{Lineage, MarkerIndex, TlIdx};
pub use super::options::{Clock, Durability, ManualClock, Options, SystemClock};

pub(crate) const CF_PAGES: &str = "pages";
pub(crate) const CF_ATTRS: &str = "attrs";
pub(crate) const CF_DIRENTS: &str = "dirents";
pub(crate) const CF_MARKERS: &str = "markers";
pub(crate) const CF_META: &str = "default";

/// One timeline as held in memory.
pub(crate) struct TlEntry {
    pub id: TimelineId,
    pub rec: TimelineRec,
    pub lineage: Arc<Lineage>,
    pub stats: StatsRec,
    /// lsn → time of each restore point.
    pub restore_points: BTreeMap<Lsn, Nanos>,
    /// The lsn of this timeline's last commit, or an lsn no earlier than it (at open: the
    /// store's last lsn). What a reader at an lsn at or past it sees is the timeline's head.
    pub last_write: Lsn,
    /// The last walk of the timeline's files (`usage.rs`), good while `last_write <= at`.
    pub walked: Option<super::usage::Walked>,
}

#[derive(Default)]
pub(crate) struct State {
    pub tls: Vec<Option<TlEntry>>,
    pub by_id: FxHashMap<TimelineId, TlIdx>,
    pub branches: BTreeMap<String, BranchRec>,
    /// timeline → the branch name pointing at it (the reverse of `branches`).
    pub named: FxHashMap<TimelineId, String>,
}

impl State {
    pub fn tl(&self, idx: TlIdx) -> &TlEntry {
        self.tls[idx as usize]
            .as_ref()
            .expect("timeline index of a live timeline")
    }
    pub fn idx(&self, id: TimelineId) -> Result<TlIdx> {
        self.by_id
            .get(&id)
            .copied()
            .ok_or(Error::TimelineNotFound(id))
    }
    pub fn branch(&self, name: &str) -> Result<&BranchRec> {
        self.branches
            .get(name)
            .ok_or_else(|| Error::BranchNotFound(name.to_string()))
    }
    /// A timeline accepts writes only while a non-snapshot branch name points at it.
    pub fn writable(&self, id: TimelineId) -> bool {
        self.named
            .get(&id)
            .is_some_and(|n| !self.branches[n].snapshot)
    }
    /// Whether a branch name points at the timeline.
    pub fn is_named(&self, id: TimelineId) -> bool {
        self.named.contains_key(&id)
    }
    /// Points `name` at `rec.timeline` (every name owns its timeline alone).
    pub fn set_branch(&mut self, name: &str, rec: BranchRec) {
        debug_assert!(
            !self.named.contains_key(&rec.timeline),
            "a timeline has one name"
        );
        self.named.insert(rec.timeline, name.to_string());
        if let Some(old) = self.branches.insert(name.to_string(), rec) {
            self.named.remove(&old.timeline);
        }
    }
    pub fn remove_branch(&mut self, name: &str) {
        if let Some(old) = self.branches.remove(name) {
            self.named.remove(&old.timeline);
        }
    }
    /// Adds a timeline, computing its lineage from its (already present) ancestors.
    pub fn insert_timeline(
        &mut self,
        id: TimelineId,
        rec: TimelineRec,
        last_write: Lsn,
    ) -> Result<TlIdx> {
        let idx = self.tls.len() as TlIdx;
        let mut chain = vec![(idx, id, Lsn::MAX)];
        let mut bp = rec.branch_point;
        while let Some((parent, lsn)) = bp {
            let p = self.idx(parent)?;
            let bound = lsn.min(chain.last().unwrap().2);
            chain.push((p, parent, bound));
            bp = self.tl(p).rec.branch_point;
        }
        self.tls.push(Some(TlEntry {
            id,
            rec,
            lineage: Arc::new(Lineage::new(chain)),
            stats: StatsRec::default(),
            restore_points: BTreeMap::new(),
            last_write,
            walked: None,
        }));
        self.by_id.insert(id, idx);
        Ok(idx)
    }
}

/// A stored key and its value.
pub(crate) type KeyValue = (Box<[u8]>, Box<[u8]>);

pub(crate) struct WriterState {
    pub last_lsn: Lsn,
    pub next_ino: Ino,
    pub last_index_ms: i64,
}

/// The versioned copy-on-write page store. Cheap to share behind an `Arc`; every method takes
/// `&self`. Writes are serialized by one writer lock; reads never take it.
pub struct Store {
    pub(crate) db: DB,
    pub(crate) opts: Options,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) state: RwLock<State>,
    pub(crate) markers: RwLock<MarkerIndex>,
    pub(crate) writer: Mutex<WriterState>,
    /// The last committed lsn; readers "at head" read here.
    pub(crate) visible: AtomicU64,
    /// Serializes GC steps with branch creation at past lsns (see gc.rs).
    pub(crate) gc_lock: Mutex<super::gc::GcCursor>,
    path: PathBuf,
}

impl Store {
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
        Store::open_with_clock(path, opts, Arc::new(SystemClock))
    }

    pub fn open_with_clock(
        path: impl AsRef<Path>,
        opts: Options,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            context: format!("creating store directory {}", path.display()),
            source,
        })?;
        let cache = Cache::new_lru_cache(opts.cache_bytes)
            .map_err(Error::db("creating the block cache"))?;
        let cf = |name: &str, prefix: Option<usize>, compress: bool| {
            let mut o = rocksdb::Options::default();
            let mut b = BlockBasedOptions::default();
            b.set_block_cache(&cache);
            b.set_bloom_filter(10.0, false);
            if let Some(n) = prefix {
                o.set_prefix_extractor(SliceTransform::create_fixed_prefix(n));
                o.set_memtable_prefix_bloom_ratio(0.1);
                b.set_whole_key_filtering(false);
            }
            o.set_block_based_table_factory(&b);
            if compress {
                // Pages arrive compressed one by one (codec::PageRec::encode): the first two
                // levels, where fresh pages churn, do not compress them again. Deeper levels
                // still do, for raw pages (written before, or that barely compress alone).
                use DBCompressionType::{Lz4, None as Raw};
                o.set_compression_per_level(&[Raw, Raw, Lz4, Lz4, Lz4, Lz4, Lz4]);
            } else {
                o.set_compression_type(DBCompressionType::None);
            }
            ColumnFamilyDescriptor::new(name, o)
        };
        let cfs = vec![
            cf(CF_META, None, false),
            cf(CF_PAGES, Some(codec::PAGE_PREFIX), opts.compress),
            cf(CF_ATTRS, Some(codec::ATTR_PREFIX), false),
            cf(CF_DIRENTS, Some(codec::DIRENT_PREFIX), false),
            cf(CF_MARKERS, None, false),
        ];
        let mut dbo = rocksdb::Options::default();
        dbo.create_if_missing(true);
        dbo.create_missing_column_families(true);
        dbo.increase_parallelism(2);
        dbo.set_max_background_jobs(2);
        dbo.set_keep_log_file_num(4);
        // RocksDB keeps a log file until every column family it holds writes for has flushed.
        // Pages fill their memtable in seconds; attrs, dirents and markers may take hours, and
        // by default (4 × all write buffers, 2.5 GiB here) the logs then grew to several times
        // the database under TPC-B. Past this total, the laggards are flushed instead.
        dbo.set_max_total_wal_size(256 << 20);
        let db = DB::open_cf_descriptors(&dbo, &path, cfs).map_err(Error::db(format!(
            "opening page store at {}",
            path.display()
        )))?;
        let store = Store {
            db,
            opts,
            clock,
            state: RwLock::new(State::default()),
            markers: RwLock::new(MarkerIndex::default()),
            writer: Mutex::new(WriterState {
                last_lsn: 0,
                next_ino: ROOT_INO + 1,
                last_index_ms: i64::MIN,
            }),
            visible: AtomicU64::new(0),
            gc_lock: Mutex::new(Default::default()),
            path,
        };
        store.load()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// How long history is kept for point-in-time branching (the GC window).
    pub fn retention_window(&self) -> std::time::Duration {
        self.opts.retention_window
    }

    /// The last committed lsn.
    pub fn last_lsn(&self) -> Lsn {
        self.visible.load(Ordering::Acquire)
    }

    /// Reads every metadata record and the marker index into memory.
    fn load(&self) -> Result<()> {
        let mut st = State::default();
        let mut w = self.writer.lock().unwrap();
        let meta_cf = self.cf(CF_META);
        let mut timelines: FxHashMap<TimelineId, TimelineRec> = FxHashMap::default();
        let mut stats = FxHashMap::default();
        let mut walks = FxHashMap::default();
        let mut rps: Vec<(TimelineId, Lsn, Nanos)> = vec![];
        for item in self.db.iterator_cf(meta_cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.map_err(Error::db("reading store metadata"))?;
            let body = codec::unseal(&k, &v, || {
                format!("metadata record {:?}", String::from_utf8_lossy(&k))
            })?;
            let mut d = codec::Dec::new(&k[1..], "metadata key");
            match k[0] {
                meta::TIMELINE => {
                    timelines.insert(d.tl()?, TimelineRec::decode(body)?);
                }
                meta::BRANCH => {
                    let name = String::from_utf8(k[1..].to_vec())
                        .map_err(|_| Error::corrupt("branch record", "name is not UTF-8"))?;
                    st.set_branch(&name, BranchRec::decode(body)?);
                }
                meta::RESTORE_POINT => {
                    let tl = d.tl()?;
                    let lsn = d.u64()?;
                    let [t] = codec::decode_u64s::<1>(body, "restore point")?;
                    rps.push((tl, lsn, t as Nanos));
                }
                meta::STATS => {
                    stats.insert(d.tl()?, StatsRec::decode(body)?);
                }
                meta::WALKED => {
                    walks.insert(d.tl()?, Walked::decode(body)?);
                }
                k0 if k0 == meta::GLOBAL[0] => {
                    let [last_lsn, next_ino] = codec::decode_u64s::<2>(body, "global counters")?;
                    w.last_lsn = last_lsn;
                    w.next_ino = next_ino;
                }
                meta::TIME_INDEX => {
                    w.last_index_ms = w.last_index_ms.max(d.i64()?);
                }
                meta::DROP | meta::ORPHAN => {}
                other => {
                    return Err(Error::corrupt(
                        "metadata",
                        format!("unknown record kind {other}"),
                    ))
                }
            }
        }
        // Insert timelines parents first.
        let mut pending: Vec<TimelineId> = timelines.keys().copied().collect();
        pending.sort();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|id| {
                let rec = &timelines[id];
                let ready = match rec.branch_point {
                    None => true,
                    Some((p, _)) => st.by_id.contains_key(&p),
                };
                if ready {
                    st.insert_timeline(*id, rec.clone(), w.last_lsn)
                        .expect("parent present");
                }
                !ready
            });
            if pending.len() == before {
                return Err(Error::corrupt(
                    "timeline records",
                    format!("timeline {} names a parent that does not exist", pending[0]),
                ));
            }
        }
        // A timeline with no stats record never committed: its head is its start. One whose
        // record predates `last_write` may have written up to the store's last lsn.
        for e in st.tls.iter_mut().flatten() {
            e.last_write = match stats.remove(&e.id) {
                Some((s, known)) => {
                    e.stats = s;
                    if known {
                        s.last_write
                    } else {
                        w.last_lsn
                    }
                }
                None => e.rec.start_lsn,
            };
            e.walked = walks.remove(&e.id);
        }
        for (tl, lsn, t) in rps {
            if let Some(&i) = st.by_id.get(&tl) {
                st.tls[i as usize]
                    .as_mut()
                    .unwrap()
                    .restore_points
                    .insert(lsn, t);
            }
        }
        for (name, b) in &st.branches {
            if !st.by_id.contains_key(&b.timeline) {
                return Err(Error::corrupt(
                    format!("branch '{name}'"),
                    format!("points at missing timeline {}", b.timeline),
                ));
            }
        }
        let mut markers = MarkerIndex::default();
        for item in self
            .db
            .iterator_cf(self.cf(CF_MARKERS), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item.map_err(Error::db("reading marker index"))?;
            let body = codec::unseal(&k, &v, || "marker record".into())?;
            let (obj, tl) = codec::decode_marker_key(&k)?;
            let [first] = codec::decode_u64s::<1>(body, "marker record")?;
            // Markers of timelines GC already removed are dropped by the next GC pass.
            if let Some(&i) = st.by_id.get(&tl) {
                markers.add(obj, i, first);
            }
        }
        self.visible.store(w.last_lsn, Ordering::Release);
        *self.state.write().unwrap() = st;
        *self.markers.write().unwrap() = markers;
        Ok(())
    }

    /// Makes every commit so far durable (see [`Durability`]).
    pub fn sync(&self) -> Result<()> {
        match self.opts.durability {
            Durability::Fsync => self
                .db
                .flush_wal(true)
                .map_err(Error::db("syncing the page store")),
            Durability::ProcessCrash => Ok(()),
        }
    }

    /// Flushes memtables to SST files (tests and benchmarks use it to force reads from disk).
    pub fn flush(&self) -> Result<()> {
        for cf in [CF_META, CF_PAGES, CF_ATTRS, CF_DIRENTS, CF_MARKERS] {
            self.db
                .flush_cf(self.cf(cf))
                .map_err(Error::db("flushing the page store"))?;
        }
        Ok(())
    }

    pub(crate) fn write_opts(&self) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        wo
    }

    /// Seeks the newest version at or before `bound` under `prefix` (a key without its `!lsn`).
    pub(crate) fn seek_version(
        &self,
        cf: &str,
        prefix: &[u8],
        bound: Lsn,
        what: &dyn Fn() -> String,
    ) -> Result<Option<KeyValue>> {
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        let mut k = Vec::with_capacity(prefix.len() + 8);
        k.extend_from_slice(prefix);
        k.extend_from_slice(&codec::inv(bound));
        it.seek(&k);
        if it.valid() {
            let key = it.key().unwrap();
            if key.len() == prefix.len() + 8 && key.starts_with(prefix) {
                return Ok(Some((key.into(), it.value().unwrap().into())));
            }
            return Ok(None);
        }
        it.status().map_err(|e| Error::from_db_read(what(), e))?;
        Ok(None)
    }

    /// Begins a commit on timeline `tl`: takes the writer lock and allocates the next lsn.
    pub(crate) fn begin(&self, tl: TimelineId) -> Result<Commit<'_>> {
        let w = self.writer.lock().unwrap();
        let st = self.state.read().unwrap();
        let idx = st.idx(tl)?;
        if !st.writable(tl) {
            return Err(Error::ReadOnly(format!(
                "timeline {tl} (no writable branch points at it)"
            )));
        }
        let lineage = st.tl(idx).lineage.clone();
        drop(st);
        let lsn = w.last_lsn + 1;
        Ok(Commit {
            store: self,
            w,
            batch: WriteBatch::default(),
            idx,
            tl,
            lineage,
            lsn,
            new_markers: vec![],
            bytes: 0,
            versions: 0,
        })
    }

    pub(crate) fn alloc_ino(w: &mut WriterState) -> Ino {
        let i = w.next_ino;
        w.next_ino += 1;
        i
    }
}

/// One atomic commit: every version it puts carries the same lsn and lands in one RocksDB
/// write batch, or none does.
pub(crate) struct Commit<'s> {
    pub store: &'s Store,
    pub w: MutexGuard<'s, WriterState>,
    pub batch: WriteBatch,
    pub idx: TlIdx,
    pub tl: TimelineId,
    pub lineage: Arc<Lineage>,
    pub lsn: Lsn,
    new_markers: Vec<ObjKey>,
    bytes: u64,
    versions: u64,
}

impl<'s> Commit<'s> {
    /// The lsn reads inside this commit see: everything committed before it.
    pub fn base(&self) -> Lsn {
        self.w.last_lsn
    }

    pub fn put(&mut self, cf: &str, obj: ObjKey, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += (key.len() + value.len()) as u64;
        self.versions += 1;
        self.batch.put_cf(self.store.cf(cf), &key, &value);
        self.mark(obj);
    }

    fn mark(&mut self, obj: ObjKey) {
        if self.new_markers.contains(&obj) || self.store.markers.read().unwrap().has(&obj, self.idx)
        {
            return;
        }
        let k = codec::marker_key(obj, self.tl);
        let v = codec::encode_u64s(&k, &[self.lsn]);
        self.batch.put_cf(self.store.cf(CF_MARKERS), k, v);
        self.new_markers.push(obj);
    }

    /// Records that data id `did` stops being reachable on this timeline at this lsn.
    pub fn drop_data(&mut self, did: u64) {
        let k = meta::drop(self.tl, did);
        let v = codec::encode_u64s(&k, &[self.lsn]);
        self.batch.put_cf(self.store.cf(CF_META), k, v);
    }

    /// Records that inode `ino` lost its last name on this timeline but stays in use: its
    /// attributes and pages are kept until `Store::remove_orphan` (see `orphan.rs`).
    pub fn orphan(&mut self, ino: Ino) {
        let k = meta::orphan(self.tl, ino);
        let v = codec::encode_u64s(&k, &[self.lsn]);
        self.batch.put_cf(self.store.cf(CF_META), k, v);
    }

    /// Writes the batch. On error nothing of it is applied and the lsn is not consumed.
    pub fn finish(mut self) -> Result<Lsn> {
        let store = self.store;
        let now = store.clock.now();
        let meta_cf = store.cf(CF_META);
        let (stats, need_rp) = {
            let st = store.state.read().unwrap();
            let e = st.tl(self.idx);
            let s = StatsRec {
                own_bytes: e.stats.own_bytes + self.bytes,
                versions: e.stats.versions + self.versions,
                last_write: self.lsn,
            };
            let last_rp = e
                .restore_points
                .values()
                .next_back()
                .copied()
                .unwrap_or(e.rec.created_at);
            (
                s,
                now.saturating_sub(last_rp) >= store.opts.restore_point_interval.as_nanos() as i64,
            )
        };
        let k = meta::stats(self.tl);
        self.batch.put_cf(meta_cf, &k, stats.encode(&k));
        let g = GlobalRec {
            last_lsn: self.lsn,
            next_ino: self.w.next_ino,
        };
        self.batch.put_cf(
            meta_cf,
            meta::GLOBAL,
            codec::encode_u64s(meta::GLOBAL, &[g.last_lsn, g.next_ino]),
        );
        let ms = now.div_euclid(1_000_000);
        if ms > self.w.last_index_ms {
            let k = meta::time_index(ms);
            self.batch
                .put_cf(meta_cf, &k, codec::encode_u64s(&k, &[self.lsn]));
        }
        if need_rp {
            let k = meta::restore_point(self.tl, self.lsn);
            self.batch
                .put_cf(meta_cf, &k, codec::encode_u64s(&k, &[now as u64]));
        }
        let batch = std::mem::take(&mut self.batch);
        store
            .db
            .write_opt(batch, &store.write_opts())
            .map_err(Error::db(format!("committing lsn {}", self.lsn)))?;
        {
            let mut m = store.markers.write().unwrap();
            for obj in self.new_markers.drain(..) {
                m.add(obj, self.idx, self.lsn);
            }
        }
        {
            let mut st = store.state.write().unwrap();
            let e = st.tls[self.idx as usize].as_mut().unwrap();
            e.stats = stats;
            e.last_write = self.lsn;
            if need_rp {
                e.restore_points.insert(self.lsn, now);
            }
        }
        if ms > self.w.last_index_ms {
            self.w.last_index_ms = ms;
        }
        self.w.last_lsn = self.lsn;
        store.visible.store(self.lsn, Ordering::Release);
        Ok(self.lsn)
    }
}
