//! The FUSE view of one timeline: every POSIX call Postgres makes on its data directory becomes
//! one storage call on that timeline.
//!
//! The view holds no durable state (DESIGN.md, fs). Each request that reaches it is one store
//! commit that finishes before the reply.
//!
//! Durability is Postgres's contract, no stricter: the kernel's **writeback cache** is on, so a
//! write(2) lands in the page cache and reaches the store when the kernel writes it back (on
//! fsync, close, memory pressure or its dirty timer). `fsync`/`fdatasync`/`fsyncdir` make the
//! kernel push the file's dirty pages first, then call the store's `sync`; so every write an
//! fsync acknowledged is durable in the store, and the store at any lsn is a state a crash could
//! have left. The kernel owns sizes and times of open files and sends them back as `setattr`
//! (at most once a second per file: the time granularity is one second).
//!
//! Because the kernel may still write back pages (and times) of a file after it is unlinked,
//! an unlinked file the kernel still knows keeps its inode as a store *orphan* until the kernel
//! forgets it (`forget`), or until the next mount if the daemon died first (storage/orphan.rs).
//!
//! Caching: the kernel keeps file pages (`FOPEN_KEEP_CACHE`) and attributes for a long TTL. That
//! is safe because a timeline is written only through its one mount (a branch name owns its
//! timeline, and reset or restore remount on a fresh one).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::redirect::{Redirect, REDIRECT_INO};
use crate::storage::{
    self, Attr, FileKind, Ino, NewNode, Removal, SetAttr, Store, TimelineId, ROOT_INO,
};

/// How long the kernel may trust an entry or attributes we returned. Long, because nothing but
/// this mount changes the timeline.
const TTL: Duration = Duration::from_secs(60);

/// Counters a caller can read while the view is mounted (status, tests).
#[derive(Debug, Default)]
pub struct ViewStats {
    pub reads: AtomicU64,
    /// getattr, lookup and open requests: with attributes cached these stay rare.
    pub metadata: AtomicU64,
    pub writes: AtomicU64,
    pub bytes_written: AtomicU64,
    pub syncs: AtomicU64,
    /// setattr requests: with the writeback cache, mostly the kernel sending times back.
    pub setattrs: AtomicU64,
    /// Files unlinked while the kernel still held them, and those freed since.
    pub orphaned: AtomicU64,
    pub orphans_freed: AtomicU64,
    pub errors: AtomicU64,
    /// Whether the kernel granted the writeback cache (an old kernel may not).
    pub writeback_cache: std::sync::atomic::AtomicBool,
}

/// The kernel's references to inodes: its lookup count per inode (every entry we reply adds
/// one, `forget` takes them away) and which of them are orphans (unlinked, kept alive for it).
#[derive(Default)]
struct KernelRefs {
    lookups: HashMap<Ino, u64>,
    orphans: HashSet<Ino>,
}

/// The view's answer to "must this unlinked file outlive its name?": yes while the kernel holds
/// a lookup reference on it. Asked inside the store's commit, so lock order is store writer →
/// `refs`; the view never takes the writer while holding `refs`.
/// (If the commit then fails, the set names an inode the store never orphaned; freeing it at
/// forget finds no orphan record and does nothing.)
struct StillReferenced<'a>(&'a TimelineView);

