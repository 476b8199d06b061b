//! The page store against a naive model: every branch a full copy of its tree at every lsn.
//!
//! Random sequences of namespace and page operations, branching (at the head, at past lsns, at
//! past times), deleting, resetting, restore points, GC, clock ticks and close-and-reopen are run
//! against both. After every step every branch's whole tree (kinds, sizes, bytes, modes, mtimes,
//! symlink targets) must be identical, and every lsn the store agrees to branch from must hold
//! exactly the model's state at that lsn.
//!
//! `LAKELET_MODEL_CASES=N` runs N cases (default 3000); `LAKELET_MODEL_STEPS` sets the maximum
//! sequence length (default 60).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lakelet::storage::{
    At, Clock, Durability, Errno, Error, FileKind, Ino, Lsn, ManualClock, Nanos, NewNode, Options,
    SetAttr, Store, ROOT_INO,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const FILES: &[&str] = &["f1", "f2", "d/f3", "d/f4", "d/e/f5"];
const DIRS: &[&str] = &["d", "d/e"];
const T0: Nanos = 1_790_000_000_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File {
        data: Vec<u8>,
        mode: u32,
        mtime: Nanos,
    },
    Dir {
        mode: u32,
        mtime: Nanos,
    },
    Symlink {
        target: Vec<u8>,
        mtime: Nanos,
    },
}

/// A whole tree: path ("" is the root) → node.
type Tree = BTreeMap<String, Node>;

#[derive(Clone, Debug)]
struct MTimeline {
    /// (lsn, tree as of that lsn), ascending.
    history: Vec<(Lsn, Tree)>,
    /// Restore points the test created and expects retained.
    restore_points: Vec<Lsn>,
}

impl MTimeline {
    fn at(&self, lsn: Lsn) -> &Tree {
        &self
            .history
            .iter()
            .rev()
            .find(|(l, _)| *l <= lsn)
            .expect("lsn within the timeline")
            .1
    }
    fn head(&self) -> &Tree {
        &self.history.last().unwrap().1
    }
}

struct MBranch {
    tl: MTimeline,
    parent: Option<String>,
}

#[derive(Clone, Debug)]
enum Op {
    Write {
        b: usize,
        f: usize,
        off: u64,
        len: usize,
        byte: u8,
    },
    Truncate {
        b: usize,
        f: usize,
        size: u64,
    },
    Create {
        b: usize,
        f: usize,
    },
    Mkdir {
        b: usize,
        d: usize,
    },
    Unlink {
        b: usize,
        f: usize,
    },
    Rmdir {
        b: usize,
        d: usize,
    },
    Rename {
        b: usize,
        from: usize,
        to: usize,
    },
    Symlink {
        b: usize,
        f: usize,
        target: u8,
    },
    Chmod {
        b: usize,
        f: usize,
        mode: u32,
    },
    Branch {
        b: usize,
    },
    BranchPast {
        b: usize,
        pick: usize,
        exact: bool,
    },
    BranchAtTime {
        b: usize,
        back_ms: u64,
    },
    Delete {
        b: usize,
    },
    Reset {
        b: usize,
    },
    RestorePoint {
        b: usize,
    },
    Gc,
    Reopen,
    Tick {
        secs: u64,
    },
}

