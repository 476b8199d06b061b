//! Mutations of a timeline's namespace and pages. Each public method is one commit: one lsn,
//! one atomic RocksDB batch. Reads inside a mutation see the state before it.

use super::codec::{self, Attr, FileKind, ObjKey, PageRec};
use super::error::{Errno, Error, Result};
use super::ids::{Ino, Lsn, Nanos, TimelineId, PAGE_SIZE};
use super::read::Reader;
use super::store::{Commit, Store, CF_ATTRS, CF_DIRENTS, CF_PAGES};

/// What `create` makes.
#[derive(Debug, Clone, Copy)]
pub enum NewNode<'a> {
    File,
    Dir,
    Symlink(&'a [u8]),
}

/// A `setattr`: each `Some` field is changed. A smaller `size` truncates, a larger one extends
/// with zeros. `ctime` defaults to now: the fs layer passes the kernel's when it owns times.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<Nanos>,
    pub ctime: Option<Nanos>,
}

/// What becomes of a file whose last name goes (unlink, or a rename over it).
///
/// POSIX keeps an unlinked file alive while it is open: with the kernel's writeback cache, dirty
/// pages and times still reach it after the unlink. The fs layer knows which inodes the kernel
/// still holds; the store keeps those as *orphans* (see `orphan.rs`) until told to free them.
pub trait Removal {
    /// Whether `ino` must outlive its name.
    fn keep(&self, ino: Ino) -> bool;
}

/// Frees a file with its last name: callers that hold no open files (tools, tests).
pub struct RemoveNow;

impl Removal for RemoveNow {
    fn keep(&self, _ino: Ino) -> bool {
        false
    }
}

/// Largest file: block numbers are u32.
const MAX_FILE_SIZE: u64 = (u32::MAX as u64) * PAGE_SIZE as u64;

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.len() > 255
        || name.contains(&b'/')
        || name.contains(&0)
    {
        return Err(Error::fs(
            Errno::Invalid,
            format!("file name {:?}", String::from_utf8_lossy(name)),
        ));
    }
    Ok(())
}

impl<'s> Commit<'s> {
    pub(super) fn reader(&self) -> Reader<'s> {
        Reader {
            store: self.store,
            lineage: self.lineage.clone(),
            lsn: self.base(),
        }
    }
    fn put_attr(&mut self, ino: Ino, a: Option<&Attr>) {
        let k = codec::attr_key(self.tl, ino, self.lsn);
        let v = codec::encode_attr(&k, a);
        self.put(CF_ATTRS, ObjKey::attr(ino), k, v);
    }
    fn put_dirent(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        let k = codec::dirent_key(self.tl, dir, name, self.lsn);
        let v = codec::encode_dirent(&k, ino);
        self.put(CF_DIRENTS, ObjKey::dir(dir), k, v);
    }
    fn put_page(&mut self, did: u64, block: u32, rec: &PageRec) {
        let k = codec::page_key(self.tl, did, block, self.lsn);
        let v = rec.encode(&k);
        self.put(CF_PAGES, ObjKey::page(did, block), k, v);
    }
    fn dir_attr(&self, r: &Reader, dir: Ino) -> Result<Attr> {
        let a = r.getattr(dir)?;
        if a.kind != FileKind::Dir {
            return Err(Error::fs(Errno::NotDir, format!("inode {dir}")));
        }
        Ok(a)
    }
    /// Creating or removing an entry changes the directory's mtime and ctime.
    fn touch_dir(&mut self, mut a: Attr, dir: Ino, now: Nanos) {
        a.mtime = now;
        a.ctime = now;
        self.put_attr(dir, Some(&a));
    }
}

