//! Reading a timeline as of an lsn: attributes, directory entries, pages.
//!
//! Every lookup follows the same rule (DESIGN.md, Storage): the newest version at or before the
//! read lsn on the timeline itself, else the parent's answer as of the branch point, recursively.
//! `Lineage::candidates` picks, in memory, the one timeline that holds the answer (see index.rs),
//! so a lookup is a single RocksDB seek whatever the ancestor depth.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::codec::{self, Attr, FileKind, ObjKey, PageRec};
use super::error::{Errno, Error, Result};
use super::ids::{DataId, Ino, Lsn, TimelineId, PAGE_SIZE};
use super::index::Lineage;
use super::store::{KeyValue, Store, CF_ATTRS, CF_DIRENTS, CF_PAGES};

/// A consistent read view of one timeline at one lsn.
pub struct Reader<'s> {
    pub(crate) store: &'s Store,
    pub(crate) lineage: Arc<Lineage>,
    pub(crate) lsn: Lsn,
}

impl Store {
    /// A reader of timeline `tl` at `lsn` (default: the last committed lsn).
    pub fn reader(&self, tl: TimelineId, lsn: Option<Lsn>) -> Result<Reader<'_>> {
        let last = self.last_lsn();
        let st = self.state.read().unwrap();
        let idx = st.idx(tl)?;
        let e = st.tl(idx);
        let lsn = lsn.unwrap_or(last);
        if lsn > last {
            return Err(Error::LsnInFuture { lsn, last });
        }
        if lsn < e.rec.start_lsn {
            return Err(Error::corrupt(
                format!("read of timeline {tl} at lsn {lsn}"),
                format!("the timeline starts at lsn {}", e.rec.start_lsn),
            ));
        }
        Ok(Reader {
            store: self,
            lineage: e.lineage.clone(),
            lsn,
        })
    }
}

impl<'s> Reader<'s> {
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    pub fn timeline(&self) -> TimelineId {
        self.lineage.chain[0].1
    }

    /// The newest visible version of `obj`: one seek into the timeline that holds it.
    fn find(
        &self,
        cf: &str,
        obj: ObjKey,
        prefix: impl Fn(TimelineId) -> Vec<u8>,
        what: &dyn Fn() -> String,
    ) -> Result<Option<(TimelineId, KeyValue)>> {
        let mut cands = Vec::new();
        {
            let m = self.store.markers.read().unwrap();
            self.lineage
                .candidates(m.writers(&obj), self.lsn, &mut cands);
        }
        for (_, tl, bound) in cands {
            if let Some((k, v)) = self.store.seek_version(cf, &prefix(tl), bound, &|| {
                format!("{} on timeline {tl}", what())
            })? {
                return Ok(Some((tl, (k, v))));
            }
        }
        Ok(None)
    }

    /// The attributes of `ino`, or `None` if it does not exist at this lsn.
    pub fn attr(&self, ino: Ino) -> Result<Option<Attr>> {
        let found = self.find(
            CF_ATTRS,
            ObjKey::attr(ino),
            |tl| codec::attr_key(tl, ino, 0)[..codec::ATTR_PREFIX].to_vec(),
            &|| format!("attributes of inode {ino}"),
        )?;
        let Some((tl, (k, v))) = found else {
            return Ok(None);
        };
        let body = codec::unseal(&k, &v, || {
            format!("attributes of inode {ino} on timeline {tl}")
        })?;
        codec::decode_attr(body)
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.attr(ino)?
            .ok_or_else(|| Error::fs(Errno::NotFound, format!("inode {ino}")))
    }