/// A path from the pools, by index: files first, then directories.
fn path_of(i: usize) -> &'static str {
    let all = FILES.len() + DIRS.len();
    let i = i % all;
    if i < FILES.len() {
        FILES[i]
    } else {
        DIRS[i - FILES.len()]
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let b = 0usize..8;
    prop_oneof![
        8 => (b.clone(), 0usize..7, 0u64..40_000, 0usize..20_000, any::<u8>())
            .prop_map(|(b, f, off, len, byte)| Op::Write { b, f, off, len, byte }),
        3 => (b.clone(), 0usize..7, 0u64..40_000).prop_map(|(b, f, size)| Op::Truncate { b, f, size }),
        5 => (b.clone(), 0usize..7).prop_map(|(b, f)| Op::Create { b, f }),
        2 => (b.clone(), 0usize..2).prop_map(|(b, d)| Op::Mkdir { b, d }),
        2 => (b.clone(), 0usize..7).prop_map(|(b, f)| Op::Unlink { b, f }),
        1 => (b.clone(), 0usize..2).prop_map(|(b, d)| Op::Rmdir { b, d }),
        2 => (b.clone(), 0usize..7, 0usize..7).prop_map(|(b, from, to)| Op::Rename { b, from, to }),
        1 => (b.clone(), 0usize..7, any::<u8>()).prop_map(|(b, f, target)| Op::Symlink { b, f, target }),
        1 => (b.clone(), 0usize..7, 0u32..0o1000).prop_map(|(b, f, mode)| Op::Chmod { b, f, mode }),
        3 => b.clone().prop_map(|b| Op::Branch { b }),
        2 => (b.clone(), any::<usize>(), any::<bool>()).prop_map(|(b, pick, exact)| Op::BranchPast { b, pick, exact }),
        1 => (b.clone(), 0u64..200_000).prop_map(|(b, back_ms)| Op::BranchAtTime { b, back_ms }),
        1 => b.clone().prop_map(|b| Op::Delete { b }),
        1 => b.clone().prop_map(|b| Op::Reset { b }),
        1 => b.clone().prop_map(|b| Op::RestorePoint { b }),
        1 => Just(Op::Gc),
        1 => Just(Op::Reopen),
        1 => (1u64..90).prop_map(|secs| Op::Tick { secs }),
    ]
}

fn parent_path(p: &str) -> &str {
    p.rfind('/').map_or("", |i| &p[..i])
}

fn base_name(p: &str) -> &str {
    p.rfind('/').map_or(p, |i| &p[i + 1..])
}

/// The model's answer to a namespace operation: the new tree, or the errno the store must give.
type Outcome = Result<Option<Tree>, Errno>;

fn is_dir(t: &Tree, p: &str) -> bool {
    matches!(t.get(p), Some(Node::Dir { .. }))
}

/// Walks `p` component by component as the kernel does: through a non-directory is NotDir,
/// a missing component NotFound.
fn walk(t: &Tree, p: &str) -> Result<(), Errno> {
    let mut cur = String::new();
    for part in p.split('/').filter(|s| !s.is_empty()) {
        if !is_dir(t, &cur) {
            return Err(Errno::NotDir);
        }
        cur = if cur.is_empty() {
            part.to_string()
        } else {
            format!("{cur}/{part}")
        };
        if !t.contains_key(&cur) {
            return Err(Errno::NotFound);
        }
    }
    Ok(())
}

fn parent_ok(t: &Tree, p: &str) -> Result<(), Errno> {
    walk(t, parent_path(p))?;
    if is_dir(t, parent_path(p)) {
        Ok(())
    } else {
        Err(Errno::NotDir)
    }
}

fn touch(t: &mut Tree, dir: &str, now: Nanos) {
    if let Some(Node::Dir { mtime, .. }) = t.get_mut(dir) {
        *mtime = now;
    }
}

fn has_children(t: &Tree, p: &str) -> bool {
    t.keys()
        .any(|k| parent_path(k) == p && !k.is_empty() && k != p)
}

