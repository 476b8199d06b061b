//! Each timeline's WAL, on local disk beside the store instead of in it.
//!
//! Why: Postgres rewrites the WAL's hot page and fdatasyncs it on every commit. Through the view
//! that was two FUSE round trips and a new 8 KiB page version per commit, about half of what a
//! branch did under TPC-B. On local disk it is what native Postgres does. (DESIGN.md: WAL may
//! live outside the versioned page path as long as a cut gets WAL at least as new as its pages
//! and point-in-time branches stay exact.)
//!
//! Layout, under `DATA/wal/<timeline>/`:
//!
//! ```text
//! pg_wal/            the compute's pg_wal: the view shows `pg_wal` as a symlink to it
//! archive/           segments Postgres finished, hard-linked by its archive_command
//! ```
//!
//! A root daemon bind-mounts `DATA/wal` at `RUN/w`, so the compute user reaches its directory
//! whatever the data directory's parents allow; the symlink names that path.
//!
//! **Cut.** A branch is cut from the store first (its pages at lsn L), then its WAL is *seeded*
//! from the parent's: every segment from the redo point of the cut's `pg_control` on, from the
//! parent's `pg_wal` or, for segments Postgres already archived and removed, its archive. The
//! copy comes after the page cut, so its WAL is at least as new as its pages; Postgres removes a
//! segment only after archiving it, so nothing the cut needs can vanish in between. A finished
//! (archived) segment is hard-linked, not copied: `wal_recycle = off` means Postgres never
//! writes a finished segment again, so parent and child can share it, and a seed costs one copy
//! of the unfinished tail whatever the WAL since the redo point. The segment the child's
//! recovery ends in is always a copy: its Postgres writes on there.
//!
//! **Point in time.** A cut at a past lsn gets pages as of then but WAL as of now. So the seed
//! ends its WAL at the cut's time: `pg_waldump` finds the first commit or abort record stamped
//! after it, and the copy is zeroed from that record on (later segments are not copied). The
//! child's ordinary crash recovery then replays exactly the transactions committed by then,
//! as `recovery_target_time` would, but without archive recovery: Postgres refuses to stop
//! archive recovery of a crashed cluster before the end of its WAL ("requested recovery stop
//! point is before consistent recovery point"), since it cannot know how new the pages are. We
//! know: every page in the cut was written before its time, after the WAL it reflects (WAL is
//! flushed before the data it covers), and every record inserted before that time precedes the
//! first commit stamped after it.
//!
//! **Migration.** A timeline whose WAL is still in the store (made before this layout, or by
//! initdb, pg_basebackup or an import) has it moved out on its first start: exported from the
//! store's `pg_wal`, then removed there.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::claim;
use super::manager::mkdir;
use super::tree;
use super::user::ComputeUser;
use crate::storage::{self, Lsn, Nanos, Store, TimelineId, ROOT_INO};
use crate::util::{format_lsn, sync_path};

/// The name the view redirects.
pub const PG_WAL: &[u8] = b"pg_wal";

/// Where every timeline's WAL lives, and how computes reach it.
pub struct WalDirs {
    /// `DATA/wal`: durable, on the data directory's disk.
    root: PathBuf,
    /// The same directory as computes reach it (`RUN/w` for a root daemon, else `root`).
    visible: PathBuf,
    uid: u32,
    gid: u32,
    /// Whether the bind mount at `visible` is still ours to undo.
    mounted: std::sync::atomic::AtomicBool,
}

/// What a seed copied.
#[derive(Debug, Default)]
pub struct Seeded {
    /// Segments the child got, linked or copied.
    pub segments: usize,
    /// Of those, how many share the parent's archived file.
    pub linked: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// Whether the child may share segment `name` with its parent (a hard link) instead of a copy:
/// only a finished one (archived: Postgres never writes it again) that the child's recovery
/// reads past, because its successor is there too. The child's Postgres writes on where its
/// replay ends, and that segment must be its own; so must one a point-in-time cut zeroes
/// (`truncate_at` breaks the link first anyway).
fn shareable(
    name: &str,
    finished: &HashSet<String>,
    files: &BTreeMap<String, PathBuf>,
    size: u64,
) -> bool {
    let Some(seg) = Segment::parse(name) else {
        return false;
    };
    finished.contains(name) && files.contains_key(&seg.next(size).name(&name[..8]))
}

impl WalDirs {
    /// Creates `DATA/wal` and, for a root daemon, bind-mounts it at `run_dir/w`.
    pub fn open(data_dir: &Path, run_dir: &Path, user: &ComputeUser) -> Result<WalDirs> {
        let root = data_dir.join("wal");
        mkdir(&root, 0o711)?;
        let visible = if unsafe { libc::geteuid() } == 0 {
            let w = run_dir.join("w");
            if crate::fs::mounts_under(&w)?.iter().any(|p| p == &w) {
                crate::fs::detach(&w)?;
            }
            mkdir(&w, 0o711)?;
            bind(&root, &w)?;
            w
        } else {
            root.clone()
        };
        let mounted = (visible != root).into();
        Ok(WalDirs {
            root,
            visible,
            uid: user.uid,
            gid: user.gid,
            mounted,
        })
    }

