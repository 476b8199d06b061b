//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn lakelet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lakelet"))
}

/// Runs `lakelet ARGS` with `--data-dir DIR`, failing the test with its stderr if it fails.
pub fn run(data_dir: &Path, args: &[&str]) -> String {
    let out = lakelet()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lakelet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The directory holding Postgres' binaries: `pg_config --bindir`, else Debian's layout.
pub fn pg_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.join("initdb").exists() {
                return p;
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("Postgres is not installed: run the README's test command, which installs it")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A fresh Postgres data directory at `dir/pgdata`, made by the real initdb (as the
/// unprivileged `postgres` user when the test runs as root: Postgres refuses root).
pub fn initdb(dir: &Path) -> PathBuf {
    let data = dir.join("pgdata");
    let initdb = pg_bindir().join("initdb");
    let mut cmd = if is_root() {
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir)
            .status()
            .unwrap();
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&initdb);
        c
    } else {
        Command::new(&initdb)
    };
    let out = cmd
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "--no-sync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// One line per entry: path, kind, mode, owner, size, mtime (ns), crc32 of the contents.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let (kind, crc) = if m.file_type().is_symlink() {
            (
                "l",
                crc32fast::hash(
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                ),
            )
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            ("d", 0)
        } else {
            ("f", crc32fast::hash(&std::fs::read(&p).unwrap()))
        };
        let mtime = if kind == "l" {
            0
        } else {
            m.mtime() * 1_000_000_000 + m.mtime_nsec()
        };
        out.push(format!(
            "{rel} {kind} {:o} {}:{} {} {mtime} {crc:08x}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            if kind == "d" { 0 } else { m.size() }
        ));
    }
    out.sort();
    out
}
