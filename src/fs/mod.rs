//! fs: a timeline as a POSIX directory tree, mounted with FUSE.
//!
//! `view.rs` maps each FUSE request to one storage call; this file mounts and unmounts views and
//! clears mounts a killed daemon left behind. The layer keeps no durable state of its own.

mod redirect;
mod view;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use redirect::Redirect;
pub use view::{Owner, TimelineView, ViewStats};

use crate::storage::{Store, TimelineId};

/// A mounted view. Dropping it unmounts (lazily if something still holds the mount busy).
///
/// With the kernel's writeback cache, what a process wrote may still be in the page cache:
/// `sync` or `unmount` pushes it into the store and makes it durable there.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    path: PathBuf,
    store: Arc<Store>,
    pub stats: Arc<ViewStats>,
}

/// Mounts timeline `tl` at `mountpoint` (an existing empty directory).
///
/// `allow_other` lets the compute user (not the daemon's user) use the mount, and
/// `default_permissions` has the kernel enforce modes and owners, as on a local disk.
pub fn mount(
    store: Arc<Store>,
    tl: TimelineId,
    mountpoint: &Path,
    fsname: &str,
    threads: usize,
    redirect: Option<Redirect>,
    owner: Option<Owner>,
) -> io::Result<Mount> {
    // A mount left behind by a killed daemon answers ENOTCONN; clear it first.
    unmount_stale(mountpoint)?;
    // Nothing holds a file of a view that is not mounted: orphans a killed daemon left (files
    // unlinked while open) can go now.
    match store.reap_orphans(tl) {
        Ok(0) | Err(crate::storage::Error::ReadOnly(_)) => {}
        Ok(n) => {
            tracing::info!(timeline = %tl, "freed {n} unlinked file(s) a previous mount left open")
        }
        Err(e) => {
            return Err(io::Error::other(format!(
                "freeing the unlinked files of timeline {tl}: {e}"
            )))
        }
    }
    let stats = Arc::new(ViewStats::default());
    let view = TimelineView::new(store.clone(), tl, stats.clone(), redirect, owner);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(format!("lakelet:{fsname}")),
        fuser::MountOption::Subtype("lakelet".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoExec,
        fuser::MountOption::NoAtime,
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(threads.max(1));
    config.clone_fd = true;
    let session = fuser::spawn_mount(view, mountpoint, &config).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "mounting the view of timeline {tl} at {}: {e} (is /dev/fuse available, and \
                 are you root or is fusermount3 installed?)",
                mountpoint.display()
            ),
        )
    })?;
    Ok(Mount {
        session: Some(session),
        path: mountpoint.to_path_buf(),
        store,
        stats,
    })
}

impl Mount {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written through the view so far durable in the store: `syncfs(2)` has
    /// the kernel write back every dirty page and time (each a request the view commits before
    /// replying), then the store syncs.
    pub fn sync(&self) -> io::Result<()> {
        syncfs(&self.path)?;
        self.sync_store()
    }

    fn sync_store(&self) -> io::Result<()> {
        self.store
            .sync()
            .map_err(|e| io::Error::other(format!("syncing the page store: {e}")))
    }

    /// Unmounts and waits for the session's threads, then syncs the store. The kernel writes
    /// back what it holds before the unmount completes, so every write reaches the store.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        if let Some(s) = self.session.take() {
            // A lazy detach (below) would leave dirty pages with no one to write them to.
            if let Err(e) = syncfs(&self.path) {
                tracing::warn!(mount = %self.path.display(), "syncfs before unmount: {e}");
            }
            if let Err(e) = s.umount_and_join() {
                // Busy (a process still has a file open): detach, the kernel finishes later.
                tracing::warn!(mount = %self.path.display(), "unmount: {e}; detaching");
                match detach(&self.path) {
                    // Not a mount point any more: the unmount went through after all (the
                    // session saw its connection end, ECONNABORTED, as it finished).
                    Err(d) if is_einval(&d) => {
                        tracing::info!(mount = %self.path.display(), "already unmounted");
                    }
                    r => r?,
                }
            }
            self.sync_store()?;
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::error!(mount = %self.path.display(), "unmount failed: {e}");
        }
    }
}

/// `syncfs(2)` of the file system mounted at `path`.
fn syncfs(path: &Path) -> io::Result<()> {
    let dir = std::fs::File::open(path)?;
    use std::os::fd::AsRawFd;
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("syncfs of {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// The mount points currently mounted at or under `root`, read from /proc/self/mountinfo.
pub fn mounts_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let root = root.to_path_buf();
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&root))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap(), 8);
            if let Ok(v) = v {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches whatever is mounted at `path` (MNT_DETACH: works on a dead FUSE mount too).
/// Whether `e` (as `detach` words it) is EINVAL: the path is not a mount point.
fn is_einval(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

pub fn detach(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        // Not root: fusermount3 can unmount a FUSE mount its user owns.
        let st = std::process::Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(path)
            .status()?;
        if st.success() {
            return Ok(());
        }
    }
    Err(io::Error::new(
        e.kind(),
        format!("unmounting {}: {e}", path.display()),
    ))
}

/// Unmounts `path` if something is mounted there.
pub fn unmount_stale(path: &Path) -> io::Result<()> {
    if mounts_under(path)?.iter().any(|p| p == path) {
        tracing::warn!(mount = %path.display(), "clearing a stale mount");
        detach(path)?;
    }
    Ok(())
}