    /// Undoes the bind mount (daemon shutdown, or a daemon that failed to start: dropping the
    /// computes does it). Only once no compute runs: theirs is the path it removes.
    pub fn close(&self) {
        if self
            .mounted
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            if let Err(e) = crate::fs::detach(&self.visible) {
                tracing::warn!("detaching {}: {e}", self.visible.display());
            }
        }
    }

    fn dir(&self, tl: TimelineId) -> PathBuf {
        self.root.join(tl.to_string())
    }

    /// The compute's `pg_wal` (durable path).
    pub fn live(&self, tl: TimelineId) -> PathBuf {
        self.dir(tl).join("pg_wal")
    }

    pub fn archive(&self, tl: TimelineId) -> PathBuf {
        self.dir(tl).join("archive")
    }

    /// What the view's `pg_wal` symlink names.
    pub fn link_target(&self, tl: TimelineId) -> PathBuf {
        self.visible.join(tl.to_string()).join("pg_wal")
    }

    /// The archive as the compute reaches it.
    fn visible_archive(&self, tl: TimelineId) -> PathBuf {
        self.visible.join(tl.to_string()).join("archive")
    }

    /// Whether the timeline's WAL already lives here (it was seeded or migrated).
    pub fn has(&self, tl: TimelineId) -> bool {
        self.live(tl).is_dir()
    }

    /// The `-c` settings a compute of `tl` runs with: its archive.
    pub fn settings(&self, tl: TimelineId) -> Vec<String> {
        let a = self.visible_archive(tl);
        let a = a.display();
        vec![
            "archive_mode=on".into(),
            // A hard link, not a copy: a finished segment is never written again (wal_recycle
            // is off), Postgres fsynced it before archiving, and pg_wal and the archive share one
            // file system. So archiving costs a directory entry (made durable by the directory's
            // fsync), not a second write of the WAL.
            format!("archive_command=ln -f %p '{a}/%f' && sync '{a}'"),
        ]
    }

    /// Makes sure `tl`'s WAL lives here before its compute starts: moves it out of the store
    /// if it is still there (see the module doc).
    pub fn prepare(&self, store: &Store, tl: TimelineId, owner: claim::Owner) -> Result<()> {
        let dir = self.dir(tl);
        mkdir(&dir, 0o700)?;
        let archive = self.archive(tl);
        if !archive.is_dir() {
            mkdir(&archive, 0o700)?;
        }
        let live = self.live(tl);
        if live.is_dir() {
            // The compute's uid changes from start to start (user.rs).
            let c = claim::claim(&dir, owner)?;
            if c.copied > 0 {
                tracing::debug!(timeline = %tl, files = c.copied, bytes = c.bytes, "copied WAL shared with another timeline");
            }
            return Ok(());
        }
        std::os::unix::fs::chown(&dir, Some(owner.0), Some(owner.1))?;
        claim::claim(&archive, owner)?;
        let staging = dir.join("pg_wal.migrating");
        let _ = std::fs::remove_dir_all(&staging);
        let copied = tree::export_root_dir(store, tl, PG_WAL, &staging)?;
        if copied.is_none() {
            mkdir(&staging, 0o700)?;
        }
        let status = staging.join("archive_status");
        if !status.is_dir() {
            mkdir(&status, 0o700)?;
        }
        claim::own_unshared(&staging, owner)?;
        sync_dir_tree(&staging)?;
        std::fs::rename(&staging, &live)
            .with_context(|| format!("moving {} into place", live.display()))?;
        sync_path(&dir)?;
        // The WAL is out; the store's copy would only be hidden behind the redirect.
        match tree::empty_root_dir(store, tl, PG_WAL) {
            Ok(n) if n > 0 => {
                store.sync()?;
                tracing::info!(timeline = %tl, files = n, "moved the WAL out of the store");
            }
            Ok(_) => {}
            // A snapshot's timeline is never written; its store copy stays (nothing reads it).
            Err(e) if matches!(e.downcast_ref(), Some(storage::Error::ReadOnly(_))) => {}
            Err(e) => return Err(e.context("removing the WAL from the store")),
        }
        Ok(())
    }