impl Store {
    /// Creates `name` in directory `dir` (mknod, mkdir or symlink, with its owner: what the fs
    /// layer receives in one FUSE call).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        tl: TimelineId,
        dir: Ino,
        name: &[u8],
        node: NewNode<'_>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Ino, Attr)> {
        check_name(name)?;
        let mut c = self.begin(tl)?;
        let r = c.reader();
        let dattr = c.dir_attr(&r, dir)?;
        if r.lookup(dir, name)?.is_some() {
            return Err(Error::fs(
                Errno::Exists,
                format!("'{}'", String::from_utf8_lossy(name)),
            ));
        }
        let now = self.now();
        let ino = Store::alloc_ino(&mut c.w);
        let (kind, did, target) = match node {
            NewNode::File => (FileKind::File, Store::alloc_ino(&mut c.w), vec![]),
            NewNode::Dir => (FileKind::Dir, 0, vec![]),
            NewNode::Symlink(t) => (FileKind::Symlink, 0, t.to_vec()),
        };
        let a = Attr {
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: target.len() as u64,
            mtime: now,
            ctime: now,
            did,
            target,
        };
        c.put_attr(ino, Some(&a));
        c.put_dirent(dir, name, ino);
        c.touch_dir(dattr, dir, now);
        c.finish()?;
        Ok((ino, a))
    }

    /// Removes a file or symlink.
    pub fn unlink(&self, tl: TimelineId, dir: Ino, name: &[u8]) -> Result<Lsn> {
        self.unlink_as(tl, dir, name, &RemoveNow)
    }

    /// Removes a file or symlink's name; the inode goes too unless `removal` keeps it.
    pub fn unlink_as(
        &self,
        tl: TimelineId,
        dir: Ino,
        name: &[u8],
        removal: &dyn Removal,
    ) -> Result<Lsn> {
        let mut c = self.begin(tl)?;
        let r = c.reader();
        let dattr = c.dir_attr(&r, dir)?;
        let what = || format!("'{}'", String::from_utf8_lossy(name));
        let ino = r
            .lookup(dir, name)?
            .ok_or_else(|| Error::fs(Errno::NotFound, what()))?;
        let a = r.getattr(ino)?;
        if a.kind == FileKind::Dir {
            return Err(Error::fs(Errno::IsDir, what()));
        }
        remove_or_orphan(&mut c, ino, &a, removal);
        c.put_dirent(dir, name, 0);
        c.touch_dir(dattr, dir, self.now());
        c.finish()
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, tl: TimelineId, dir: Ino, name: &[u8]) -> Result<Lsn> {
        let mut c = self.begin(tl)?;
        let r = c.reader();
        let dattr = c.dir_attr(&r, dir)?;
        let what = || format!("'{}'", String::from_utf8_lossy(name));
        let ino = r
            .lookup(dir, name)?
            .ok_or_else(|| Error::fs(Errno::NotFound, what()))?;
        let a = r.getattr(ino)?;
        if a.kind != FileKind::Dir {
            return Err(Error::fs(Errno::NotDir, what()));
        }
        if !r.readdir(ino)?.is_empty() {
            return Err(Error::fs(Errno::NotEmpty, what()));
        }
        remove_inode(&mut c, ino, &a);
        c.put_dirent(dir, name, 0);
        c.touch_dir(dattr, dir, self.now());
        c.finish()
    }

    /// Renames `dir/name` to `new_dir/new_name`, replacing a file there (or an empty directory
    /// when moving a directory), atomically.
    pub fn rename(
        &self,
        tl: TimelineId,
        dir: Ino,
        name: &[u8],
        new_dir: Ino,
        new_name: &[u8],
    ) -> Result<Lsn> {
        self.rename_as(tl, dir, name, new_dir, new_name, &RemoveNow)
    }

    /// `rename`, where a replaced file's inode goes unless `removal` keeps it.
    pub fn rename_as(
        &self,
        tl: TimelineId,
        dir: Ino,
        name: &[u8],
        new_dir: Ino,
        new_name: &[u8],
        removal: &dyn Removal,
    ) -> Result<Lsn> {
        check_name(new_name)?;
        let mut c = self.begin(tl)?;
        let r = c.reader();
        let dattr = c.dir_attr(&r, dir)?;
        let ndattr = c.dir_attr(&r, new_dir)?;
        let src = r.lookup(dir, name)?.ok_or_else(|| {
            Error::fs(
                Errno::NotFound,
                format!("'{}'", String::from_utf8_lossy(name)),
            )
        })?;
        let sattr = r.getattr(src)?;
        let dst = r.lookup(new_dir, new_name)?;
        if dst == Some(src) {
            return Ok(c.base());
        }
        if sattr.kind == FileKind::Dir && is_within(&r, src, new_dir)? {
            return Err(Error::fs(
                Errno::Invalid,
                "moving a directory into itself".to_string(),
            ));
        }
        let what = || format!("'{}'", String::from_utf8_lossy(new_name));
        if let Some(d) = dst {
            let dattr2 = r.getattr(d)?;
            match (sattr.kind == FileKind::Dir, dattr2.kind == FileKind::Dir) {
                (true, false) => return Err(Error::fs(Errno::NotDir, what())),
                (false, true) => return Err(Error::fs(Errno::IsDir, what())),
                (true, true) if !r.readdir(d)?.is_empty() => {
                    return Err(Error::fs(Errno::NotEmpty, what()))
                }
                _ => {}
            }
            remove_or_orphan(&mut c, d, &dattr2, removal);
        }
        let now = self.now();
        c.put_dirent(dir, name, 0);
        c.put_dirent(new_dir, new_name, src);
        c.touch_dir(dattr, dir, now);
        if new_dir != dir {
            c.touch_dir(ndattr, new_dir, now);
        }
        c.finish()
    }

    /// Changes attributes; a size change truncates or extends the file.
    pub fn setattr(&self, tl: TimelineId, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let mut c = self.begin(tl)?;
        let r = c.reader();
        let mut a = r.getattr(ino)?;
        let now = self.now();
        if let Some(m) = set.mode {
            a.mode = m & 0o7777;
        }
        if let Some(u) = set.uid {
            a.uid = u;
        }
        if let Some(g) = set.gid {
            a.gid = g;
        }
        if let Some(size) = set.size {
            if a.kind != FileKind::File {
                return Err(Error::fs(Errno::IsDir, format!("truncate of inode {ino}")));
            }
            if size > MAX_FILE_SIZE {
                return Err(Error::fs(
                    Errno::Invalid,
                    format!("size {size} of inode {ino}"),
                ));
            }
            if size != a.size {
                truncate(&mut c, &r, ino, &mut a, size)?;
                a.mtime = now;
            }
        }
        if let Some(t) = set.mtime {
            a.mtime = t;
        }
        a.ctime = set.ctime.unwrap_or(now);
        c.put_attr(ino, Some(&a));
        c.finish()?;
        Ok(a)
    }

    /// Writes `data` at `offset` of regular file `ino`, extending it if needed.
    ///
    /// Times are not touched: the kernel owns them (writeback cache) and sends them back as a
    /// `setattr`, at most once a second per file. So a write that does not extend the file puts
    /// its pages and nothing else: no attribute version per page write.
    pub fn write(&self, tl: TimelineId, ino: Ino, offset: u64, data: &[u8]) -> Result<Lsn> {
        let mut c = self.begin(tl)?;
        let r = c.reader();
        let mut a = r.getattr(ino)?;
        if a.kind != FileKind::File {
            return Err(Error::fs(Errno::IsDir, format!("write to inode {ino}")));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or_else(|| {
                Error::fs(
                    Errno::Invalid,
                    format!("write past the maximum file size to inode {ino}"),
                )
            })?;
        let mut pos = offset;
        while pos < end {
            let block = (pos / PAGE_SIZE as u64) as u32;
            let in_block = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_block).min((end - pos) as usize);
            let src = &data[(pos - offset) as usize..][..n];
            let mut page = [0u8; PAGE_SIZE];
            if n < PAGE_SIZE {
                // Read-modify-write of a partial page.
                if let Some(PageRec::Data(old)) = r.read_block(ino, a.did, block)? {
                    page = *old;
                }
            }
            page[in_block..in_block + n].copy_from_slice(src);
            c.put_page(a.did, block, &PageRec::from_page(&page));
            pos += n as u64;
        }
        if end > a.size {
            a.size = end;
            c.put_attr(ino, Some(&a));
        }
        c.finish()
    }
}