    /// The inode `name` names in directory `dir`.
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let found = self.find(
            CF_DIRENTS,
            ObjKey::dir(dir),
            |tl| {
                let mut k = codec::dirent_key(tl, dir, name, 0);
                k.truncate(k.len() - 8);
                k
            },
            &|| {
                format!(
                    "entry '{}' of directory inode {dir}",
                    String::from_utf8_lossy(name)
                )
            },
        )?;
        let Some((tl, (k, v))) = found else {
            return Ok(None);
        };
        let body = codec::unseal(&k, &v, || {
            format!(
                "entry '{}' of directory inode {dir} on timeline {tl}",
                String::from_utf8_lossy(name)
            )
        })?;
        let ino = codec::decode_dirent(body)?;
        if ino != 0 {
            return Ok(Some(ino));
        }
        // A removal on this timeline; an older entry further up the chain must not show through,
        // but an entry in a *nearer* timeline was already preferred by `find`.
        Ok(None)
    }

    /// The entries of directory `dir`, sorted by name.
    pub fn readdir(&self, dir: Ino) -> Result<Vec<(Vec<u8>, Ino)>> {
        let mut cands = Vec::new();
        {
            let m = self.store.markers.read().unwrap();
            self.lineage
                .candidates(m.writers(&ObjKey::dir(dir)), self.lsn, &mut cands);
        }
        // Nearest timeline first: the first visible version of a name decides it.
        let mut decided: BTreeMap<Vec<u8>, Ino> = BTreeMap::new();
        for (_, tl, bound) in cands {
            let prefix = &codec::dirent_key(tl, dir, b"", 0)[..codec::DIRENT_PREFIX];
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_prefix_same_as_start(true);
            let mut it = self
                .store
                .db
                .raw_iterator_cf_opt(self.store.cf(CF_DIRENTS), ro);
            it.seek(prefix);
            while it.valid() {
                let k = it.key().unwrap();
                if !k.starts_with(prefix) {
                    break;
                }
                let (name, lsn) = codec::split_dirent_key(k)?;
                if lsn <= bound && !decided.contains_key(name) {
                    let body = codec::unseal(k, it.value().unwrap(), || {
                        format!(
                            "entry '{}' of directory inode {dir} on timeline {tl}",
                            String::from_utf8_lossy(name)
                        )
                    })?;
                    decided.insert(name.to_vec(), codec::decode_dirent(body)?);
                }
                it.next();
            }
            it.status()
                .map_err(Error::db("reading directory entries"))?;
        }
        Ok(decided.into_iter().filter(|(_, ino)| *ino != 0).collect())
    }

    /// The visible version of block `block` of data `did`, or `None` for a hole.
    pub fn read_block(&self, ino: Ino, did: DataId, block: u32) -> Result<Option<PageRec>> {
        let found = self.find(
            CF_PAGES,
            ObjKey::page(did, block),
            |tl| codec::page_key(tl, did, block, 0)[..codec::PAGE_PREFIX].to_vec(),
            &|| format!("block {block} of file inode {ino} (data {did})"),
        )?;
        let Some((tl, (k, v))) = found else {
            return Ok(None);
        };
        let lsn = codec::uninv(&k[codec::PAGE_PREFIX..]);
        let body = codec::unseal(&k, &v, || {
            format!("block {block} of file inode {ino} (data {did}) on timeline {tl}, version lsn {lsn}")
        })?;
        PageRec::decode(body).map(Some)
    }

    /// Reads up to `len` bytes at `offset` of regular file `ino` (short at end of file).
    pub fn read(&self, ino: Ino, offset: u64, len: usize) -> Result<Vec<u8>> {
        let a = self.getattr(ino)?;
        if a.kind != FileKind::File {
            return Err(Error::fs(Errno::IsDir, format!("read of inode {ino}")));
        }
        if offset >= a.size {
            return Ok(vec![]);
        }
        let end = a.size.min(offset.saturating_add(len as u64));
        let mut out = vec![0u8; (end - offset) as usize];
        let mut pos = offset;
        while pos < end {
            let block = (pos / PAGE_SIZE as u64) as u32;
            let in_block = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_block).min((end - pos) as usize);
            let dst = &mut out[(pos - offset) as usize..][..n];
            if let Some(PageRec::Data(p)) = self.read_block(ino, a.did, block)? {
                dst.copy_from_slice(&p[in_block..in_block + n]);
            }
            pos += n as u64;
        }
        Ok(out)
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let a = self.getattr(ino)?;
        if a.kind != FileKind::Symlink {
            return Err(Error::fs(
                Errno::Invalid,
                format!("readlink of inode {ino} (not a symlink)"),
            ));
        }
        Ok(a.target)
    }

    /// Resolves a `/`-separated path from the root (no symlinks followed).
    pub fn resolve(&self, path: &str) -> Result<Option<Ino>> {
        let mut ino = super::ids::ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match self.lookup(ino, part.as_bytes())? {
                Some(i) => ino = i,
                None => return Ok(None),
            }
        }
        Ok(Some(ino))
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::CF_PAGES;
    use super::super::*;

    /// Our own crc32 catches a flipped payload byte that RocksDB's block checksum cannot see
    /// (the bad value is written through RocksDB, so its block checksum is valid).
    #[test]
    fn flipped_page_byte_is_a_checksum_error_naming_file_and_block() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Options::default()).unwrap();
        let main = s.create_root_branch("main", 0, 0).unwrap();
        let tl: TimelineId = main.timeline.parse().unwrap();
        let (ino, _) = s
            .create(tl, ROOT_INO, b"rel", NewNode::File, 0o600, 0, 0)
            .unwrap();
        s.write(tl, ino, 3 * PAGE_SIZE as u64, &[7u8; PAGE_SIZE])
            .unwrap();
        let cf = s.cf(CF_PAGES);
        let (k, mut v) =
            s.db.iterator_cf(cf, rocksdb::IteratorMode::Start)
                .next()
                .unwrap()
                .unwrap();
        let mid = v.len() / 2;
        v[mid] ^= 1;
        s.db.put_cf(cf, &k, &v).unwrap();
        let err = s
            .reader(tl, None)
            .unwrap()
            .read(ino, 0, 4 * PAGE_SIZE)
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains("block 3")
                && msg.contains(&format!("inode {ino}"))
                && msg.contains("checksum"),
            "{msg}"
        );
    }
}
