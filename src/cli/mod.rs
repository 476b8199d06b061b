//! The `lakelet` command line. For now it opens the page store directly; the daemon (next
//! layer up) will take over `branch` and friends without changing their shape.

mod tree;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::storage::{parse_time, At, Durability, Options, Store};

#[derive(Parser)]
#[command(
    name = "lakelet",
    version,
    about = "Local copy-on-write branching Postgres"
)]
pub struct Cli {
    /// Where lakelet keeps its state (default: $LAKELET_DATA_DIR, else ./.lakelet).
    #[arg(
        long,
        global = true,
        env = "LAKELET_DATA_DIR",
        default_value = ".lakelet"
    )]
    data_dir: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the page store with its root branch.
    Init {
        #[arg(long, default_value = "main")]
        branch: String,
    },
    /// Create, list, delete, reset and inspect branches.
    #[command(subcommand)]
    Branch(BranchCmd),
    /// Copy a directory tree (e.g. a Postgres data directory) into a branch.
    Import {
        dir: PathBuf,
        #[arg(long, default_value = "main")]
        branch: String,
    },
    /// Write a branch (optionally as of a past lsn) out to a new directory.
    Export {
        dest: PathBuf,
        #[arg(long, default_value = "main")]
        branch: String,
        #[arg(long)]
        lsn: Option<u64>,
    },
    /// Run one full garbage-collection pass now.
    Gc,
    #[command(hide = true, subcommand)]
    Debug(DebugCmd),
}

#[derive(Subcommand)]
enum BranchCmd {
    /// Create NAME from PARENT (default main), now or as of --at LSN|RFC3339.
    Create {
        name: String,
        #[arg(long, default_value = "main")]
        from: String,
        /// An lsn (must be retained) or an RFC 3339 time (the newest retained state before it).
        #[arg(long)]
        at: Option<String>,
        /// A snapshot: never written.
        #[arg(long)]
        snapshot: bool,
    },
    List,
    Delete {
        name: String,
    },
    /// Move NAME to the current state of the branch it was forked from.
    Reset {
        name: String,
    },
    /// Move NAME to a new timeline forked from --from as of --at (rollback by repoint).
    Restore {
        name: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        at: Option<String>,
    },
    /// Storage a branch owns and shares.
    Usage {
        name: String,
    },
    /// Which lsns a branch retains (possible --at values).
    Retained {
        name: String,
    },
    /// Record a restore point at the branch's current state.
    RestorePoint {
        name: String,
    },
}

#[derive(Subcommand)]
enum DebugCmd {
    /// Write and sync in a loop, printing each synced sequence number (the crash test's child).
    CrashWriter,
}

fn parse_at(s: Option<&str>) -> Result<At> {
    Ok(match s {
        None => At::Head,
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => At::Lsn(s.parse()?),
        Some(s) => At::Time(parse_time(s).map_err(anyhow::Error::msg)?),
    })
}

fn store_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("store")
}

fn open(data_dir: &std::path::Path) -> Result<Store> {
    let p = store_path(data_dir);
    if !p.exists() {
        bail!(
            "no lakelet store at {}; run `lakelet init --data-dir {}` first",
            p.display(),
            data_dir.display()
        );
    }
    Ok(Store::open(&p, Options::default())?)
}