fn model_apply(t: &Tree, op: &Op, now: Nanos) -> Outcome {
    let mut t = t.clone();
    match *op {
        Op::Write {
            f, off, len, byte, ..
        } => {
            let p = path_of(f);
            walk(&t, p)?;
            match t.get_mut(p) {
                None => return Err(Errno::NotFound),
                // A write leaves times alone: the fs layer's kernel owns them.
                Some(Node::File { data, .. }) => {
                    let end = off as usize + len;
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[off as usize..end].fill(byte);
                }
                Some(_) => return Err(Errno::IsDir),
            }
        }
        Op::Truncate { f, size, .. } => {
            let p = path_of(f);
            walk(&t, p)?;
            match t.get_mut(p) {
                None => return Err(Errno::NotFound),
                Some(Node::File { data, mtime, .. }) => {
                    if data.len() as u64 != size {
                        data.resize(size as usize, 0);
                        *mtime = now;
                    }
                }
                Some(_) => return Err(Errno::IsDir),
            }
        }
        Op::Create { f, .. } | Op::Mkdir { d: f, .. } | Op::Symlink { f, .. } => {
            let p = match op {
                Op::Mkdir { d, .. } => DIRS[*d],
                _ => path_of(f),
            };
            parent_ok(&t, p)?;
            if t.contains_key(p) {
                return Err(Errno::Exists);
            }
            let node = match op {
                Op::Create { .. } => Node::File {
                    data: vec![],
                    mode: 0o644,
                    mtime: now,
                },
                Op::Mkdir { .. } => Node::Dir {
                    mode: 0o755,
                    mtime: now,
                },
                Op::Symlink { target, .. } => Node::Symlink {
                    target: vec![b'x'; *target as usize % 5 + 1],
                    mtime: now,
                },
                _ => unreachable!(),
            };
            t.insert(p.to_string(), node);
            touch(&mut t, parent_path(p), now);
        }
        Op::Unlink { f, .. } => {
            let p = path_of(f);
            parent_ok(&t, p)?;
            match t.get(p) {
                None => return Err(Errno::NotFound),
                Some(Node::Dir { .. }) => return Err(Errno::IsDir),
                Some(_) => {}
            }
            t.remove(p);
            touch(&mut t, parent_path(p), now);
        }
        Op::Rmdir { d, .. } => {
            let p = DIRS[d];
            parent_ok(&t, p)?;
            match t.get(p) {
                None => return Err(Errno::NotFound),
                Some(Node::Dir { .. }) => {}
                Some(_) => return Err(Errno::NotDir),
            }
            if has_children(&t, p) {
                return Err(Errno::NotEmpty);
            }
            t.remove(p);
            touch(&mut t, parent_path(p), now);
        }
        Op::Rename { from, to, .. } => {
            let (a, b) = (path_of(from), path_of(to));
            parent_ok(&t, a)?;
            parent_ok(&t, b)?;
            let src = t.get(a).cloned().ok_or(Errno::NotFound)?;
            if a == b {
                return Ok(None);
            }
            let src_dir = matches!(src, Node::Dir { .. });
            if src_dir && (parent_path(b) == a || parent_path(b).starts_with(&format!("{a}/"))) {
                return Err(Errno::Invalid);
            }
            if let Some(dst) = t.get(b) {
                match (src_dir, matches!(dst, Node::Dir { .. })) {
                    (true, false) => return Err(Errno::NotDir),
                    (false, true) => return Err(Errno::IsDir),
                    (true, true) if has_children(&t, b) => return Err(Errno::NotEmpty),
                    _ => {}
                }
                t.remove(b);
            }
            // Move the node and, for a directory, everything below it.
            let moved: Vec<(String, Node)> = t
                .iter()
                .filter(|(k, _)| *k == a || k.starts_with(&format!("{a}/")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in moved {
                t.remove(&k);
                t.insert(format!("{b}{}", &k[a.len()..]), v);
            }
            touch(&mut t, parent_path(a), now);
            touch(&mut t, parent_path(b), now);
        }
        Op::Chmod { f, mode, .. } => {
            let p = path_of(f);
            walk(&t, p)?;
            match t.get_mut(p) {
                None => return Err(Errno::NotFound),
                Some(Node::File { mode: m, .. }) | Some(Node::Dir { mode: m, .. }) => *m = mode,
                Some(Node::Symlink { .. }) => {}
            }
        }
        _ => unreachable!("not a namespace op"),
    }
    Ok(Some(t))
}

/// Resolves a path in the store the way the kernel walks it.
fn resolve(store: &Store, tl: lakelet::storage::TimelineId, p: &str) -> Result<Ino, Errno> {
    let r = store.reader(tl, None).unwrap();
    let mut ino = ROOT_INO;
    for part in p.split('/').filter(|s| !s.is_empty()) {
        if r.getattr(ino).unwrap().kind != FileKind::Dir {
            return Err(Errno::NotDir);
        }
        ino = r
            .lookup(ino, part.as_bytes())
            .unwrap()
            .ok_or(Errno::NotFound)?;
    }
    Ok(ino)
}

fn store_apply(store: &Store, branch: &str, op: &Op) -> Result<Option<Lsn>, Errno> {
    let tl = store.branch_timeline(branch).unwrap();
    let errno = |e: Error| {
        e.errno()
            .unwrap_or_else(|| panic!("unexpected store error: {e}"))
    };
    let in_parent = |p: &str| resolve(store, tl, parent_path(p));
    let target = |p: &str| resolve(store, tl, p);
    let lsn = match *op {
        Op::Write {
            f, off, len, byte, ..
        } => {
            let ino = target(path_of(f))?;
            store.write(tl, ino, off, &vec![byte; len]).map_err(errno)?
        }
        Op::Truncate { f, size, .. } => {
            let ino = target(path_of(f))?;
            store
                .setattr(
                    tl,
                    ino,
                    &SetAttr {
                        size: Some(size),
                        ..Default::default()
                    },
                )
                .map_err(errno)?;
            store.last_lsn()
        }
        Op::Chmod { f, mode, .. } => {
            let ino = target(path_of(f))?;
            let a = store.reader(tl, None).unwrap().getattr(ino).unwrap();
            if a.kind == FileKind::Symlink {
                return Ok(None);
            }
            store
                .setattr(
                    tl,
                    ino,
                    &SetAttr {
                        mode: Some(mode),
                        ..Default::default()
                    },
                )
                .map_err(errno)?;
            store.last_lsn()
        }
        Op::Create { f, .. } | Op::Mkdir { d: f, .. } | Op::Symlink { f, .. } => {
            let (p, node, mode) = match op {
                Op::Mkdir { d, .. } => (DIRS[*d], NewNode::Dir, 0o755),
                Op::Create { .. } => (path_of(f), NewNode::File, 0o644),
                _ => (path_of(f), NewNode::File, 0o777),
            };
            let target_bytes;
            let node = match op {
                Op::Symlink { target, .. } => {
                    target_bytes = vec![b'x'; *target as usize % 5 + 1];
                    NewNode::Symlink(&target_bytes)
                }
                _ => node,
            };
            let dir = in_parent(p)?;
            store
                .create(tl, dir, base_name(p).as_bytes(), node, mode, 0, 0)
                .map_err(errno)?;
            store.last_lsn()
        }
        Op::Unlink { f, .. } => {
            let p = path_of(f);
            store
                .unlink(tl, in_parent(p)?, base_name(p).as_bytes())
                .map_err(errno)?
        }
        Op::Rmdir { d, .. } => {
            let p = DIRS[d];
            store
                .rmdir(tl, in_parent(p)?, base_name(p).as_bytes())
                .map_err(errno)?
        }
        Op::Rename { from, to, .. } => {
            let (a, b) = (path_of(from), path_of(to));
            let (da, db) = (in_parent(a)?, in_parent(b)?);
            let before = store.last_lsn();
            let l = store
                .rename(tl, da, base_name(a).as_bytes(), db, base_name(b).as_bytes())
                .map_err(errno)?;
            if l == before {
                return Ok(None);
            }
            l
        }
        _ => unreachable!(),
    };
    Ok(Some(lsn))
}

/// Reads a whole tree out of the store.
fn store_tree(store: &Store, tl: lakelet::storage::TimelineId, lsn: Option<Lsn>) -> Tree {
    let r = store.reader(tl, lsn).unwrap();
    let mut out = Tree::new();
    let mut stack = vec![(String::new(), ROOT_INO)];
    while let Some((path, ino)) = stack.pop() {
        let a = r.getattr(ino).unwrap();
        let node = match a.kind {
            FileKind::Dir => {
                for (name, child) in r.readdir(ino).unwrap() {
                    let name = String::from_utf8(name).unwrap();
                    let p = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push((p, child));
                }
                Node::Dir {
                    mode: a.mode,
                    mtime: a.mtime,
                }
            }
            FileKind::File => {
                let data = r.read(ino, 0, a.size as usize + 10).unwrap();
                assert_eq!(data.len() as u64, a.size, "{path}: read length vs size");
                Node::File {
                    data,
                    mode: a.mode,
                    mtime: a.mtime,
                }
            }
            FileKind::Symlink => Node::Symlink {
                target: r.readlink(ino).unwrap(),
                mtime: a.mtime,
            },
        };
        out.insert(path, node);
    }
    out
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    opts: Options,
    store: Option<Store>,
    branches: BTreeMap<String, MBranch>,
    /// (lsn, time) of every commit, for checking time resolution.
    times: Vec<(Lsn, Nanos)>,
    next_name: usize,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let opts = Options {
            durability: Durability::ProcessCrash,
            restore_point_interval: Duration::from_secs(60),
            fine_window: Duration::from_secs(30),
            cache_bytes: 8 << 20,
            ..Options::default()
        };
        let store = Store::open_with_clock(dir.path(), opts.clone(), clock.clone()).unwrap();
        let info = store.create_root_branch("main", 0, 0).unwrap();
        let mut root = Tree::new();
        root.insert(
            String::new(),
            Node::Dir {
                mode: 0o700,
                mtime: T0,
            },
        );
        let mut branches = BTreeMap::new();
        branches.insert(
            "main".to_string(),
            MBranch {
                tl: MTimeline {
                    history: vec![(info.start_lsn, root)],
                    restore_points: vec![],
                },
                parent: None,
            },
        );
        Harness {
            dir,
            clock,
            opts,
            store: Some(store),
            branches,
            times: vec![(info.start_lsn, T0)],
            next_name: 0,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn pick(&self, b: usize) -> String {
        let names: Vec<&String> = self.branches.keys().collect();
        names[b % names.len()].clone()
    }

    fn fresh_name(&mut self) -> String {
        self.next_name += 1;
        format!("b{}", self.next_name)
    }

    fn fork_model(&mut self, name: String, from: &str, lsn: Lsn, parent: Option<String>) {
        let tree = self.branches[from].tl.at(lsn).clone();
        self.branches.insert(
            name,
            MBranch {
                tl: MTimeline {
                    history: vec![(lsn, tree)],
                    restore_points: vec![],
                },
                parent,
            },
        );
    }

    fn step(&mut self, op: &Op) {
        self.clock.advance(Duration::from_millis(1));
        let now = self.clock.now();
        match op {
            Op::Branch { b } => {
                let from = self.pick(*b);
                let name = self.fresh_name();
                let info = self.store().create_branch(&name, &from, At::Head).unwrap();
                assert_eq!(info.start_lsn, self.store().last_lsn());
                self.fork_model(name, &from, info.start_lsn, Some(from.clone()));
            }
            Op::BranchPast { b, pick, exact } => {
                let from = self.pick(*b);
                let retained = self.store().retained(&from).unwrap();
                let m = &self.branches[&from].tl;
                let start = m.history[0].0;
                let last = self.store().last_lsn();
                for rp in &m.restore_points {
                    assert!(
                        retained.contains(*rp),
                        "restore point {rp} of {from} not retained: {retained:?}"
                    );
                }
                let lsn = if *exact && !retained.points.is_empty() {
                    retained.points[pick % retained.points.len()].lsn
                } else {
                    start + (*pick as u64) % (last - start + 1)
                };
                let name = self.fresh_name();
                if std::env::var("MODEL_DEBUG").is_ok() {
                    eprintln!("branch {name} from {from} at {lsn}; retained {retained:?}");
                }
                match self.store().create_branch(&name, &from, At::Lsn(lsn)) {
                    Ok(info) => {
                        assert!(
                            retained.contains(lsn),
                            "store branched from unretained lsn {lsn}"
                        );
                        assert_eq!(info.start_lsn, lsn);
                        self.fork_model(name, &from, lsn, Some(from.clone()));
                    }
                    Err(Error::LsnNotRetained { nearest, .. }) => {
                        assert!(!retained.contains(lsn), "refused retained lsn {lsn}");
                        assert!(nearest.is_some_and(|n| retained.contains(n)));
                    }
                    Err(e) => panic!("branch at lsn {lsn}: {e}"),
                }
            }
            Op::BranchAtTime { b, back_ms } => {
                let from = self.pick(*b);
                let t = now - (*back_ms as i64) * 1_000_000;
                let name = self.fresh_name();
                match self.store().create_branch(&name, &from, At::Time(t)) {
                    Ok(info) => {
                        let lsn = info.start_lsn;
                        let at_t = self
                            .times
                            .iter()
                            .rev()
                            .find(|(_, tt)| *tt <= t)
                            .map(|(l, _)| *l)
                            .unwrap();
                        assert!(lsn <= at_t, "time {t} resolved to lsn {lsn}, after the last commit {at_t} before it");
                        self.fork_model(name, &from, lsn, Some(from.clone()));
                    }
                    Err(Error::TimeNotRetained { .. }) => {}
                    Err(e) => panic!("branch at time: {e}"),
                }
            }
            Op::Delete { b } => {
                if self.branches.len() > 1 {
                    let name = self.pick(*b);
                    self.store().delete_branch(&name).unwrap();
                    self.branches.remove(&name);
                }
            }
            Op::Reset { b } => {
                let name = self.pick(*b);
                let parent = self.branches[&name].parent.clone();
                match (self.store().reset_branch(&name), parent) {
                    (Ok(info), Some(p)) => {
                        assert!(self.branches.contains_key(&p));
                        self.fork_model(name, &p, info.start_lsn, Some(p.clone()));
                    }
                    (Err(Error::NoParent(_)), None) => {}
                    (Err(Error::BranchNotFound(missing)), Some(p)) => {
                        assert_eq!(missing, p);
                        assert!(!self.branches.contains_key(&p));
                    }
                    (r, p) => panic!("reset {name} (parent {p:?}): {r:?}"),
                }
            }
            Op::RestorePoint { b } => {
                let name = self.pick(*b);
                let lsn = self.store().create_restore_point(&name).unwrap();
                let m = self.branches.get_mut(&name).unwrap();
                if lsn >= m.tl.history[0].0 {
                    m.tl.restore_points.push(lsn);
                }
            }
            Op::Gc => {
                self.store().gc().unwrap();
            }
            Op::Reopen => {
                self.store = None;
                self.store = Some(
                    Store::open_with_clock(self.dir.path(), self.opts.clone(), self.clock.clone())
                        .unwrap(),
                );
            }
            Op::Tick { secs } => {
                self.clock.advance(Duration::from_secs(*secs));
                // Restore points older than the retention window are no longer promised.
                let _ = now;
            }
            op => {
                let name = self.pick(match op {
                    Op::Write { b, .. }
                    | Op::Truncate { b, .. }
                    | Op::Create { b, .. }
                    | Op::Mkdir { b, .. }
                    | Op::Unlink { b, .. }
                    | Op::Rmdir { b, .. }
                    | Op::Rename { b, .. }
                    | Op::Symlink { b, .. }
                    | Op::Chmod { b, .. } => *b,
                    _ => unreachable!(),
                });
                let expected = model_apply(self.branches[&name].tl.head(), op, now);
                let got = store_apply(self.store(), &name, op);
                match (expected, got) {
                    (Ok(Some(tree)), Ok(Some(lsn))) => {
                        self.branches
                            .get_mut(&name)
                            .unwrap()
                            .tl
                            .history
                            .push((lsn, tree));
                        self.times.push((lsn, now));
                    }
                    (Ok(None), Ok(None)) => {}
                    (Err(e), Err(g)) if e == g => {}
                    // Chmod of a symlink is not modelled as a change.
                    (Ok(Some(t)), Ok(None)) if &t == self.branches[&name].tl.head() => {}
                    (e, g) => panic!(
                        "{op:?} on {name}: model {:?}, store {g:?}",
                        e.map(|t| t.is_some())
                    ),
                }
            }
        }
        self.check();
    }

    /// Every branch's tree equals the model's head; a branch's start state too.
    fn check(&self) {
        let store = self.store();
        let names: Vec<String> = store.branches().into_iter().map(|b| b.name).collect();
        let model_names: Vec<String> = self.branches.keys().cloned().collect();
        assert_eq!(names, model_names);
        for (name, m) in &self.branches {
            let tl = store.branch_timeline(name).unwrap();
            let got = store_tree(store, tl, None);
            assert_eq!(&got, m.tl.head(), "branch {name} at head");
            let start = m.tl.history[0].0;
            assert_eq!(
                &store_tree(store, tl, Some(start)),
                m.tl.at(start),
                "branch {name} at its start lsn {start}"
            );
            // The kept walk (reused until the branch writes, inherited by a fork) is what a
            // fresh walk finds, and its sizes are the model's.
            let u = store.usage(name).unwrap();
            assert_eq!(u, store.usage_uncached(name).unwrap(), "branch {name}'s usage");
            let files: Vec<usize> = m
                .tl
                .head()
                .values()
                .filter_map(|n| match n {
                    Node::File { data, .. } => Some(data.len()),
                    _ => None,
                })
                .collect();
            assert_eq!(u.files, files.len() as u64, "branch {name}'s files");
            let logical: usize = files.iter().sum();
            assert_eq!(u.logical_size, logical as u64, "branch {name}'s logical size");
        }
    }
}

fn cases() -> u32 {
    std::env::var("LAKELET_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn steps() -> usize {
    std::env::var("LAKELET_MODEL_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

#[test]
fn store_matches_model() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &proptest::collection::vec(op_strategy(), 1..steps()),
            |ops| {
                let mut h = Harness::new();
                for op in &ops {
                    h.step(op);
                }
                // Finally: a full GC pass keeps every branch intact, and so does a reopen.
                h.step(&Op::Gc);
                h.step(&Op::Reopen);
                Ok(())
            },
        )
        .unwrap();
}

/// Minimal sequences proptest found; kept so they stay fixed.
#[test]
fn regressions() {
    let cases: Vec<Vec<Op>> = vec![
        // GC pruned the time index; an old time then resolved to a too-late lsn.
        vec![
            Op::Branch { b: 0 },
            Op::Branch { b: 0 },
            Op::Create { b: 4, f: 1 },
            Op::Truncate {
                b: 1,
                f: 1,
                size: 0,
            },
            Op::BranchPast {
                b: 0,
                pick: 804761807502859810,
                exact: false,
            },
            Op::Write {
                b: 0,
                f: 0,
                off: 0,
                len: 0,
                byte: 0,
            },
            Op::Tick { secs: 31 },
            Op::Gc,
            Op::Write {
                b: 0,
                f: 0,
                off: 0,
                len: 0,
                byte: 0,
            },
            Op::BranchAtTime {
                b: 0,
                back_ms: 31007,
            },
        ],
        vec![
            Op::Branch { b: 0 },
            Op::Branch { b: 0 },
            Op::Create { b: 3, f: 0 },
            Op::Mkdir { b: 7, d: 0 },
            Op::Create { b: 7, f: 0 },
            Op::Mkdir { b: 3, d: 0 },
            Op::Tick { secs: 31 },
            Op::Delete { b: 0 },
            Op::Gc,
            Op::Mkdir { b: 2, d: 1 },
            Op::BranchPast {
                b: 0,
                pick: 16314596439234145892,
                exact: false,
            },
        ],
    ];
    for ops in cases {
        let mut h = Harness::new();
        for op in &ops {
            eprintln!("{op:?}");
            h.step(op);
        }
    }
}