    /// Seeds `child`'s WAL from `parent`'s, after the store cut the child at `lsn` (see the
    /// module doc). `stop_at`: a point-in-time child's WAL ends at the first transaction end
    /// stamped after it (found with `waldump`). Nothing is seeded if the parent's WAL is still
    /// in the store (the child then inherited it there, as of the cut).
    pub fn seed(
        &self,
        store: &Store,
        parent: TimelineId,
        child: TimelineId,
        lsn: Lsn,
        stop_at: Option<Nanos>,
        waldump: &Path,
    ) -> Result<Seeded> {
        if !self.has(parent) {
            return Ok(Seeded::default());
        }
        let redo = redo_of(store, child)
            .with_context(|| format!("reading pg_control of the cut at lsn {lsn}"))?;
        let dir = self.dir(child);
        let _ = std::fs::remove_dir_all(&dir);
        mkdir(&dir, 0o700)?;
        let staging = dir.join("pg_wal.seeding");
        mkdir(&staging.join("archive_status"), 0o700)?;
        mkdir(&self.archive(child), 0o700)?;
        // The live directory first, then the archive: a segment in both is the same file
        // (archive_command hard-links it). A segment is finished once archived, or once
        // Postgres marked it for the archiver (archive_status/NAME.ready, then .done).
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut finished: HashSet<String> = HashSet::new();
        let status = self.live(parent).join("archive_status");
        for (src, archived) in [(self.live(parent), false), (self.archive(parent), true)] {
            for e in std::fs::read_dir(&src)
                .with_context(|| format!("reading {}", src.display()))?
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".history") {
                    files.insert(name, e.path());
                } else if let Some(seg) = Segment::parse(&name) {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    if redo.is_none_or(|r| seg.at_or_after(r, size)) {
                        if archived
                            || status.join(format!("{name}.ready")).exists()
                            || status.join(format!("{name}.done")).exists()
                        {
                            finished.insert(name.clone());
                        }
                        files.insert(name, e.path());
                    }
                }
            }
        }
        let size = segment_size(&files);
        let mut out = Seeded::default();
        for (name, src) in &files {
            let dst = staging.join(name);
            if shareable(name, &finished, &files, size) {
                match std::fs::hard_link(src, &dst) {
                    Ok(()) => {
                        out.segments += 1;
                        out.linked += 1;
                        continue;
                    }
                    // Pruned meanwhile, or a file system without links: copy as below.
                    Err(e) => tracing::debug!(segment = %name, "linking: {e}; copying"),
                }
            }
            out.bytes += self.copy_in(parent, name, src, &dst)?;
            out.segments += usize::from(!name.ends_with(".history"));
        }
        if let Some(r) = redo {
            let have = files
                .keys()
                .filter_map(|n| Segment::parse(n))
                .any(|s| s.contains(r, size));
            if !have {
                bail!(
                    "the WAL this branch needs (from {}) is no longer kept by its parent: \
                     pick a later point in time",
                    format_lsn(r)
                );
            }
            if let Some(t) = stop_at {
                if let Some(end) = first_end_after(waldump, &staging, r, t)? {
                    truncate_at(&staging, end, size)?;
                    tracing::debug!(timeline = %child, end = %format_lsn(end), "WAL ends at the point in time");
                }
            }
        }
        // Linked segments keep the parent's owner: the child's compute claims them at its start.
        claim::own_unshared(&dir, (self.uid, self.gid))?;
        sync_dir_tree(&staging)?;
        std::fs::rename(&staging, self.live(child))?;
        sync_path(&dir)?;
        Ok(out)
    }

    /// Copies one file of `parent`'s WAL; a segment archived and removed since it was listed
    /// comes from the archive.
    ///
    /// A segment gone from both was pruned meanwhile: no retained point needed it, so it lies
    /// past what this cut replays (archive.rs keeps every cut's range), and it is skipped.
    fn copy_in(&self, parent: TimelineId, name: &str, src: &Path, dst: &Path) -> Result<u64> {
        match copy_sparse(src, dst) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let archived = self.archive(parent).join(name);
                match copy_sparse(&archived, dst) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        tracing::debug!(segment = name, "pruned while seeding; skipped");
                        Ok(0)
                    }
                    Err(e) => Err(e).with_context(|| format!("copying {}", archived.display())),
                }
            }
            Err(e) => Err(e).with_context(|| format!("copying {}", src.display())),
        }
    }

    /// Removes the WAL of timelines no branch name points at. (What the archive of a named
    /// one keeps is `archive::prune`'s.)
    ///
    /// `named` is asked after the directories are listed: a branch names its timeline before
    /// its WAL directory is made, so a directory being seeded right now is either not listed
    /// or already named.
    pub fn sweep(&self, named: impl FnOnce() -> HashSet<TimelineId>) -> Result<()> {
        let dirs: Vec<_> = std::fs::read_dir(&self.root)?.flatten().collect();
        let named = named();
        for e in dirs {
            let Ok(tl) = e.file_name().to_string_lossy().parse::<TimelineId>() else {
                continue;
            };
            if !named.contains(&tl) {
                tracing::info!(timeline = %tl, "removing the WAL of a timeline no branch names");
                std::fs::remove_dir_all(e.path())?;
            }
        }
        Ok(())
    }

    /// Bytes of WAL kept for `tl` (live and archived; a segment in both is one file).
    pub fn bytes(&self, tl: TimelineId) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut seen = HashSet::new();
        [self.live(tl), self.archive(tl)]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten())
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
            .map(|m| m.blocks() * 512)
            .sum()
    }
}

