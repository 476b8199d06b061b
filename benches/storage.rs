//! Page store benchmarks, each a pair whose *ratio* is the figure that matters:
//!
//! - branch creation from a 10 MiB parent vs a 1 GiB parent (should be ~1: O(1) in size);
//! - a page read at ancestor depth 1 vs depth 64 (target: at most 1.5);
//! - sequential write throughput into the store vs a plain file on the same disk.
//!
//! `cargo bench --bench storage` runs them and prints the ratios at the end; the figures are
//! recorded in docs/BENCHMARKS.md. `LAKELET_BENCH_BIG_MIB` shrinks the "1 GiB" parent for a
//! quick run.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lakelet::storage::{At, Durability, NewNode, Options, Store, TimelineId, PAGE_SIZE, ROOT_INO};

fn opts() -> Options {
    Options {
        durability: Durability::Fsync,
        ..Options::default()
    }
}

fn tl(s: &Store, b: &str) -> TimelineId {
    s.branch_timeline(b).unwrap()
}

/// Fills a new file `name` on `branch` with `mib` MiB of non-zero pages, 256 KiB per write.
fn fill(s: &Store, branch: &str, name: &str, mib: usize) -> u64 {
    let t = tl(s, branch);
    let (ino, _) = s
        .create(t, ROOT_INO, name.as_bytes(), NewNode::File, 0o600, 0, 0)
        .unwrap();
    let mut chunk = vec![0u8; 256 * 1024];
    for i in 0..mib * 4 {
        for (j, p) in chunk.chunks_mut(PAGE_SIZE).enumerate() {
            p.fill((i * 32 + j) as u8 | 1);
        }
        s.write(t, ino, (i * chunk.len()) as u64, &chunk).unwrap();
    }
    ino
}

fn big_mib() -> usize {
    std::env::var("LAKELET_BENCH_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn branch_creation(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts()).unwrap();
    s.create_root_branch("main", 0, 0).unwrap();
    let big = big_mib();
    for (name, mib) in [("small", 10), ("big", big)] {
        s.create_branch(name, "main", At::Head).unwrap();
        eprintln!("filling '{name}' with {mib} MiB…");
        fill(&s, name, "data", mib);
    }
    s.flush().unwrap();
    let n = AtomicUsize::new(0);
    let mut g = c.benchmark_group("branch_create");
    for (parent, label) in [("small", "10MiB".to_string()), ("big", format!("{big}MiB"))] {
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                s.create_branch(&format!("c{i}"), parent, At::Head).unwrap()
            })
        });
    }
    g.finish();
}

/// A chain of `depth` timelines below `main`. Every level writes pages of the same file that
/// its descendants do not see (written after their branch point) and pages they do see.
fn chain(s: &Store, depth: usize, ino: u64) -> String {
    let mut parent = "main".to_string();
    for d in 1..=depth {
        let name = format!("d{depth}-{d}");
        s.create_branch(&name, &parent, At::Head).unwrap();
        // After the child's branch point: the parent rewrites the hot blocks 0..8.
        let pt = tl(s, &parent);
        for b in 0..8u64 {
            s.write(pt, ino, b * PAGE_SIZE as u64, &[d as u8; PAGE_SIZE])
                .unwrap();
        }
        // The child writes a block of its own beyond the read range.
        let ct = tl(s, &name);
        s.write(
            ct,
            ino,
            (4096 + d as u64) * PAGE_SIZE as u64,
            &[d as u8; PAGE_SIZE],
        )
        .unwrap();
        parent = name;
    }
    parent
}

fn read_depth(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts()).unwrap();
    s.create_root_branch("main", 0, 0).unwrap();
    let ino = fill(&s, "main", "rel", 32); // 4096 pages
    let leaf1 = chain(&s, 1, ino);
    let leaf64 = chain(&s, 64, ino);
    s.flush().unwrap();
    let mut g = c.benchmark_group("page_read");
    for (label, leaf) in [("depth1", &leaf1), ("depth64", &leaf64)] {
        let r = s.reader(tl(&s, leaf), None).unwrap();
        // Cold blocks: written by main only. Hot blocks: rewritten by every ancestor after
        // the branch point below it, so the reader must skip 64 invisible writers.
        let mut x = 12345u64;
        g.bench_function(BenchmarkId::new("cold", label), |b| {
            b.iter(|| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let block = 8 + (x >> 33) % 4088;
                r.read(ino, block * PAGE_SIZE as u64, PAGE_SIZE).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("hot", label), |b| {
            b.iter(|| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let block = (x >> 33) % 8;
                r.read(ino, block * PAGE_SIZE as u64, PAGE_SIZE).unwrap()
            })
        });
    }
    g.finish();
}

const SEQ_MIB: usize = 64;

fn seq_write_file(dir: &Path, chunk: &[u8]) {
    let p = dir.join("plain");
    let mut f = std::fs::File::create(&p).unwrap();
    for _ in 0..SEQ_MIB * 1024 * 1024 / chunk.len() {
        f.write_all(chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn seq_write(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("store"), opts()).unwrap();
    s.create_root_branch("main", 0, 0).unwrap();
    let t = tl(&s, "main");
    let chunk: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8 + 1).collect();
    let n = AtomicUsize::new(0);
    let mut g = c.benchmark_group("seq_write");
    g.throughput(Throughput::Bytes((SEQ_MIB << 20) as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    g.bench_function("store", |b| {
        b.iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let (ino, _) = s
                .create(
                    t,
                    ROOT_INO,
                    format!("f{i}").as_bytes(),
                    NewNode::File,
                    0o600,
                    0,
                    0,
                )
                .unwrap();
            for k in 0..SEQ_MIB * 4 {
                s.write(t, ino, (k * chunk.len()) as u64, &chunk).unwrap();
            }
            s.sync().unwrap();
            // Keep the store's size steady across iterations.
            s.unlink(t, ROOT_INO, format!("f{i}").as_bytes()).unwrap();
        })
    });
    g.bench_function("plain_file", |b| {
        b.iter(|| seq_write_file(dir.path(), &chunk))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = branch_creation, read_depth, seq_write
}

/// Mean time (ns) criterion recorded for one benchmark.
fn mean(path: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let p = Path::new(&target)
        .join("criterion")
        .join(path)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn report() {
    let big = format!("{}MiB", big_mib());
    let pairs = [
        (
            "branch creation, big / small parent",
            format!("branch_create/{big}"),
            "branch_create/10MiB".to_string(),
        ),
        (
            "page read cold, depth 64 / depth 1",
            "page_read/cold/depth64".into(),
            "page_read/cold/depth1".into(),
        ),
        (
            "page read hot, depth 64 / depth 1",
            "page_read/hot/depth64".into(),
            "page_read/hot/depth1".into(),
        ),
        (
            "seq write time, store / plain file",
            "seq_write/store".into(),
            "seq_write/plain_file".into(),
        ),
    ];
    println!("\nratios:");
    for (label, a, b) in pairs {
        if let (Some(x), Some(y)) = (mean(&a), mean(&b)) {
            println!("  {label}: {:.0} ns / {:.0} ns = {:.2}", x, y, x / y);
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
}
