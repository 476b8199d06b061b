//! The FUSE view with the kernel's writeback cache: what reaches the store, and when; and files
//! unlinked while open.
//!
//! The regression this guards: with writeback on, the kernel writes back a file's dirty pages
//! (and sends its times) after `unlink`, when Postgres closes it. If the store had already freed
//! the inode, that write failed, close(2) returned EIO, and Postgres PANICked after a DROP
//! TABLE ("could not close file … Input/output error").

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lakelet::fs::{self, Mount};
use lakelet::storage::{Errno, Options, Store, TimelineId, ROOT_INO};

struct View {
    store: Arc<Store>,
    tl: TimelineId,
    mount: Option<Mount>,
    _dir: tempfile::TempDir,
}

impl View {
    fn new() -> View {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("store"), Options::default()).unwrap());
        store.create_root_branch("main", 0, 0).unwrap();
        let tl = store.branch_timeline("main").unwrap();
        let mp = dir.path().join("mnt");
        std::fs::create_dir(&mp).unwrap();
        let mount = fs::mount(store.clone(), tl, &mp, "view-test", 2, None, None).unwrap();
        View {
            store,
            tl,
            mount: Some(mount),
            _dir: dir,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.mount.as_ref().unwrap().path().join(name)
    }

    /// The file's size and first bytes as the store has them (not the kernel).
    fn stored(&self, name: &str) -> Option<(u64, Vec<u8>)> {
        let r = self.store.reader(self.tl, None).unwrap();
        let ino = r.lookup(ROOT_INO, name.as_bytes()).unwrap()?;
        let a = r.getattr(ino).unwrap();
        Some((a.size, r.read(ino, 0, 16).unwrap()))
    }

    fn wait_orphans(&self, n: usize) -> Vec<u64> {
        let t = Instant::now();
        loop {
            let o = self.store.orphans(self.tl).unwrap();
            if o.len() == n || t.elapsed() > Duration::from_secs(10) {
                return o;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            let _ = m.unmount();
        }
    }
}

fn futimens(f: &File, secs: i64) {
    let ts = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    let r = unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) };
    assert_eq!(r, 0, "futimens: {}", std::io::Error::last_os_error());
}

#[test]
fn writes_and_times_to_an_unlinked_open_file_succeed_and_the_file_is_freed_after() {
    let v = View::new();
    let p = v.path("rel");
    let mut f = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    f.write_all(&[7u8; 20_000]).unwrap();
    f.sync_all().unwrap();
    let ino = {
        let r = v.store.reader(v.tl, None).unwrap();
        r.lookup(ROOT_INO, b"rel").unwrap().unwrap()
    };
    // Dirty pages in the kernel, then the name goes: DROP TABLE of a relation a backend wrote.
    f.write_all_at(&[9u8; 8192], 8192).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert!(!Path::new(&p).exists());
    assert_eq!(
        v.store.orphans(v.tl).unwrap(),
        vec![ino],
        "an unlinked file the kernel still holds is kept as an orphan"
    );
    // Writes, times and fsync after the unlink all succeed, and read back.
    f.write_all_at(&[5u8; 100], 30_000).unwrap();
    futimens(&f, 1_700_000_000);
    f.sync_all().unwrap();
    let mut back = vec![0u8; 30_100];
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(&mut back).unwrap();
    assert!(back[..8192].iter().all(|&b| b == 7));
    assert!(back[8192..16384].iter().all(|&b| b == 9));
    assert!(back[30_000..].iter().all(|&b| b == 5));
    // The fsync put them in the store, under the orphan's inode.
    let a = v.store.reader(v.tl, None).unwrap().getattr(ino).unwrap();
    assert_eq!(a.size, 30_100);
    assert_eq!(a.mtime, 1_700_000_000 * 1_000_000_000);
    // close(2) reports no error (it was EIO before: the PANIC).
    let fd = f.as_raw_fd();
    std::mem::forget(f);
    assert_eq!(unsafe { libc::close(fd) }, 0, "close after unlink failed");
    // The kernel forgets the inode once nothing holds it; the view then frees it.
    assert!(
        v.wait_orphans(0).is_empty(),
        "the orphan was not freed after its last close"
    );
    match v.store.reader(v.tl, None).unwrap().getattr(ino) {
        Err(e) => assert_eq!(e.errno(), Some(Errno::NotFound), "{e}"),
        Ok(a) => panic!("inode {ino} still has attributes after it was freed: {a:?}"),
    }
}

