//! Copying a POSIX directory tree into a branch and back out, preserving kinds, bytes, modes,
//! owners and mtimes. `import` of a Postgres data directory followed by `export` reproduces it
//! byte for byte.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::storage::{FileKind, Ino, Lsn, NewNode, Reader, SetAttr, Store, TimelineId, ROOT_INO};

/// Totals of a copy, for progress and `--json`.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Copied {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

const CHUNK: usize = 256 * 1024;

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// Copies the contents of `src` into the root directory of timeline `tl`.
///
/// `owner` replaces every file's owner: an imported cluster must belong to the user its compute
/// runs as, or Postgres refuses to start on it.
pub fn import(
    store: &Store,
    tl: TimelineId,
    src: &Path,
    owner: Option<(u32, u32)>,
    progress: &mut dyn FnMut(&Copied),
) -> Result<Copied> {
    let mut c = Copied::default();
    let meta = fs::metadata(src).with_context(|| format!("reading {}", src.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", src.display());
    }
    let own = |m: &fs::Metadata| owner.unwrap_or((m.uid(), m.gid()));
    import_dir(store, tl, src, ROOT_INO, &own, &mut c, progress)?;
    let (uid, gid) = own(&meta);
    let set = SetAttr {
        mode: Some(meta.mode() & 0o7777),
        uid: Some(uid),
        gid: Some(gid),
        mtime: Some(mtime_ns(&meta)),
        ..Default::default()
    };
    store.setattr(tl, ROOT_INO, &set)?;
    Ok(c)
}

fn import_dir(
    store: &Store,
    tl: TimelineId,
    src: &Path,
    dir: Ino,
    own: &dyn Fn(&fs::Metadata) -> (u32, u32),
    c: &mut Copied,
    progress: &mut dyn FnMut(&Copied),
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", src.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let m =
            fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = e.file_name();
        let name = name.as_encoded_bytes();
        let mode = m.mode() & 0o7777;
        let (uid, gid) = own(&m);
        let ft = m.file_type();
        let ino = if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            c.symlinks += 1;
            store
                .create(
                    tl,
                    dir,
                    name,
                    NewNode::Symlink(target.as_os_str().as_encoded_bytes()),
                    0o777,
                    uid,
                    gid,
                )?
                .0
        } else if ft.is_dir() {
            let (ino, _) = store.create(tl, dir, name, NewNode::Dir, mode, uid, gid)?;
            c.dirs += 1;
            import_dir(store, tl, &path, ino, own, c, progress)?;
            ino
        } else if ft.is_file() {
            let (ino, _) = store.create(tl, dir, name, NewNode::File, mode, uid, gid)?;
            let mut f =
                fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let mut buf = vec![0u8; CHUNK];
            let mut off = 0u64;
            loop {
                let n = f
                    .read(&mut buf)
                    .with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                store.write(tl, ino, off, &buf[..n])?;
                off += n as u64;
                c.bytes += n as u64;
            }
            c.files += 1;
            progress(c);
            ino
        } else {
            tracing::warn!(
                "skipping {} (not a file, directory or symlink)",
                path.display()
            );
            continue;
        };
        if !ft.is_symlink() {
            // Last, so creating children does not move a directory's mtime afterwards.
            store.setattr(
                tl,
                ino,
                &SetAttr {
                    mtime: Some(mtime_ns(&m)),
                    ..Default::default()
                },
            )?;
        }
    }
    Ok(())
}

/// Writes timeline `tl` as of `lsn` out to `dest` (which must not exist or be empty).
pub fn export(
    store: &Store,
    tl: TimelineId,
    lsn: Option<Lsn>,
    dest: &Path,
    progress: &mut dyn FnMut(&Copied),
) -> Result<Copied> {
    if dest.exists() && fs::read_dir(dest)?.next().is_some() {
        bail!(
            "{} is not empty; export writes into a new or empty directory",
            dest.display()
        );
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let r = store.reader(tl, lsn)?;
    let mut c = Copied::default();
    export_dir(&r, ROOT_INO, dest, &mut c, progress)?;
    finish_node(&r.getattr(ROOT_INO)?, dest)?;
    Ok(c)
}

/// Writes directory `name` of the root of timeline `tl` (at its head) out to `dest`, a new
/// directory. `None` if the root has no directory of that name.
pub fn export_root_dir(
    store: &Store,
    tl: TimelineId,
    name: &[u8],
    dest: &Path,
) -> Result<Option<Copied>> {
    let r = store.reader(tl, None)?;
    let Some(ino) = r.lookup(ROOT_INO, name)? else {
        return Ok(None);
    };
    let a = r.getattr(ino)?;
    if a.kind != FileKind::Dir {
        return Ok(None);
    }
    fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut c = Copied::default();
    export_dir(&r, ino, dest, &mut c, &mut |_| {})?;
    finish_node(&a, dest)?;
    Ok(Some(c))
}

/// Removes everything below directory `name` of the root of timeline `tl` (the directory
/// stays). Returns how many entries went.
pub fn empty_root_dir(store: &Store, tl: TimelineId, name: &[u8]) -> Result<usize> {
    fn empty(store: &Store, tl: TimelineId, dir: Ino) -> Result<usize> {
        let mut n = 0;
        let entries = store.reader(tl, None)?.readdir(dir)?;
        for (name, ino) in entries {
            if store.reader(tl, None)?.getattr(ino)?.kind == FileKind::Dir {
                n += empty(store, tl, ino)?;
                store.rmdir(tl, dir, &name)?;
            } else {
                store.unlink(tl, dir, &name)?;
            }
            n += 1;
        }
        Ok(n)
    }
    match store.reader(tl, None)?.lookup(ROOT_INO, name)? {
        Some(ino) => empty(store, tl, ino),
        None => Ok(0),
    }
}

fn export_dir(
    r: &Reader<'_>,
    dir: Ino,
    dest: &Path,
    c: &mut Copied,
    progress: &mut dyn FnMut(&Copied),
) -> Result<()> {
    for (name, ino) in r.readdir(dir)? {
        let path = dest.join(OsStr::from_bytes(&name));
        let a = r.getattr(ino)?;
        match a.kind {
            FileKind::Dir => {
                fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
                c.dirs += 1;
                export_dir(r, ino, &path, c, progress)?;
            }
            FileKind::Symlink => {
                let target = OsStr::from_bytes(&a.target);
                std::os::unix::fs::symlink(target, &path)
                    .with_context(|| format!("creating {}", path.display()))?;
                std::os::unix::fs::lchown(&path, Some(a.uid), Some(a.gid)).ok();
                c.symlinks += 1;
                continue;
            }
            FileKind::File => {
                let mut f = fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let mut off = 0u64;
                while off < a.size {
                    let data = r.read(ino, off, CHUNK)?;
                    std::io::Write::write_all(&mut f, &data)?;
                    off += data.len() as u64;
                    c.bytes += data.len() as u64;
                }
                c.files += 1;
                progress(c);
            }
        }
        finish_node(&a, &path)?;
    }
    Ok(())
}

/// Mode, owner, then mtime last (after the directory's contents were written).
fn finish_node(a: &crate::storage::Attr, path: &Path) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(a.mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid)).ok();
    let t = UNIX_EPOCH + Duration::from_nanos(a.mtime.max(0) as u64);
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .with_context(|| format!("setting times of {}", path.display()))?;
    Ok(())
}
