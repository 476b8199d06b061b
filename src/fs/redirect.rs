//! A redirect: one name in a view's root directory that the view answers itself, as a symlink
//! to a directory outside the store, whatever the store holds under that name.
//!
//! The compute layer uses it to put a branch's `pg_wal` on local disk (DESIGN.md: WAL may live
//! outside the versioned page path). The view owns the symlink, not the store, so it always names
//! this timeline's directory: a child cut from a parent can never inherit a link into the
//! parent's WAL. The fs layer knows nothing of WAL; it is told a name and a target.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use fuser::{FileAttr, FileType, INodeNo};

use crate::storage::{self, Ino, ROOT_INO};

/// The inode number the view gives the redirect's symlink: far above any the store allocates
/// (they count up from 2).
pub const REDIRECT_INO: Ino = 1 << 62;

/// `name` in the root directory is a symlink to `target`.
#[derive(Clone, Debug)]
pub struct Redirect {
    pub name: Vec<u8>,
    pub target: PathBuf,
}

impl Redirect {
    /// Whether `(parent, name)` is the redirected entry.
    pub fn is(&self, parent: INodeNo, name: &[u8]) -> bool {
        parent.0 == ROOT_INO && name == self.name.as_slice()
    }

    pub fn target_bytes(&self) -> &[u8] {
        use std::os::unix::ffi::OsStrExt;
        self.target.as_os_str().as_bytes()
    }

    /// The symlink's attributes: owned by the root directory's owner, dated at the epoch (it is
    /// made anew by every mount, so no time is more true than another).
    pub fn attr(&self, owner: (u32, u32)) -> FileAttr {
        FileAttr {
            ino: INodeNo(REDIRECT_INO),
            size: self.target_bytes().len() as u64,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: FileType::Symlink,
            perm: 0o777,
            nlink: 1,
            uid: owner.0,
            gid: owner.1,
            rdev: 0,
            blksize: storage::PAGE_SIZE as u32,
            flags: 0,
        }
    }

    /// The root directory's listing with the redirect in place of whatever the store has there.
    pub fn patch_root(&self, entries: &mut Vec<(Vec<u8>, Ino, FileType)>) {
        entries.retain(|(n, _, _)| n != &self.name);
        entries.push((self.name.clone(), REDIRECT_INO, FileType::Symlink));
    }
}
