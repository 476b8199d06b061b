//! Storage accounting per branch: what it owns versus what it reads from its ancestors.

use super::codec::{FileKind, ObjKey};
use super::error::Result;
use super::ids::{Ino, PAGE_SIZE, ROOT_INO};
use super::store::Store;

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

impl Store {
    /// Bytes the branch's timeline owns (`Usage::own_bytes`), without walking its files.
    pub fn own_bytes(&self, branch: &str) -> Result<u64> {
        let tl = self.branch_timeline(branch)?;
        let st = self.state.read().unwrap();
        Ok(st.tl(st.idx(tl)?).stats.own_bytes)
    }

    pub fn usage(&self, branch: &str) -> Result<Usage> {
        let tl = self.branch_timeline(branch)?;
        let r = self.reader(tl, None)?;
        let mut u = Usage::default();
        {
            let st = self.state.read().unwrap();
            let e = st.tl(st.idx(tl)?);
            u.own_bytes = e.stats.own_bytes;
            u.own_versions = e.stats.versions;
        }
        let mut stack: Vec<Ino> = vec![ROOT_INO];
        let mut cands = Vec::new();
        while let Some(dir) = stack.pop() {
            for (_, ino) in r.readdir(dir)? {
                let a = r.getattr(ino)?;
                match a.kind {
                    FileKind::Dir => stack.push(ino),
                    FileKind::Symlink => {}
                    FileKind::File => {
                        u.files += 1;
                        u.logical_size += a.size;
                        let m = self.markers.read().unwrap();
                        for b in 0..a.size.div_ceil(PAGE_SIZE as u64) as u32 {
                            r.lineage.candidates(
                                m.writers(&ObjKey::page(a.did, b)),
                                r.lsn,
                                &mut cands,
                            );
                            if cands.first().is_some_and(|c| c.0 > 0) {
                                u.shared_bytes += PAGE_SIZE as u64;
                            }
                        }
                    }
                }
            }
        }
        Ok(u)
    }
}