impl Removal for StillReferenced<'_> {
    fn keep(&self, ino: Ino) -> bool {
        let mut r = self.0.refs.lock().unwrap();
        if r.lookups.get(&ino).is_some_and(|&n| n > 0) {
            r.orphans.insert(ino);
            self.0.stats.orphaned.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

/// The entries of an open directory: name, inode, kind.
type DirListing = Vec<(Vec<u8>, Ino, FileType)>;

/// One timeline as a directory tree.
pub struct TimelineView {
    store: Arc<Store>,
    tl: TimelineId,
    /// A snapshot of each open directory's entries, so paging through a directory with
    /// `readdir(offset)` is stable while it changes.
    dirs: Mutex<HashMap<u64, Arc<DirListing>>>,
    next_fh: AtomicU64,
    stats: Arc<ViewStats>,
    refs: Mutex<KernelRefs>,
    redirect: Option<Redirect>,
    owner: Option<Owner>,
}

/// Who the view says owns its files, for a compute that runs under a uid of its own
/// (compute/user.rs): every file is presented as `presented`'s, and what the compute creates
/// is stored as `stored`'s (the base compute user), so the store never records a pool uid and
/// any lease can run any branch. The kernel checks modes against the presented owner
/// (`default_permissions`): another uid gets no further than on a local disk.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub stored: (u32, u32),
    pub presented: (u32, u32),
}

impl TimelineView {
    pub fn new(
        store: Arc<Store>,
        tl: TimelineId,
        stats: Arc<ViewStats>,
        redirect: Option<Redirect>,
        owner: Option<Owner>,
    ) -> TimelineView {
        TimelineView {
            redirect,
            owner,
            store,
            tl,
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            stats,
            refs: Mutex::new(KernelRefs::default()),
        }
    }

    /// Whether `(parent, n)` is the redirect: the view's own symlink, which nothing may change.
    fn redirected(&self, parent: INodeNo, n: &OsStr) -> bool {
        self.redirect
            .as_ref()
            .is_some_and(|r| r.is(parent, name(n)))
    }

    /// The redirect's symlink attributes, owned like the root directory.
    fn redirect_attr(&self, r: &Redirect) -> Result<FileAttr, storage::Error> {
        let root = self.attr_of(ROOT_INO)?;
        Ok(r.attr((root.uid, root.gid)))
    }

    /// The kernel now holds one more lookup reference on `ino` (we replied an entry for it).
    fn referenced(&self, ino: Ino) {
        *self.refs.lock().unwrap().lookups.entry(ino).or_default() += 1;
    }

    /// Drops `n` of the kernel's references to `ino`; frees it if it was an orphan and this was
    /// the last. A failure leaves the orphan record: the next mount frees it.
    fn forgotten(&self, ino: Ino, n: u64) {
        let free = {
            let mut r = self.refs.lock().unwrap();
            let Some(c) = r.lookups.get_mut(&ino) else {
                return;
            };
            *c = c.saturating_sub(n);
            if *c > 0 {
                return;
            }
            r.lookups.remove(&ino);
            r.orphans.remove(&ino)
        };
        if free {
            match self.store.remove_orphan(self.tl, ino) {
                Ok(_) => {
                    self.stats.orphans_freed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.errno("freeing an unlinked file", e);
                }
            }
        }
    }

    /// Turns a store error into an errno. Namespace errors keep their meaning; anything else
    /// (corruption, RocksDB I/O) is logged with its full description and becomes EIO, so the
    /// bad bytes never reach Postgres.
    fn errno(&self, op: &str, e: storage::Error) -> Errno {
        if let Some(n) = e.errno() {
            return Errno::from_i32(n.raw());
        }
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        match e {
            storage::Error::ReadOnly(_) => Errno::EROFS,
            e => {
                tracing::error!(timeline = %self.tl, "{op}: {e}");
                Errno::EIO
            }
        }
    }

    fn attr_of(&self, ino: Ino) -> Result<FileAttr, storage::Error> {
        let a = self.store.reader(self.tl, None)?.getattr(ino)?;
        Ok(self.file_attr(ino, &a))
    }

    /// A stored inode's attributes as the kernel sees them (owned as `Owner` says).
    fn file_attr(&self, ino: Ino, a: &Attr) -> FileAttr {
        let mut f = file_attr(ino, a);
        if let Some(o) = &self.owner {
            (f.uid, f.gid) = o.presented;
        }
        f
    }

    fn reply_entry(&self, op: &str, r: Result<(Ino, Attr), storage::Error>, reply: ReplyEntry) {
        match r {
            Ok((ino, a)) => {
                self.referenced(ino);
                reply.entry(&TTL, &self.file_attr(ino, &a), Generation(0))
            }
            Err(e) => reply.error(self.errno(op, e)),
        }
    }

    /// Creates `n` in `parent`, owned by the caller as a local file system would make it.
    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        node: NewNode<'_>,
        mode: u32,
    ) -> Result<(Ino, Attr), storage::Error> {
        let (uid, gid) = match &self.owner {
            Some(o) => o.stored,
            None => (req.uid(), req.gid()),
        };
        self.store
            .create(self.tl, parent.0, name(n), node, mode, uid, gid)
    }

    fn done(&self, op: &str, r: Result<impl Sized, storage::Error>, reply: ReplyEmpty) {
        match r {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(self.errno(op, e)),
        }
    }

    fn sync(&self, reply: ReplyEmpty) {
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        let r = self.store.sync();
        self.done("fsync", r, reply)
    }
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
    }
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn file_attr(ino: Ino, a: &Attr) -> FileAttr {
    let mtime = time(a.mtime);
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: kind(a.kind),
        perm: (a.mode & 0o7777) as u16,
        nlink: if a.kind == FileKind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: storage::PAGE_SIZE as u32,
        flags: 0,
    }
}

fn name(n: &OsStr) -> &[u8] {
    n.as_bytes()
}