impl Drop for WalDirs {
    fn drop(&mut self) {
        self.close();
    }
}

/// Copies timeline `tl`'s WAL from data directory `data_dir` into `dest` (an exported data
/// directory's `pg_wal`), replacing what is there; 0 if its WAL is still in the store.
pub fn export_live(data_dir: &Path, tl: TimelineId, dest: &Path) -> Result<u64> {
    let src = data_dir.join("wal").join(tl.to_string()).join("pg_wal");
    if !src.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    for e in std::fs::read_dir(dest).into_iter().flatten().flatten() {
        if e.path().is_file() {
            std::fs::remove_file(e.path())?;
        }
    }
    // Owned like the exported pg_wal (the compute user, as the store recorded it).
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dest)?;
        (m.uid(), m.gid())
    };
    let status = dest.join("archive_status");
    if !status.is_dir() {
        mkdir(&status, 0o700)?;
        std::os::unix::fs::chown(&status, Some(owner.0), Some(owner.1))?;
    }
    for e in std::fs::read_dir(&src)?.flatten() {
        if e.path().is_file() {
            let to = dest.join(e.file_name());
            copy_sparse(&e.path(), &to)
                .with_context(|| format!("copying {}", e.path().display()))?;
            // The files' lengths, as the rest of the export counts them.
            n += e.metadata()?.len();
            std::os::unix::fs::chown(&to, Some(owner.0), Some(owner.1))?;
        }
    }
    Ok(n)
}

/// A WAL segment file name: timeline, then the segment number as two 32-bit halves.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    log: u32,
    seg: u32,
}

impl Segment {
    pub(super) fn parse(name: &str) -> Option<Segment> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Segment {
            log: u32::from_str_radix(&name[8..16], 16).ok()?,
            seg: u32::from_str_radix(&name[16..24], 16).ok()?,
        })
    }

    /// The segment after this one, for segments of `size` bytes.
    fn next(&self, size: u64) -> Segment {
        let per_log = ((1u64 << 32) / size.max(1)) as u32;
        if self.seg + 1 >= per_log {
            Segment {
                log: self.log + 1,
                seg: 0,
            }
        } else {
            Segment {
                log: self.log,
                seg: self.seg + 1,
            }
        }
    }

    /// The file name of this segment on Postgres timeline `tli` (8 hex digits).
    fn name(&self, tli: &str) -> String {
        format!("{tli}{:08X}{:08X}", self.log, self.seg)
    }

    /// The WAL position the segment starts at, for segments of `size` bytes.
    pub(super) fn start(&self, size: u64) -> u64 {
        ((self.log as u64) << 32) + self.seg as u64 * size
    }

    /// Whether this segment (of `size` bytes) ends after WAL position `lsn`.
    fn at_or_after(&self, lsn: u64, size: u64) -> bool {
        let size = size.max(1 << 20);
        self.start(size) + size > lsn
    }

    fn contains(&self, lsn: u64, size: u64) -> bool {
        self.start(size) <= lsn && lsn < self.start(size) + size
    }
}