fn print<T: serde::Serialize>(json: bool, v: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
    } else {
        println!("{}", text(v));
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Init { branch } => {
            let p = store_path(&cli.data_dir);
            if p.exists() {
                bail!("a lakelet store already exists at {}", p.display());
            }
            let s = Store::open(&p, Options::default())?;
            // The root directory belongs to whoever created the store.
            let m = std::fs::metadata(&p)?;
            let info = s.create_root_branch(
                &branch,
                std::os::unix::fs::MetadataExt::uid(&m),
                std::os::unix::fs::MetadataExt::gid(&m),
            )?;
            print(json, &info, |i| {
                format!(
                    "created store at {} with root branch '{}' (timeline {})",
                    p.display(),
                    i.name,
                    i.timeline
                )
            });
        }
        Cmd::Branch(b) => branch(&cli.data_dir, json, b)?,
        Cmd::Import { dir, branch } => {
            let s = open(&cli.data_dir)?;
            let tl = s.branch_timeline(&branch)?;
            let start = Instant::now();
            let mut last = Instant::now();
            let c = tree::import(&s, tl, &dir, &mut |c| {
                if !json && last.elapsed().as_millis() > 500 {
                    eprintln!("  imported {} files, {} MiB", c.files, c.bytes >> 20);
                    last = Instant::now();
                }
            })?;
            s.sync()?;
            print(json, &c, |c| {
                format!(
                    "imported {} into '{branch}': {} files, {} dirs, {} symlinks, {} bytes in {:.2?}",
                    dir.display(), c.files, c.dirs, c.symlinks, c.bytes, start.elapsed()
                )
            });
        }
        Cmd::Export { dest, branch, lsn } => {
            let s = open(&cli.data_dir)?;
            let tl = s.branch_timeline(&branch)?;
            let c = tree::export(&s, tl, lsn, &dest, &mut |_| {})?;
            print(json, &c, |c| {
                format!(
                    "exported '{branch}' to {}: {} files, {} bytes",
                    dest.display(),
                    c.files,
                    c.bytes
                )
            });
        }
        Cmd::Gc => {
            let s = open(&cli.data_dir)?;
            let r = s.gc()?;
            print(json, &r, |r| {
                format!(
                    "gc: scanned {} versions, deleted {} ({} bytes), removed {} timelines",
                    r.scanned, r.deleted_versions, r.deleted_bytes, r.removed_timelines
                )
            });
        }
        Cmd::Debug(DebugCmd::CrashWriter) => crash_writer(&cli.data_dir)?,
    }
    Ok(())
}

fn branch(data_dir: &std::path::Path, json: bool, cmd: BranchCmd) -> Result<()> {
    let s = open(data_dir)?;
    match cmd {
        BranchCmd::Create {
            name,
            from,
            at,
            snapshot,
        } => {
            let at = parse_at(at.as_deref())?;
            let start = Instant::now();
            let info = if snapshot {
                s.create_snapshot(&name, &from, at)?
            } else {
                s.create_branch(&name, &from, at)?
            };
            s.sync()?;
            print(json, &info, |i| {
                format!(
                    "created branch '{}' from '{from}' at lsn {} in {:.2?}",
                    i.name,
                    i.start_lsn,
                    start.elapsed()
                )
            });
        }
        BranchCmd::List => {
            let list = s.branches();
            print(json, &list, |l| {
                let mut out = format!(
                    "{:<24} {:<10} {:<16} {}",
                    "NAME", "LSN", "PARENT", "CREATED"
                );
                for b in l {
                    let kind = if b.snapshot { " (snapshot)" } else { "" };
                    out += &format!(
                        "\n{:<24} {:<10} {:<16} {}{kind}",
                        b.name,
                        b.start_lsn,
                        b.parent.as_deref().unwrap_or("-"),
                        b.created_at
                    );
                }
                out
            });
        }
        BranchCmd::Delete { name } => {
            s.delete_branch(&name)?;
            s.sync()?;
            print(json, &serde_json::json!({ "deleted": name }), |_| {
                format!("deleted branch '{name}'")
            });
        }
        BranchCmd::Reset { name } => {
            let info = s.reset_branch(&name)?;
            s.sync()?;
            print(json, &info, |i| {
                format!(
                    "reset '{}' to '{}' at lsn {}",
                    i.name,
                    i.parent.as_deref().unwrap_or("?"),
                    i.start_lsn
                )
            });
        }
        BranchCmd::Restore { name, from, at } => {
            let info = s.restore_branch(&name, &from, parse_at(at.as_deref())?)?;
            s.sync()?;
            print(json, &info, |i| {
                format!(
                    "'{}' now starts from '{from}' at lsn {}",
                    i.name, i.start_lsn
                )
            });
        }
        BranchCmd::Usage { name } => {
            let u = s
                .usage(&name)
                .with_context(|| format!("usage of '{name}'"))?;
            print(json, &u, |u| {
                format!(
                    "{name}: owns {} bytes ({} versions), shares {} bytes with ancestors, logical size {} bytes in {} files",
                    u.own_bytes, u.own_versions, u.shared_bytes, u.logical_size, u.files
                )
            });
        }
        BranchCmd::Retained { name } => {
            let r = s.retained(&name)?;
            print(json, &r, |r| {
                let mut out = String::new();
                if let Some(f) = r.fine_from {
                    out += &format!("every lsn from {f} to {}\n", r.last_lsn);
                }
                for p in &r.points {
                    out += &format!(
                        "lsn {:<10} {:<14} {}\n",
                        p.lsn,
                        p.kind,
                        p.time.as_deref().unwrap_or("")
                    );
                }
                out.trim_end().to_string()
            });
        }
        BranchCmd::RestorePoint { name } => {
            let lsn = s.create_restore_point(&name)?;
            s.sync()?;
            print(
                json,
                &serde_json::json!({ "branch": name, "lsn": lsn }),
                |_| format!("restore point of '{name}' at lsn {lsn}"),
            );
        }
    }
    Ok(())
}

