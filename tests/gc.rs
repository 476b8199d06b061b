//! GC frees what nothing can read (the model test proves it never frees too much): rewritten
//! pages outside every retained point, deleted branches, unlinked files, restore points past the
//! retention window; and the background thread does it on its own.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::noise;
use lakelet::storage::{
    At, Durability, ManualClock, NewNode, Options, Store, TimelineId, PAGE_SIZE, ROOT_INO,
};

fn store(dir: &std::path::Path, clock: Arc<ManualClock>) -> Store {
    let opts = Options {
        durability: Durability::ProcessCrash,
        fine_window: Duration::from_secs(10),
        restore_point_interval: Duration::from_secs(3600),
        ..Options::default()
    };
    Store::open_with_clock(dir, opts, clock).unwrap()
}

fn tl(s: &Store, b: &str) -> TimelineId {
    s.branch_timeline(b).unwrap()
}

fn page(v: u8) -> Vec<u8> {
    noise(v, PAGE_SIZE)
}

#[test]
fn history_stays_bounded_and_branch_points_keep_their_versions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_790_000_000_000_000_000);
    let s = store(dir.path(), clock.clone());
    s.create_root_branch("main", 0, 0).unwrap();
    let m = tl(&s, "main");
    let (ino, _) = s
        .create(m, ROOT_INO, b"rel", NewNode::File, 0o600, 0, 0)
        .unwrap();
    for i in 0..200u32 {
        s.write(m, ino, 0, &page(i as u8)).unwrap();
        if i == 100 {
            s.create_branch("mid", "main", At::Head).unwrap();
        }
    }
    // One version per write: the page. A write that does not extend the file writes no attrs
    // (the kernel owns times), so only the first write versions the file's attrs.
    let before = s.usage("main").unwrap();
    assert!(
        before.own_versions > 200 && before.own_versions < 210,
        "{before:?}"
    );
    // Leave the fine window, then collect.
    clock.advance(Duration::from_secs(60));
    let report = s.gc().unwrap();
    let after = s.usage("main").unwrap();
    assert!(report.deleted_versions >= 195, "{report:?}");
    // Left: the head and mid's branch point versions of the page and the file's attrs, the
    // root directory's entry and attrs, the start state.
    assert!(after.own_versions <= 8, "history not bounded: {after:?}");
    assert!(
        after.own_bytes < before.own_bytes / 20,
        "{before:?} -> {after:?}"
    );
    let read = |b: &str| {
        s.reader(tl(&s, b), None)
            .unwrap()
            .read(ino, 0, PAGE_SIZE)
            .unwrap()
    };
    assert_eq!(read("main"), page(199));
    assert_eq!(read("mid"), page(100));
    // The lsns GC dropped are no longer offered.
    let r = s.retained("main").unwrap();
    assert!(
        r.fine_from.unwrap() > 150 && r.points.iter().all(|p| p.kind != "restore_point"),
        "{r:?}"
    );
}

#[test]
fn deleted_branches_unlinked_files_and_expired_restore_points_are_freed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_790_000_000_000_000_000);
    let s = store(dir.path(), clock.clone());
    s.create_root_branch("main", 0, 0).unwrap();
    s.create_branch("scratch", "main", At::Head).unwrap();
    let t = tl(&s, "scratch");
    let (ino, _) = s
        .create(t, ROOT_INO, b"big", NewNode::File, 0o600, 0, 0)
        .unwrap();
    s.write(t, ino, 0, &noise(3, 100 * PAGE_SIZE)).unwrap();
    let m = tl(&s, "main");
    let (tmp, _) = s
        .create(m, ROOT_INO, b"tmp", NewNode::File, 0o600, 0, 0)
        .unwrap();
    s.write(m, tmp, 0, &noise(4, 50 * PAGE_SIZE)).unwrap();
    let rp = s.create_restore_point("main").unwrap();
    s.unlink(m, ROOT_INO, b"tmp").unwrap();
    s.delete_branch("scratch").unwrap();
    clock.advance(Duration::from_secs(60));

    // The restore point still holds the unlinked file's pages.
    let r1 = s.gc().unwrap();
    assert_eq!(r1.removed_timelines, 1, "{r1:?}");
    assert!(r1.deleted_versions >= 100, "{r1:?}");
    s.create_branch("back", "main", At::Lsn(rp)).unwrap();
    let b = tl(&s, "back");
    let rd = s.reader(b, None).unwrap();
    assert_eq!(
        rd.read(rd.lookup(ROOT_INO, b"tmp").unwrap().unwrap(), 0, 8)
            .unwrap(),
        noise(4, 8)
    );
    s.delete_branch("back").unwrap();

    // Past the retention window the restore point goes, and with it the file's pages.
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    let before = s.usage("main").unwrap();
    let r2 = s.gc().unwrap();
    let after = s.usage("main").unwrap();
    assert!(r2.deleted_versions >= 50, "{r2:?}");
    assert!(
        after.own_bytes + 50 * PAGE_SIZE as u64 / 2 < before.own_bytes,
        "{before:?} -> {after:?}"
    );
    assert!(!s.retained("main").unwrap().contains(rp));
    assert!(s.create_branch("too-late", "main", At::Lsn(rp)).is_err());
}

#[test]
fn background_gc_reclaims_a_deleted_branch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_790_000_000_000_000_000);
    let s = Arc::new(store(dir.path(), clock.clone()));
    s.create_root_branch("main", 0, 0).unwrap();
    s.create_branch("tmp", "main", At::Head).unwrap();
    let t = tl(&s, "tmp");
    let (ino, _) = s
        .create(t, ROOT_INO, b"f", NewNode::File, 0o600, 0, 0)
        .unwrap();
    for i in 0..20u64 {
        s.write(t, ino, i * PAGE_SIZE as u64, &page(9)).unwrap();
    }
    let tl_id = t;
    s.delete_branch("tmp").unwrap();
    let gc = s.spawn_gc(Duration::from_millis(10));
    // Wait (bounded) for the background pass; this is not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.reader(tl_id, None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "background GC never removed the deleted branch's timeline"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(gc);
    // main is intact and the store reopens cleanly.
    let Ok(s) = Arc::try_unwrap(s) else {
        panic!("gc thread still holds the store")
    };
    drop(s);
    let s = store(dir.path(), clock);
    assert_eq!(s.branches().len(), 1);
    s.reader(tl(&s, "main"), None)
        .unwrap()
        .getattr(ROOT_INO)
        .unwrap();
}
