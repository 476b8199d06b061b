//! Storage accounting per branch: what it owns versus what it reads from its ancestors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::codec::{self, meta, FileKind, ObjKey};
use super::gc::{sleep_unless, GcHandle};
use super::error::{Error, Result};
use super::ids::{Ino, PAGE_SIZE, ROOT_INO};
use super::ids::{Lsn, TimelineId};
use super::store::{Store, TlEntry, CF_META};

/// A branch's storage, as `lakelet branch usage` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Bytes stored for versions this branch's timeline wrote (keys, values, history it keeps).
    /// This is what deleting the branch would eventually free.
    pub own_bytes: u64,
    pub own_versions: u64,
    /// Logical bytes of file data this branch reads from its ancestors' pages.
    pub shared_bytes: u64,
    /// Sum of the sizes of the branch's regular files at its head.
    pub logical_size: u64,
    pub files: u64,
}

/// What a walk of a timeline's files at `at` found: every figure of `Usage` a walk costs.
/// A walk reads every page's markers, a few milliseconds per thousand pages, so it is kept on
/// the timeline until its next commit (`TlEntry::last_write`) instead of redone per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walked {
    pub at: Lsn,
    pub files: u64,
    pub logical_size: u64,
    /// The files' pages that hold data (holes never written hold none), in bytes.
    pub stored_bytes: u64,
    pub shared_bytes: u64,
}

impl Walked {
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        codec::encode_u64s(
            key,
            &[
                self.at,
                self.files,
                self.logical_size,
                self.stored_bytes,
                self.shared_bytes,
            ],
        )
    }

    pub fn decode(body: &[u8]) -> Result<Walked> {
        let [at, files, logical_size, stored_bytes, shared_bytes] =
            codec::decode_u64s::<5>(body, "timeline walk")?;
        Ok(Walked {
            at,
            files,
            logical_size,
            stored_bytes,
            shared_bytes,
        })
    }

    /// The same files seen from a fork at `lsn` that has written nothing: every page shared.
    pub fn forked(self, lsn: Lsn) -> Walked {
        Walked {
            at: lsn,
            shared_bytes: self.stored_bytes,
            ..self
        }
    }
}

impl TlEntry {
    /// The last walk, if it is what a reader at `lsn` (and at the head) sees.
    pub(crate) fn walked_at(&self, lsn: Lsn) -> Option<Walked> {
        self.walked
            .filter(|w| self.last_write <= w.at && self.last_write <= lsn)
    }
}

impl Store {
    /// Bytes the branch's timeline owns (`Usage::own_bytes`), without walking its files.
    pub fn own_bytes(&self, branch: &str) -> Result<u64> {
        let tl = self.branch_timeline(branch)?;
        let st = self.state.read().unwrap();
        Ok(st.tl(st.idx(tl)?).stats.own_bytes)
    }

    /// A branch's storage. The walk of its files is reused until the branch next writes.
    pub fn usage(&self, branch: &str) -> Result<Usage> {
        let tl = self.branch_timeline(branch)?;
        let kept = {
            let st = self.state.read().unwrap();
            st.tl(st.idx(tl)?).walked_at(Lsn::MAX)
        };
        let w = match kept {
            Some(w) => w,
            None => {
                let w = self.walk(tl)?;
                self.keep_walk(tl, w)?;
                w
            }
        };
        self.usage_of(tl, w)
    }

    /// Keeps a walk in memory and in the store (so a restart finds it). Under the writer lock,
    /// so a GC that drops the timeline cannot interleave and leave the record behind.
    fn keep_walk(&self, tl: TimelineId, w: Walked) -> Result<()> {
        let _w = self.writer.lock().unwrap();
        let mut st = self.state.write().unwrap();
        let Ok(i) = st.idx(tl) else { return Ok(()) };
        let k = meta::walked(tl);
        self.db
            .put_cf_opt(self.cf(CF_META), &k, w.encode(&k), &self.write_opts())
            .map_err(Error::db(format!("keeping the walk of timeline {tl}")))?;
        st.tls[i as usize].as_mut().unwrap().walked = Some(w);
        Ok(())
    }