/// The crash test's child: appends numbered records to `log`, creates a file and a branch now
/// and then, runs GC steps, and prints each sequence number only after `sync` returned.
fn crash_writer(data_dir: &std::path::Path) -> Result<()> {
    use crate::storage::{NewNode, ROOT_INO};
    use std::io::Write;
    let p = store_path(data_dir);
    let opts = Options {
        durability: Durability::Fsync,
        ..Options::default()
    };
    let s = Store::open(&p, opts)?;
    if s.branches().is_empty() {
        s.create_root_branch("main", 0, 0)?;
    }
    let tl = s.branch_timeline("main")?;
    let r = s.reader(tl, None)?;
    let log = match r.lookup(ROOT_INO, b"log")? {
        Some(i) => i,
        None => {
            s.create(tl, ROOT_INO, b"log", NewNode::File, 0o600, 0, 0)?
                .0
        }
    };
    drop(r);
    let mut seq = s.reader(tl, None)?.getattr(log)?.size / 100;
    let mut out = std::io::stdout().lock();
    loop {
        let rec = crash_record(seq);
        s.write(tl, log, seq * 100, &rec)?;
        if seq % 7 == 0 {
            let name = format!("f{seq}");
            let (f, _) = s.create(tl, ROOT_INO, name.as_bytes(), NewNode::File, 0o600, 0, 0)?;
            s.write(tl, f, 0, &rec)?;
        }
        if seq % 13 == 0 {
            s.create_branch(&format!("b{seq}"), "main", At::Head)?;
        }
        if seq % 5 == 0 {
            s.gc_step(64)?;
        }
        s.sync()?;
        writeln!(out, "{seq}")?;
        out.flush()?;
        seq += 1;
    }
}

/// The 100-byte record the crash writer stores for sequence number `seq`.
pub fn crash_record(seq: u64) -> Vec<u8> {
    let mut r = format!("record {seq:020} ").into_bytes();
    r.resize(100, b'a' + (seq % 26) as u8);
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_at_accepts_lsns_and_times_and_rejects_garbage() {
        use super::*;
        assert_eq!(parse_at(None).unwrap(), At::Head);
        assert_eq!(parse_at(Some("42")).unwrap(), At::Lsn(42));
        assert!(matches!(
            parse_at(Some("2026-11-21T10:32:00Z")).unwrap(),
            At::Time(_)
        ));
        assert!(parse_at(Some("yesterday-ish")).is_err());
    }
}
