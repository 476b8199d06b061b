//! Handing a compute's files on local disk (its WAL; the system database's data directory) to
//! the uid it runs as this time (user.rs: one leased uid per running compute).
//!
//! A timeline's WAL may share inodes with another timeline's: a branch's seed hard-links its
//! parent's finished segments (wal.rs). An inode has one owner, so a chown of a shared segment
//! would take it away from the other timeline's compute (mode 0600: it could no longer read or
//! archive it). A shared file whose owner is not ours is therefore replaced by a private copy
//! (made durable before it takes the name); one that only this tree names is chowned.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A uid and gid.
pub type Owner = (u32, u32);

/// What `claim` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// Files and directories chowned in place.
    pub chowned: usize,
    /// Shared files replaced by a private copy, and the bytes those copies took.
    pub copied: usize,
    pub bytes: u64,
}

fn walk(p: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) -> Result<()> {
    let m = std::fs::symlink_metadata(p).with_context(|| format!("reading {}", p.display()))?;
    let dir = m.is_dir();
    out.push((p.to_path_buf(), m));
    if dir {
        for e in std::fs::read_dir(p).with_context(|| format!("listing {}", p.display()))? {
            walk(&e?.path(), out)?;
        }
    }
    Ok(())
}

/// Makes everything under `root` (and `root`) owned by `owner`, copying files another tree
/// shares (module doc).
pub fn claim(root: &Path, owner: Owner) -> Result<Claimed> {
    let mut all = vec![];
    walk(root, &mut all)?;
    let mut names: HashMap<(u64, u64), u64> = HashMap::new();
    for (_, m) in &all {
        *names.entry((m.dev(), m.ino())).or_default() += 1;
    }
    let mut private: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut c = Claimed::default();
    let mut dirty_dirs = vec![];
    for (p, m) in &all {
        if (m.uid(), m.gid()) == owner {
            continue;
        }
        let key = (m.dev(), m.ino());
        if m.is_file() && m.nlink() > names[&key] {
            let tmp = p.with_file_name(format!(
                ".{}.claim",
                p.file_name().unwrap_or_default().to_string_lossy()
            ));
            let _ = std::fs::remove_file(&tmp);
            if let Some(first) = private.get(&key) {
                // Another name of the same inode in this tree: it gets the same private copy.
                std::fs::hard_link(first, &tmp)
                    .with_context(|| format!("linking {}", tmp.display()))?;
            } else {
                c.bytes += super::wal::copy_sparse(p, &tmp)
                    .with_context(|| format!("copying {}", p.display()))?;
                std::os::unix::fs::chown(&tmp, Some(owner.0), Some(owner.1))?;
                std::fs::File::open(&tmp)?.sync_all()?;
                c.copied += 1;
            }
            std::fs::rename(&tmp, p).with_context(|| format!("replacing {}", p.display()))?;
            private.insert(key, p.clone());
            if let Some(d) = p.parent() {
                dirty_dirs.push(d.to_path_buf());
            }
        } else {
            std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1))
                .with_context(|| format!("handing {} to uid {}", p.display(), owner.0))?;
            c.chowned += 1;
        }
    }
    dirty_dirs.sort();
    dirty_dirs.dedup();
    for d in dirty_dirs {
        crate::util::sync_path(&d)?;
    }
    Ok(c)
}

/// Chowns `root` and everything under it that no other tree shares (a fresh seed: its
/// hard-linked segments keep their owner until `claim` at its compute's start).
pub fn own_unshared(root: &Path, owner: Owner) -> Result<()> {
    let mut all = vec![];
    walk(root, &mut all)?;
    for (p, m) in &all {
        if m.is_dir() || m.nlink() == 1 {
            std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1))
                .with_context(|| format!("handing {} to uid {}", p.display(), owner.0))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root: a file shared with another tree is copied, not chowned, so the other tree's
    /// owner keeps it; a file only this tree names (twice: pg_wal and archive) is chowned once
    /// and stays one inode.
    #[test]
    fn claim_copies_shared_files_and_chowns_private_ones() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(a.join("pg_wal")).unwrap();
        std::fs::create_dir_all(a.join("archive")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("pg_wal/shared"), b"parent's segment").unwrap();
        std::fs::hard_link(a.join("pg_wal/shared"), b.join("shared")).unwrap();
        std::fs::write(a.join("pg_wal/own"), b"own segment").unwrap();
        std::fs::hard_link(a.join("pg_wal/own"), a.join("archive/own")).unwrap();
        let c = claim(&a, (4242, 4243)).unwrap();
        assert_eq!((c.copied, c.bytes), (1, 16));
        let meta = |p: PathBuf| std::fs::metadata(p).unwrap();
        assert_eq!(
            meta(b.join("shared")).uid(),
            0,
            "the other tree's owner kept its file"
        );
        assert_eq!(meta(a.join("pg_wal/shared")).uid(), 4242);
        assert_eq!(
            std::fs::read(a.join("pg_wal/shared")).unwrap(),
            b"parent's segment"
        );
        assert_eq!(
            meta(a.join("pg_wal/own")).ino(),
            meta(a.join("archive/own")).ino()
        );
        assert_eq!(meta(a.join("archive/own")).uid(), 4242);
        assert_eq!(meta(a.join("archive")).gid(), 4243);
        // Nothing left to do the second time.
        assert_eq!(claim(&a, (4242, 4243)).unwrap(), Claimed::default());
    }
}