/// A file or symlink lost its last name: delete it, or keep it as an orphan if `removal` says
/// it is still in use. Directories are never kept (rmdir of an open directory leaves nothing to
/// write to).
fn remove_or_orphan(c: &mut Commit<'_>, ino: Ino, a: &Attr, removal: &dyn Removal) {
    if a.kind == FileKind::File && removal.keep(ino) {
        c.orphan(ino);
    } else {
        remove_inode(c, ino, a);
    }
}

/// Deletes an inode (no hard links: one entry per inode). A file's data id is dropped, which
/// lets GC reclaim its pages without touching them one by one.
pub(super) fn remove_inode(c: &mut Commit<'_>, ino: Ino, a: &Attr) {
    if a.kind == FileKind::File {
        c.drop_data(a.did);
    }
    c.put_attr(ino, None);
}

/// Shrinks or grows `a` to `size`. Invariant kept: bytes of stored pages past the file size are
/// zero, so growing never needs to write anything.
fn truncate(c: &mut Commit<'_>, r: &Reader<'_>, ino: Ino, a: &mut Attr, size: u64) -> Result<()> {
    let ps = PAGE_SIZE as u64;
    if size < a.size {
        if size == 0 {
            // O(1): the file's pages move to a fresh data id; the old one is dropped.
            c.drop_data(a.did);
            a.did = Store::alloc_ino(&mut c.w);
        } else {
            let keep = size.div_ceil(ps) as u32;
            let old = a.size.div_ceil(ps) as u32;
            if size % ps != 0 {
                let b = (size / ps) as u32;
                if let Some(PageRec::Data(mut p)) = r.read_block(ino, a.did, b)? {
                    p[(size % ps) as usize..].fill(0);
                    c.put_page(a.did, b, &PageRec::from_page(&p));
                }
            }
            for b in keep..old {
                if let Some(PageRec::Data(_)) = r.read_block(ino, a.did, b)? {
                    c.put_page(a.did, b, &PageRec::Zero);
                }
            }
        }
    }
    a.size = size;
    Ok(())
}

/// Whether `ino` is `root` or lies below it (so a directory is not moved into itself).
fn is_within(r: &Reader<'_>, root: Ino, ino: Ino) -> Result<bool> {
    if root == ino {
        return Ok(true);
    }
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for (_, child) in r.readdir(d)? {
            if child == ino {
                return Ok(true);
            }
            if r.getattr(child)?.kind == FileKind::Dir {
                stack.push(child);
            }
        }
    }
    Ok(false)
}