/// The segment size: the size of the segment files (Postgres creates them whole).
fn segment_size(files: &BTreeMap<String, PathBuf>) -> u64 {
    files
        .iter()
        .filter(|(n, _)| Segment::parse(n).is_some())
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(16 << 20)
        .max(1 << 20)
}

/// The redo point of the checkpoint `global/pg_control` names on `tl` at its head: recovery
/// starts there, so the WAL a cut needs starts there. (ControlFileData: `checkPointCopy.redo`
/// is at byte 40 in every supported major version.)
fn redo_of(store: &Store, tl: TimelineId) -> Result<Option<u64>> {
    redo_at(store, tl, None)
}

/// The redo point of `tl`'s `pg_control` at `lsn` (its head if `None`).
pub(super) fn redo_at(store: &Store, tl: TimelineId, lsn: Option<Lsn>) -> Result<Option<u64>> {
    let r = store.reader(tl, lsn)?;
    let Some(global) = r.lookup(ROOT_INO, b"global")? else {
        return Ok(None);
    };
    let Some(ctl) = r.lookup(global, b"pg_control")? else {
        return Ok(None);
    };
    let b = r.read(ctl, 0, 64)?;
    if b.len() < 48 {
        bail!("pg_control is {} bytes long", b.len());
    }
    Ok(Some(u64::from_le_bytes(b[40..48].try_into().unwrap())))
}

/// The start of the first commit or abort record after WAL position `from` stamped later
/// than `t`, read with `pg_waldump` from the segments in `dir`.
fn first_end_after(waldump: &Path, dir: &Path, from: u64, t: Nanos) -> Result<Option<u64>> {
    let out = std::process::Command::new(waldump)
        .arg("-p")
        .arg(dir)
        .args(["-r", "Transaction", "-s", &format_lsn(from)])
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", waldump.display()))?;
    // pg_waldump exits non-zero at the end of the WAL ("invalid record length"): expected.
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let Some((lsn, stamp)) = transaction_end(line) else {
            continue;
        };
        if stamp > t {
            return Ok(Some(lsn));
        }
    }
    if text.trim().is_empty() && !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // No transaction record at all past `from` is an empty, failing run too.
        if !err.contains("invalid record length") && !err.contains("could not find a valid record")
        {
            bail!("pg_waldump failed: {}", err.trim());
        }
    }
    Ok(None)
}

/// `(lsn, time)` of a `pg_waldump` line for a commit or abort record:
/// `rmgr: Transaction len …, lsn: 0/0151B2C8, prev …, desc: COMMIT 2026-12-05 11:07:11.312049 UTC`.
fn transaction_end(line: &str) -> Option<(u64, Nanos)> {
    let lsn = line.split("lsn: ").nth(1)?.split(',').next()?;
    let desc = line.split("desc: ").nth(1)?;
    let rest = desc
        .strip_prefix("COMMIT ")
        .or_else(|| desc.strip_prefix("ABORT "))?;
    // "2026-12-05 11:07:11.312049 UTC" (the fraction may be absent).
    let stamp: String = rest.split(';').next()?.trim().to_string();
    let stamp = stamp.strip_suffix(" UTC")?;
    let t = humantime::parse_rfc3339_weak(&stamp.replacen(' ', "T", 1)).ok()?;
    let ns = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as Nanos;
    Some((parse_lsn(lsn)?, ns))
}

fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Ends the WAL in `dir` at position `end`: zeroes from there to the end of its segment and
/// removes later segments. Recovery reads a zero record length as the end of the WAL.
fn truncate_at(dir: &Path, end: u64, size: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(seg) = Segment::parse(&name) else {
            continue;
        };
        let start = seg.start(size);
        if start > end {
            std::fs::remove_file(e.path())?;
        } else if seg.contains(end, size) {
            unshare(&e.path())?;
            let f = std::fs::OpenOptions::new().write(true).open(e.path())?;
            let off = end - start;
            let zeros = vec![0u8; (size - off) as usize];
            f.write_all_at(&zeros, off)?;
            f.sync_all()?;
        }
    }
    Ok(())
}