    /// A branch's storage as of its last walk, which may predate its last writes; `None` when
    /// it was never walked (the walker will). What listing 1,000 branches reads: no walk.
    pub fn usage_kept(&self, branch: &str) -> Option<Usage> {
        let tl = self.branch_timeline(branch).ok()?;
        let w = {
            let st = self.state.read().unwrap();
            st.tl(st.idx(tl).ok()?).walked?
        };
        self.usage_of(tl, w).ok()
    }

    /// Walks, in the background every `every`, each branch that was never walked (a branch
    /// forked before its parent was walked, a store from before walks were kept).
    pub fn spawn_walker(self: &Arc<Self>, every: Duration) -> GcHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let (store, stop2) = (Arc::downgrade(self), stop.clone());
        let thread = std::thread::Builder::new()
            .name("lakelet-walker".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Some(s) = store.upgrade() else { return };
                    for name in s.unwalked() {
                        if stop2.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Err(e) = s.usage(&name) {
                            tracing::debug!("walking branch '{name}': {e}");
                        }
                    }
                    drop(s);
                    sleep_unless(&stop2, every);
                }
            })
            .expect("spawning the walker thread");
        GcHandle::new(stop, thread)
    }

    /// The branches whose timelines were never walked.
    fn unwalked(&self) -> Vec<String> {
        let st = self.state.read().unwrap();
        st.branches
            .iter()
            .filter(|(_, b)| st.idx(b.timeline).is_ok_and(|i| st.tl(i).walked.is_none()))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// `usage` with nothing kept: a fresh walk. For checks that the kept walk is still right.
    pub fn usage_uncached(&self, branch: &str) -> Result<Usage> {
        let tl = self.branch_timeline(branch)?;
        self.usage_of(tl, self.walk(tl)?)
    }

    fn usage_of(&self, tl: TimelineId, w: Walked) -> Result<Usage> {
        let st = self.state.read().unwrap();
        let e = st.tl(st.idx(tl)?);
        Ok(Usage {
            own_bytes: e.stats.own_bytes,
            own_versions: e.stats.versions,
            shared_bytes: w.shared_bytes,
            logical_size: w.logical_size,
            files: w.files,
        })
    }

    /// Walks every file of timeline `tl` at the visible lsn.
    fn walk(&self, tl: TimelineId) -> Result<Walked> {
        let r = self.reader(tl, None)?;
        let mut w = Walked {
            at: r.lsn,
            files: 0,
            logical_size: 0,
            stored_bytes: 0,
            shared_bytes: 0,
        };
        let mut stack: Vec<Ino> = vec![ROOT_INO];
        let mut cands = Vec::new();
        while let Some(dir) = stack.pop() {
            for (_, ino) in r.readdir(dir)? {
                let a = r.getattr(ino)?;
                match a.kind {
                    FileKind::Dir => stack.push(ino),
                    FileKind::Symlink => {}
                    FileKind::File => {
                        w.files += 1;
                        w.logical_size += a.size;
                        let pages = a.size.div_ceil(PAGE_SIZE as u64);
                        let m = self.markers.read().unwrap();
                        for b in 0..pages as u32 {
                            r.lineage.candidates(
                                m.writers(&ObjKey::page(a.did, b)),
                                r.lsn,
                                &mut cands,
                            );
                            match cands.first() {
                                Some(c) if c.0 > 0 => {
                                    w.stored_bytes += PAGE_SIZE as u64;
                                    w.shared_bytes += PAGE_SIZE as u64;
                                }
                                Some(_) => w.stored_bytes += PAGE_SIZE as u64,
                                None => {}
                            }
                        }
                    }
                }
            }
        }
        Ok(w)
    }
}