impl Filesystem for TimelineView {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Let one request carry up to 1 MiB (Postgres writes 8 KiB pages, bulk loads and
        // pg_basebackup write more), and read ahead like a local disk would.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        // The writeback cache (see the module doc). Without it every write(2) is a synchronous
        // round trip and a store commit; the view still works, only slower, so say which runs.
        let wb = config
            .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
            .is_ok();
        self.stats.writeback_cache.store(wb, Ordering::Relaxed);
        if wb {
            // One-second times: the kernel marks a file's inode dirty (and sends its times back
            // as a setattr) at most once a second, not on every write. Postgres reads no mtime.
            let _ = config.set_time_granularity(Duration::from_secs(1));
            tracing::debug!(timeline = %self.tl, "view: kernel writeback cache on");
        } else {
            tracing::warn!(
                timeline = %self.tl,
                "view: this kernel offers no FUSE writeback cache; every write is a synchronous store commit"
            );
        }
        Ok(())
    }

    fn destroy(&mut self) {
        // Unmounted: the kernel holds nothing of this view any more.
        let orphans: Vec<Ino> = self.refs.lock().unwrap().orphans.drain().collect();
        for ino in orphans {
            if let Err(e) = self.store.remove_orphan(self.tl, ino) {
                self.errno("freeing an unlinked file at unmount", e);
            }
        }
    }