/// Copies `src` to a new file `dst` of the same length and mode, skipping its holes; returns
/// the bytes copied. With `wal_init_zero = off` a new segment is a hole with one byte written
/// at its end, and Postgres fills it from the front: the segment being written is mostly hole,
/// and the next one, made in advance, entirely. A plain copy wrote (and the seed then fsynced)
/// 16 MiB of zeros for each.
pub(super) fn copy_sparse(src: &Path, dst: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
    use std::os::unix::io::AsRawFd;
    let from = std::fs::File::open(src)?;
    let meta = from.metadata()?;
    let len = meta.len();
    let to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.permissions().mode() & 0o7777)
        .open(dst)?;
    let fd = from.as_raw_fd();
    let mut buf = vec![0u8; 1 << 20];
    let (mut pos, mut copied) = (0u64, 0u64);
    while pos < len {
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole is left
            }
            return Err(e);
        }
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            len
        } else {
            (hole as u64).min(len)
        };
        let mut at = data as u64;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            from.read_exact_at(&mut buf[..n], at)?;
            to.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        copied += end - data as u64;
        pos = end;
    }
    to.set_len(len)?;
    Ok(copied)
}

/// Makes `p` a file of its own if it is a hard link shared with another timeline's WAL: a
/// copy renamed over it.
fn unshare(p: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(p)?.nlink() > 1 {
        let tmp = p.with_extension("unshare");
        let _ = std::fs::remove_file(&tmp);
        copy_sparse(p, &tmp).with_context(|| format!("copying {}", p.display()))?;
        std::fs::rename(&tmp, p)?;
    }
    Ok(())
}

pub(super) fn bind(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let s = std::ffi::CString::new(src.as_os_str().as_bytes())?;
    let d = std::ffi::CString::new(dst.as_os_str().as_bytes())?;
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        bail!(
            "bind-mounting {} at {}: {}",
            src.display(),
            dst.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// fsyncs every file and directory below `p` (a copied WAL must be durable before it is used).
fn sync_dir_tree(p: &Path) -> Result<()> {
    for e in std::fs::read_dir(p)?.flatten() {
        let path = e.path();
        if path.is_dir() {
            sync_dir_tree(&path)?;
        } else {
            sync_path(&path)?;
        }
    }
    sync_path(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn a_sparse_copy_has_the_same_bytes_and_skips_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("000000010000000000000003");
        let f = std::fs::File::create(&src).unwrap();
        // A segment as Postgres starts one: its last byte, then records from the front.
        let size = 16u64 << 20;
        f.write_all_at(&[0], size - 1).unwrap();
        f.write_all_at(&[7u8; 300_000], 0).unwrap();
        f.sync_all().unwrap();
        let dst = dir.path().join("copy");
        let copied = copy_sparse(&src, &dst).unwrap();
        assert!(copied < 2 << 20, "copied {copied} bytes");
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        let m = std::fs::metadata(&dst).unwrap();
        assert_eq!(m.len(), size);
        assert!(m.blocks() * 512 < 2 << 20, "{} blocks", m.blocks());
        // An existing destination is never overwritten.
        assert!(copy_sparse(&src, &dst).is_err());
    }

    #[test]
    fn only_a_finished_segment_with_its_successor_is_shared() {
        let size = 16u64 << 20;
        let names = [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
        ];
        let files: BTreeMap<String, PathBuf> = names
            .iter()
            .map(|n| (n.to_string(), PathBuf::from(n)))
            .collect();
        let finished: HashSet<String> = names[..2].iter().map(|n| n.to_string()).collect();
        assert!(shareable(names[0], &finished, &files, size));
        assert!(shareable(names[1], &finished, &files, size));
        // Not finished: the parent may still write it.
        assert!(!shareable(names[2], &finished, &files, size));
        // Finished, but the child's recovery would end in it and write on there.
        let mut gap = files.clone();
        gap.remove(names[2]);
        assert!(!shareable(names[1], &finished, &gap, size));
        // The last segment of a log file is followed by the first of the next.
        let last = "0000000100000000000000FF";
        let first = "000000010000000100000000";
        let files: BTreeMap<String, PathBuf> = [last, first]
            .iter()
            .map(|n| (n.to_string(), PathBuf::from(n)))
            .collect();
        let finished: HashSet<String> = [last.to_string()].into();
        assert!(shareable(last, &finished, &files, size));
    }
}
