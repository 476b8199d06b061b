//! What a steady-state pgbench run cost besides its time: CPU of the Postgres processes and of
//! the daemon, bytes they wrote to disk, and the view's requests, each per transaction. This is
//! what explains a throughput ratio on a 2-core machine, where the daemon competes with
//! Postgres for the same cores.

use serde::{Deserialize, Serialize};

use crate::compute::ViewCounters;

/// Per-transaction costs of one run (see the module doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunCost {
    /// CPU of the postmaster and every process it started (backends reaped included), µs.
    pub postgres_cpu_us: f64,
    /// Bytes the Postgres processes wrote to block devices (WAL, data; on a branch its WAL and
    /// archive only, plus whatever the kernel counts for pages dirtied through the view).
    pub postgres_disk_bytes: f64,
    /// The daemon's CPU, µs (branch runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_cpu_us: Option<f64>,
    /// Bytes the daemon wrote to block devices: the store (RocksDB's log, flushes, compactions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_disk_bytes: Option<f64>,
    /// The view's requests (branch runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<ViewPerTx>,
}

/// FUSE requests per transaction.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewPerTx {
    pub writes: f64,
    pub bytes_written: f64,
    pub syncs: f64,
    pub setattrs: f64,
    pub reads: f64,
    pub metadata: f64,
}

/// CPU seconds and disk bytes written by a process, or by a process and its children.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub write_bytes: u64,
}

impl Usage {
    /// `pid` alone (every thread), including the children it reaped.
    pub fn process(pid: u32) -> Usage {
        let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let f: Vec<u64> = s
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .skip(11)
                    .take(4)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                (f.len() == 4).then(|| f.iter().sum::<u64>())
            })
            .unwrap_or(0);
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let write_bytes = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        Usage {
            cpu_s: cpu as f64 / hz,
            write_bytes,
        }
    }

    /// `pid` and its live children (a postmaster and its backends and workers).
    pub fn tree(pid: u32) -> Usage {
        let mut u = Usage::process(pid);
        for c in children(pid) {
            let cu = Usage::process(c);
            u.cpu_s += cu.cpu_s;
            u.write_bytes += cu.write_bytes;
        }
        u
    }
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

/// What was sampled before and after a run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub postgres: Usage,
    pub daemon: Option<Usage>,
    pub view: Option<ViewCounters>,
}

impl RunCost {
    /// Bytes that reached a disk per transaction. A branch's Postgres is charged (by the
    /// kernel, when it dirties them) for pages it writes through the view, which reach a disk
    /// only as the store's writes, already counted for the daemon: they are taken out.
    pub fn disk_bytes(&self) -> f64 {
        let through_view = self.view.as_ref().map_or(0.0, |v| v.bytes_written);
        (self.postgres_disk_bytes - through_view).max(0.0) + self.daemon_disk_bytes.unwrap_or(0.0)
    }

    /// The difference of two samples, per transaction.
    pub fn between(a: &Sample, b: &Sample, transactions: u64) -> RunCost {
        let n = transactions.max(1) as f64;
        let per = |x: f64| x / n;
        RunCost {
            postgres_cpu_us: per((b.postgres.cpu_s - a.postgres.cpu_s) * 1e6),
            postgres_disk_bytes: per(b
                .postgres
                .write_bytes
                .saturating_sub(a.postgres.write_bytes)
                as f64),
            daemon_cpu_us: a
                .daemon
                .zip(b.daemon)
                .map(|(x, y)| per((y.cpu_s - x.cpu_s) * 1e6)),
            daemon_disk_bytes: a
                .daemon
                .zip(b.daemon)
                .map(|(x, y)| per(y.write_bytes.saturating_sub(x.write_bytes) as f64)),
            view: a.view.as_ref().zip(b.view.as_ref()).map(|(x, y)| {
                let d = |f: fn(&ViewCounters) -> u64| per(f(y).saturating_sub(f(x)) as f64);
                ViewPerTx {
                    writes: d(|v| v.writes),
                    bytes_written: d(|v| v.bytes_written),
                    syncs: d(|v| v.syncs),
                    setattrs: d(|v| v.setattrs),
                    reads: d(|v| v.reads),
                    metadata: d(|v| v.metadata),
                }
            }),
        }
    }
}