#[test]
fn a_rename_over_an_open_file_keeps_it_until_closed() {
    let v = View::new();
    let mut old = File::create(v.path("map")).unwrap();
    old.write_all(b"old contents").unwrap();
    std::fs::write(v.path("map.tmp"), b"new").unwrap();
    std::fs::rename(v.path("map.tmp"), v.path("map")).unwrap();
    // The replaced file is still writable through its descriptor.
    old.write_all(b" and more").unwrap();
    old.sync_all().unwrap();
    assert_eq!(v.store.orphans(v.tl).unwrap().len(), 1);
    assert_eq!(std::fs::read(v.path("map")).unwrap(), b"new");
    drop(old);
    assert!(v.wait_orphans(0).is_empty());
}

#[test]
fn the_next_mount_frees_orphans_a_killed_daemon_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store"), Options::default()).unwrap());
    store.create_root_branch("main", 0, 0).unwrap();
    let tl = store.branch_timeline("main").unwrap();
    let (ino, _) = store
        .create(
            tl,
            ROOT_INO,
            b"f",
            lakelet::storage::NewNode::File,
            0o600,
            0,
            0,
        )
        .unwrap();
    store.write(tl, ino, 0, &[1u8; 8192]).unwrap();
    struct Keep;
    impl lakelet::storage::Removal for Keep {
        fn keep(&self, _: u64) -> bool {
            true
        }
    }
    store.unlink_as(tl, ROOT_INO, b"f", &Keep).unwrap();
    store.sync().unwrap();
    drop(store);
    // Reopened (as after a crash): the orphan and its data are still there...
    let store = Arc::new(Store::open(dir.path().join("store"), Options::default()).unwrap());
    assert_eq!(store.orphans(tl).unwrap(), vec![ino]);
    assert!(store.reader(tl, None).unwrap().getattr(ino).is_ok());
    // ... until the timeline is mounted again: nothing can hold a file of an unmounted view.
    let mp = dir.path().join("mnt");
    std::fs::create_dir(&mp).unwrap();
    let m = fs::mount(store.clone(), tl, &mp, "view-test", 2, None, None).unwrap();
    assert!(store.orphans(tl).unwrap().is_empty());
    match store.reader(tl, None).unwrap().getattr(ino) {
        Err(e) => assert_eq!(e.errno(), Some(Errno::NotFound), "{e}"),
        Ok(a) => panic!("inode {ino} survived the mount: {a:?}"),
    }
    // Freeing is idempotent: a second free of the same inode is a no-op.
    assert_eq!(store.remove_orphan(tl, ino).unwrap(), None);
    m.unmount().unwrap();
}

#[test]
fn writes_reach_the_store_on_fsync_syncfs_and_unmount_not_before() {
    let mut v = View::new();
    let mut f = File::create(v.path("a")).unwrap();
    f.write_all(b"hello").unwrap();
    // The writeback cache holds it: the store has the name, not yet the bytes.
    let stats = v.mount.as_ref().unwrap().stats.clone();
    assert!(
        stats
            .writeback_cache
            .load(std::sync::atomic::Ordering::Relaxed),
        "this kernel did not grant the FUSE writeback cache"
    );
    assert_eq!(
        v.stored("a").unwrap().0,
        0,
        "a write reached the store before any flush"
    );
    f.sync_data().unwrap();
    assert_eq!(v.stored("a").unwrap(), (5, b"hello".to_vec()));
    // syncfs (Mount::sync) pushes what no one fsynced.
    let mut g = File::create(v.path("b")).unwrap();
    g.write_all(b"world").unwrap();
    v.mount.as_ref().unwrap().sync().unwrap();
    assert_eq!(v.stored("b").unwrap(), (5, b"world".to_vec()));
    // So does unmounting: close without fsync, then unmount.
    let mut h = File::create(v.path("c")).unwrap();
    h.write_all(b"bye").unwrap();
    drop((f, g, h));
    v.mount.take().unwrap().unmount().unwrap();
    assert_eq!(v.stored("c").unwrap(), (3, b"bye".to_vec()));
}
