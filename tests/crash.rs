//! A child process writes, creates files and branches, runs GC steps and syncs in a loop, and is
//! killed with SIGKILL at random points, many times. After every kill the store must open cleanly
//! and hold every write the child reported as synced.
//!
//! `LAKELET_CRASH_ROUNDS=N` sets the number of kills (default 25).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use lakelet::cli::crash_record;
use lakelet::storage::{Options, Store, ROOT_INO};

fn rounds() -> u32 {
    std::env::var("LAKELET_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

#[test]
fn every_synced_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut acked: Option<u64> = None;
    // Every sequence number any round reported synced. A record written but not acknowledged
    // before a kill may have a half-done side effect (its file created but not yet written);
    // the writer resumes after it, so only acknowledged ones are checked in full.
    let mut synced = std::collections::BTreeSet::new();
    for round in 0..rounds() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(20 + seed % 300);
        let mut child = common::lakelet()
            .arg("--data-dir")
            .arg(data_dir)
            .args(["debug", "crash-writer"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line.parse::<u64>().unwrap()).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let got: Vec<u64> = rx.try_iter().collect();
        if got.is_empty() && status.code().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("round {round}: the writer exited by itself ({status}): {err}");
        }
        synced.extend(got.iter().copied());
        if let Some(&last) = got.last() {
            acked = Some(last);
        }
        let Some(acked) = acked else { continue };

        let s = Store::open(data_dir.join("store"), Options::default())
            .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
        let tl = s.branch_timeline("main").unwrap();
        let r = s.reader(tl, None).unwrap();
        let log = r.lookup(ROOT_INO, b"log").unwrap().expect("log file");
        let size = r.getattr(log).unwrap().size;
        assert!(
            size >= (acked + 1) * 100,
            "round {round}: log has {size} bytes, but seq {acked} was synced"
        );
        assert_eq!(
            size % 100,
            0,
            "round {round}: a torn write: log size {size}"
        );
        let data = r.read(log, 0, size as usize).unwrap();
        for seq in 0..size / 100 {
            assert_eq!(
                &data[(seq * 100) as usize..][..100],
                &crash_record(seq)[..],
                "round {round}: record {seq}"
            );
            if seq % 7 == 0 && synced.contains(&seq) {
                let f = r.lookup(ROOT_INO, format!("f{seq}").as_bytes()).unwrap();
                let f = f.unwrap_or_else(|| panic!("round {round}: file f{seq} lost"));
                assert_eq!(r.read(f, 0, 100).unwrap(), crash_record(seq));
            }
            if seq % 13 == 0 && synced.contains(&seq) {
                let b = s
                    .branch(&format!("b{seq}"))
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                // The branch sees the log as of its branch point: a prefix of records.
                let bt = s.branch_timeline(&b.name).unwrap();
                let br = s.reader(bt, None).unwrap();
                let bl = br.lookup(ROOT_INO, b"log").unwrap().unwrap();
                let bsize = br.getattr(bl).unwrap().size;
                assert!(
                    bsize >= seq * 100 && bsize % 100 == 0,
                    "round {round}: branch b{seq} log size {bsize}"
                );
            }
        }
    }
    assert!(
        acked.is_some_and(|a| a > 0),
        "the writer never synced anything"
    );
}