    // (fuser's default `batch_forget` calls this once per inode.)
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.forgotten(ino.0, nlookup);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        self.stats.metadata.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = self.redirect.as_ref().filter(|r| r.is(parent, name(n))) {
            return match self.redirect_attr(r) {
                Ok(a) => reply.entry(&TTL, &a, Generation(0)),
                Err(e) => reply.error(self.errno("lookup", e)),
            };
        }
        let r = (|| -> Result<(Ino, Attr), storage::Error> {
            let rd = self.store.reader(self.tl, None)?;
            let ino = rd.lookup(parent.0, name(n))?.ok_or_else(|| {
                storage::Error::fs(storage::Errno::NotFound, "lookup".to_string())
            })?;
            Ok((ino, rd.getattr(ino)?))
        })();
        match r {
            // ENOENT is an answer, not a failure: do not count or log it.
            Err(e) if e.errno() == Some(storage::Errno::NotFound) => reply.error(Errno::ENOENT),
            r => self.reply_entry("lookup", r, reply),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.stats.metadata.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = self.redirect.as_ref().filter(|_| ino.0 == REDIRECT_INO) {
            return match self.redirect_attr(r) {
                Ok(a) => reply.attr(&TTL, &a),
                Err(e) => reply.error(self.errno("getattr", e)),
            };
        }
        match self.attr_of(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(self.errno("getattr", e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.stats.setattrs.fetch_add(1, Ordering::Relaxed);
        if ino.0 == REDIRECT_INO {
            return reply.error(Errno::EPERM);
        }
        // Under a presented owner, only a no-op chown (to that owner) is possible.
        let (uid, gid) = match &self.owner {
            Some(o)
                if uid.is_some_and(|u| u != o.presented.0)
                    || gid.is_some_and(|g| g != o.presented.1) =>
            {
                return reply.error(Errno::EPERM)
            }
            Some(_) => (None, None),
            None => (uid, gid),
        };
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            mtime: mtime.map(|t| match t {
                TimeOrNow::SpecificTime(t) => nanos(t),
                TimeOrNow::Now => self.store.now(),
            }),
            ctime: ctime.map(nanos),
        };
        match self.store.setattr(self.tl, ino.0, &set) {
            Ok(a) => reply.attr(&TTL, &self.file_attr(ino.0, &a)),
            Err(e) => reply.error(self.errno("setattr", e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        if let Some(r) = self.redirect.as_ref().filter(|_| ino.0 == REDIRECT_INO) {
            return reply.data(r.target_bytes());
        }
        match self
            .store
            .reader(self.tl, None)
            .and_then(|r| r.readlink(ino.0))
        {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(self.errno("readlink", e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if self.redirected(parent, n) {
            return reply.error(Errno::EEXIST);
        }
        // Only regular files: a data directory holds no devices, fifos or sockets.
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let r = self.make(req, parent, n, NewNode::File, mode & !umask);
        self.reply_entry("mknod", r, reply)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        if self.redirected(parent, n) {
            return reply.error(Errno::EEXIST);
        }
        let r = self.make(req, parent, n, NewNode::Dir, mode & !umask);
        self.reply_entry("mkdir", r, reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        if self.redirected(parent, n) {
            return reply.error(Errno::EPERM);
        }
        let r = self
            .store
            .unlink_as(self.tl, parent.0, name(n), &StillReferenced(self));
        self.done("unlink", r, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        if self.redirected(parent, n) {
            return reply.error(Errno::ENOTDIR);
        }
        let r = self.store.rmdir(self.tl, parent.0, name(n));
        self.done("rmdir", r, reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        if self.redirected(parent, link_name) {
            return reply.error(Errno::EEXIST);
        }
        let target = NewNode::Symlink(target.as_os_str().as_bytes());
        let r = self.make(req, parent, link_name, target, 0o777);
        self.reply_entry("symlink", r, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        if self.redirected(parent, n) || self.redirected(newparent, newname) {
            return reply.error(Errno::EPERM);
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            // Checked before the commit; the kernel holds the directory locks, so no other
            // rename into this name can race with us through this mount.
            match self
                .store
                .reader(self.tl, None)
                .and_then(|r| r.lookup(newparent.0, name(newname)))
            {
                Ok(Some(_)) => return reply.error(Errno::EEXIST),
                Ok(None) => {}
                Err(e) => return reply.error(self.errno("rename", e)),
            }
        }
        let r = self.store.rename_as(
            self.tl,
            parent.0,
            name(n),
            newparent.0,
            name(newname),
            &StillReferenced(self),
        );
        self.done("rename", r, reply)
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.stats.metadata.fetch_add(1, Ordering::Relaxed);
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        match self
            .store
            .reader(self.tl, None)
            .and_then(|r| r.read(ino.0, offset, size as usize))
        {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(self.errno("read", e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        match self.store.write(self.tl, ino.0, offset, data) {
            Ok(_) => {
                self.stats
                    .bytes_written
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                reply.written(data.len() as u32)
            }
            Err(e) => reply.error(self.errno("write", e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // The kernel wrote back this file's dirty pages (and sent its times) before the flush;
        // each of those was its own request. Nothing is left to push here.
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(reply)
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| -> Result<_, storage::Error> {
            let rd = self.store.reader(self.tl, None)?;
            let mut out = Vec::new();
            for (n, child) in rd.readdir(ino.0)? {
                out.push((n, child, kind(rd.getattr(child)?.kind)));
            }
            if let Some(r) = self.redirect.as_ref().filter(|_| ino.0 == ROOT_INO) {
                r.patch_root(&mut out);
            }
            Ok(out)
        })();
        match r {
            Ok(entries) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.dirs.lock().unwrap().insert(fh, Arc::new(entries));
                reply.opened(FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(self.errno("opendir", e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.dirs.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        // Offsets: 1 is after ".", 2 after "..", 3 + i after entry i.
        let dots: [(&[u8], Ino, FileType); 2] = [
            (b".", ino.0, FileType::Directory),
            (b"..", ino.0, FileType::Directory),
        ];
        let all = dots
            .iter()
            .map(|(n, i, k)| (*n, *i, *k))
            .chain(entries.iter().map(|(n, i, k)| (n.as_slice(), *i, *k)));
        for (i, (n, child, k)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, k, OsStr::from_bytes(n)) {
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(reply)
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // The space that matters is the space under the store.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let path = std::ffi::CString::new(self.store.path().as_os_str().as_bytes()).unwrap();
        if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
            return reply.error(Errno::EIO);
        }
        let scale = (s.f_frsize as u64).max(1);
        let bs = storage::PAGE_SIZE as u64;
        reply.statfs(
            s.f_blocks as u64 * scale / bs,
            s.f_bfree as u64 * scale / bs,
            s.f_bavail as u64 * scale / bs,
            s.f_files as u64,
            s.f_ffree as u64,
            bs as u32,
            255,
            bs as u32,
        )
    }

    /// No extended attributes. ENOSYS, not ENOTSUP: the kernel then remembers that this file
    /// system has none (callers still see EOPNOTSUPP) and stops asking. With ENOTSUP every
    /// `write(2)` cost a GETXATTR round trip: the kernel looks up `security.capability` to
    /// decide whether the write must clear set-uid bits, and a FUSE inode never caches "none".
    fn getxattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS)
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        // No extended attributes: an empty list.
        if size == 0 {
            reply.size(0)
        } else {
            reply.data(&[])
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // `default_permissions` makes the kernel check modes and owners itself.
        reply.ok()
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if self.redirected(parent, n) {
            return reply.error(Errno::EEXIST);
        }
        match self.make(req, parent, n, NewNode::File, mode & !umask) {
            Ok((ino, a)) => {
                self.referenced(ino);
                reply.created(
                    &TTL,
                    &self.file_attr(ino, &a),
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_KEEP_CACHE,
                )
            }
            Err(e) => reply.error(self.errno("create", e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Space is not reserved in a copy-on-write store; what matters to callers is the size.
        // Punching or collapsing holes is not supported.
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        let r = (|| -> Result<(), storage::Error> {
            let a = self.store.reader(self.tl, None)?.getattr(ino.0)?;
            let end = offset.saturating_add(length);
            if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && end > a.size {
                self.store.setattr(
                    self.tl,
                    ino.0,
                    &SetAttr {
                        size: Some(end),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })();
        self.done("fallocate", r, reply)
    }
}
