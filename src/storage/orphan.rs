//! Orphans: files that lost their last name while still in use.
//!
//! POSIX keeps an unlinked file alive until its last user lets go, and with the kernel's
//! writeback cache that matters: after `DROP TABLE` unlinks a relation file, the kernel can still
//! write back its dirty pages and send its times. If the inode were gone, that write would fail,
//! close(2) would return EIO and Postgres would PANIC. So the fs layer asks the store to keep
//! such an inode (`Removal::keep`), and frees it once the kernel forgets it.
//!
//! An orphan is an inode with attributes but no directory entry, plus an `ORPHAN(tl, ino)`
//! record in the same commit as the unlink. The record is what makes orphans recoverable: a
//! daemon killed while one is open leaves the record, and the next mount of the timeline frees
//! every orphan it lists (nothing can hold a file of a view that is not mounted yet). A child
//! cut while the parent held an orphan inherits an unreachable inode (no name leads to it); its
//! pages are the parent's, shared, and go when GC drops the parent's data.

use super::codec::{self, meta};
use super::error::{Error, Result};
use super::ids::{Ino, Lsn, TimelineId};
use super::store::{Store, CF_META};
use super::write::remove_inode;

impl Store {
    /// Frees orphan `ino` of `tl`: its attributes and data go in one commit with its record.
    /// Returns `None` if `ino` is not an orphan of `tl` (already freed, or never one).
    pub fn remove_orphan(&self, tl: TimelineId, ino: Ino) -> Result<Option<Lsn>> {
        let mut c = self.begin(tl)?;
        let k = meta::orphan(tl, ino);
        let present = self
            .db
            .get_pinned_cf(self.cf(CF_META), &k)
            .map_err(Error::db(format!(
                "reading the orphan record of inode {ino}"
            )))?
            .is_some();
        if !present {
            return Ok(None);
        }
        let a = c.reader().getattr(ino)?;
        remove_inode(&mut c, ino, &a);
        c.batch.delete_cf(self.cf(CF_META), &k);
        c.finish().map(Some)
    }

    /// The orphans of `tl`, oldest inode first.
    pub fn orphans(&self, tl: TimelineId) -> Result<Vec<Ino>> {
        let prefix = meta::orphans_of(tl);
        let mut it = self.db.raw_iterator_cf(self.cf(CF_META));
        it.seek(&prefix);
        let mut out = vec![];
        while it.valid() {
            let k = it.key().unwrap();
            if !k.starts_with(&prefix) {
                break;
            }
            codec::unseal(k, it.value().unwrap(), || "orphan record".into())?;
            let mut d = codec::Dec::new(&k[prefix.len()..], "orphan key");
            out.push(d.u64()?);
            it.next();
        }
        it.status().map_err(Error::db("reading orphan records"))?;
        Ok(out)
    }

    /// Frees every orphan of `tl`. Only for a timeline no view has mounted: then nothing can
    /// still hold one of its files. Returns how many were freed.
    pub fn reap_orphans(&self, tl: TimelineId) -> Result<usize> {
        let mut n = 0;
        for ino in self.orphans(tl)? {
            if self.remove_orphan(tl, ino)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }
}
