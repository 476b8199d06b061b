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

/// Postgres's `postmaster.pid` through the view while another process polls it, as the daemon
/// once did every 2 ms to see readiness (ead6711): the postmaster creates it (O_CREAT|O_EXCL,
/// write, fsync, close), rewrites it longer several times (AddToDataDirLockFile: open O_RDWR,
/// read it whole, pwrite at 0, fsync, close) and rechecks it (RecheckDataDirLockFile: open,
/// read, atol). A recheck that read nothing ("contains wrong PID: 0") shut a pool compute down.
/// The writer must always read back exactly what it wrote, and the readers must never see a NUL
/// byte or content that does not start with the pid line, across cycles that unlink and
/// re-create the file (a new inode, as a restart does; the readers' lookups answer ENOENT just
/// before each creation, and one reader holds its descriptor across the unlink), with clean
/// pages dropped now and then (POSIX_FADV_DONTNEED, as memory pressure would).
///
/// Known to fail (kernel 6.18, writeback cache): now and then, right after a *create* cycle
/// (create, write, fsync, close), the writer's next open+read returns 0 bytes: the kernel's
/// cached size of the new inode is 0 while the store holds the file whole, and it stays 0 (the
/// writeback cache never takes a size from the view). Needs a concurrent reader and dropped
/// clean pages; happens with one FUSE thread too. About one run in three at 4000 cycles
/// (~5 s); ignored until fixed: `cargo test --release --test view a_rewritten_lock_file --
/// --ignored --nocapture`. `LAKELET_PIDFILE_CYCLES` sets the number of cycles (default 4000).
#[test]
#[ignore = "reproduces the postmaster.pid 'wrong PID: 0' bug intermittently; not fixed yet"]
fn a_rewritten_lock_file_polled_by_another_reader_never_reads_back_zeros() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;

    const PID_LINE: &[u8] = b"4242\n";
    let cycles: usize = std::env::var("LAKELET_PIDFILE_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);

    let v = View::new();
    let p = v.path("postmaster.pid");
    let stop = AtomicBool::new(false);
    let problems: Mutex<Vec<String>> = Mutex::new(vec![]);
    let polls = AtomicU64::new(0);
    let nonempty_polls = AtomicU64::new(0);

    /// Sets `stop` however the writer ends (a failed assertion too), so the pollers end and
    /// the scope can join them; the view then unmounts in `View::drop`.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    // What a poller may see: nothing (created, not yet written) or the pid line first, and
    // never a NUL. (Torn reads of a rewrite in progress are allowed; every version starts
    // with the same pid line.)
    let check = |who: &str, b: &[u8]| {
        if !b.is_empty() {
            nonempty_polls.fetch_add(1, Ordering::Relaxed);
        }
        if b.contains(&0) || (!b.is_empty() && !b.starts_with(PID_LINE)) {
            problems.lock().unwrap().push(format!(
                "{who} read {} bytes: {:?}",
                b.len(),
                String::from_utf8_lossy(b)
            ));
        }
    };

    let fadvise_dontneed = |f: &File| {
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(
            r,
            0,
            "posix_fadvise: {}",
            std::io::Error::from_raw_os_error(r)
        );
    };

    let expected = std::thread::scope(|s| {
        // The daemon's poll: open, read to end, close, every ~0.5 ms.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                match std::fs::read(&p) {
                    Ok(b) => check("poller", &b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => problems.lock().unwrap().push(format!("poller: {e}")),
                }
                polls.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        // A slower reader that holds its descriptor a while (across unlinks, so it reads
        // orphans too), reads twice, and sometimes drops the clean pages it read.
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                match File::open(&p) {
                    Ok(mut f) => {
                        let mut b = vec![];
                        match f.read_to_end(&mut b) {
                            Ok(_) => check("holder", &b),
                            Err(e) => problems.lock().unwrap().push(format!("holder: {e}")),
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        let mut b = vec![0u8; 8192];
                        match f.read_at(&mut b, 0) {
                            Ok(n) => check("holder (again)", &b[..n]),
                            Err(e) => problems.lock().unwrap().push(format!("holder: {e}")),
                        }
                        if i % 3 == 0 {
                            fadvise_dontneed(&f);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => problems.lock().unwrap().push(format!("holder: {e}")),
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        });

        // The postmaster.
        let _stop = StopOnDrop(&stop);
        let mut expected: Vec<u8> = vec![];
        for cycle in 0..cycles {
            if cycle % 5 == 0 {
                // A (re)start: a stale file goes, a new one (a new inode) is created.
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("cycle {cycle}: unlink: {e}"),
                }
                // CreateLockFile: pid, data directory, start time, port, socket directory.
                expected = [
                    PID_LINE,
                    format!("/pgdata/cycle-{cycle}\n1700000{cycle:03}\n5432\n/run/s\n").as_bytes(),
                ]
                .concat();
                let mut f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .unwrap_or_else(|e| panic!("cycle {cycle}: create: {e}"));
                f.write_all(&expected).unwrap();
                f.sync_all().unwrap();
                drop(f);
            }
            // AddToDataDirLockFile: read it whole, write it back one line longer at 0.
            let line = match cycle % 5 {
                0 => "*\n".to_string(),
                1 => format!("  {cycle:>8} {:>8}\n", cycle * 7),
                2 => "starting\n".to_string(),
                3 => "ready   \n".to_string(),
                _ => format!("# cycle {cycle} {}\n", "x".repeat(cycle % 50)),
            };
            let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
            let mut cur = vec![];
            f.read_to_end(&mut cur).unwrap();
            if cur != expected {
                use std::os::unix::fs::MetadataExt;
                let m = f.metadata().unwrap();
                let r = v.store.reader(v.tl, None).unwrap();
                let sino = r.lookup(ROOT_INO, b"postmaster.pid").unwrap();
                eprintln!(
                    "cycle {cycle}: the writer read {} bytes; its descriptor: inode {} size {}; the store: name -> {sino:?}, size {:?}, head {:?}; orphans {:?}",
                    cur.len(),
                    m.ino(),
                    m.len(),
                    sino.map(|i| r.getattr(i).map(|a| a.size)),
                    v.stored("postmaster.pid"),
                    v.store.orphans(v.tl)
                );
                std::thread::sleep(Duration::from_millis(100));
                let mut again = vec![];
                f.seek(SeekFrom::Start(0)).unwrap();
                f.read_to_end(&mut again).unwrap();
                let m2 = std::fs::metadata(&p).unwrap();
                eprintln!(
                    "100 ms later: {} bytes; by path: inode {} size {}",
                    again.len(),
                    m2.ino(),
                    m2.len()
                );
            }
            assert_eq!(
                String::from_utf8_lossy(&cur),
                String::from_utf8_lossy(&expected),
                "cycle {cycle}: the writer's read (open O_RDWR, read) returned something else"
            );
            expected.extend_from_slice(line.as_bytes());
            f.write_all_at(&expected, 0).unwrap();
            f.sync_all().unwrap();
            if cycle % 7 == 3 {
                // Memory pressure: the clean (just written back) pages go.
                fadvise_dontneed(&f);
            }
            drop(f);
            // RecheckDataDirLockFile: open, one read, atol.
            let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
            let mut buf = vec![0u8; 8192];
            let n = f.read(&mut buf).unwrap();
            drop(f);
            assert_eq!(
                String::from_utf8_lossy(&buf[..n]),
                String::from_utf8_lossy(&expected),
                "cycle {cycle}: the recheck read something else"
            );
            let problems = problems.lock().unwrap();
            assert!(
                problems.is_empty(),
                "cycle {cycle}: readers saw: {:#?}",
                &problems[..problems.len().min(10)]
            );
        }
        expected
    });

    let problems = problems.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "readers saw: {:#?}",
        &problems[..problems.len().min(10)]
    );
    assert!(
        nonempty_polls.load(Ordering::Relaxed) > 0,
        "the readers never saw the file ({} polls)",
        polls.load(Ordering::Relaxed)
    );
    // The store has what the writer last wrote.
    let stats = v.mount.as_ref().unwrap().stats.clone();
    assert_eq!(
        stats.errors.load(Ordering::Relaxed),
        0,
        "the view logged errors"
    );
    let (size, head) = v.stored("postmaster.pid").unwrap();
    assert_eq!(size, expected.len() as u64);
    assert_eq!(&head[..], &expected[..16]);
    eprintln!(
        "{cycles} cycles, {} polls ({} saw content), {} orphans freed",
        polls.load(Ordering::Relaxed),
        nonempty_polls.load(Ordering::Relaxed),
        stats.orphans_freed.load(Ordering::Relaxed)
    );
}
