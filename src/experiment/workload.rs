//! The workload an experiment runs on every design: a SQL file of weighted queries, or a
//! pgbench script. Both are timed per transaction on the client, the same way for every
//! design, so the figures compare.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::migrate::db::Db;

/// One query of a SQL workload and how often it is picked.
#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub sql: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub enum Workload {
    /// Queries picked at random by weight (`-- lakelet:weight N` above a query; 1 without).
    Sql { path: PathBuf, queries: Vec<Query> },
    /// `pgbench -f SCRIPT`, its per-transaction log read back for the latencies.
    Pgbench { path: PathBuf },
}

impl Workload {
    pub fn load(path: &Path, pgbench: bool) -> Result<Workload> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if pgbench {
            return Ok(Workload::Pgbench {
                path: path.to_path_buf(),
            });
        }
        let statements = crate::migrate::sql::split(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.message))?;
        let mut queries = vec![];
        for st in statements {
            let mut weight = 1;
            for d in &st.directives {
                if let Some(w) = d.strip_prefix("weight") {
                    weight = w.trim().parse().ok().filter(|w| *w > 0).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}:{}: `-- lakelet:weight {}`: a weight is a whole number above 0",
                            path.display(),
                            st.line,
                            w.trim()
                        )
                    })?;
                }
            }
            queries.push(Query {
                sql: st.text.clone(),
                weight,
            });
        }
        if queries.is_empty() {
            bail!("{} holds no query", path.display());
        }
        Ok(Workload::Sql {
            path: path.to_path_buf(),
            queries,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Workload::Sql { path, queries } => format!(
                "{} ({} queries, weights {})",
                path.display(),
                queries.len(),
                queries
                    .iter()
                    .map(|q| q.weight.to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            Workload::Pgbench { path } => format!("pgbench -f {}", path.display()),
        }
    }
}

/// What one run of the workload measured on one design.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Per-transaction latencies, microseconds.
    pub latencies_us: Vec<u64>,
    pub elapsed_s: f64,
}

/// A small seeded generator (xorshift64*): the same seed picks the same queries on every
/// design, in the same order.
pub struct Picker {
    state: u64,
    total: u32,
    cumulative: Vec<u32>,
}

impl Picker {
    pub fn new(queries: &[Query], seed: u64) -> Picker {
        let mut acc = 0;
        let cumulative = queries
            .iter()
            .map(|q| {
                acc += q.weight;
                acc
            })
            .collect();
        Picker {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            total: acc,
            cumulative,
        }
    }

    pub fn pick(&mut self) -> usize {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % self.total;
        self.cumulative.iter().position(|&c| r < c).unwrap_or(0)
    }
}

/// Runs `transactions` picks of the SQL workload on `db`.
pub fn run_sql(db: &Db, queries: &[Query], transactions: u32, seed: u64) -> Result<Run> {
    let mut pick = Picker::new(queries, seed);
    let mut out = Run::default();
    let start = Instant::now();
    for _ in 0..transactions {
        let q = &queries[pick.pick()];
        let t = Instant::now();
        db.run(&q.sql)
            .map_err(|e| anyhow::anyhow!("the workload query failed: {e}\n  {}", q.sql))?;
        out.latencies_us.push(t.elapsed().as_micros() as u64);
    }
    out.elapsed_s = start.elapsed().as_secs_f64();
    Ok(out)
}

/// Runs the pgbench script `transactions` times (one client) against `url`, and reads each
/// transaction's latency from pgbench's log.
pub fn run_pgbench(url: &str, script: &Path, transactions: u32, work: &Path) -> Result<Run> {
    let installs = crate::compute::pg::discover(None)?;
    let bin = installs
        .last()
        .map(|i| i.bin("pgbench"))
        .filter(|b| b.is_file())
        .context("pgbench is not installed (Debian: the postgresql package)")?;
    let dir = work.join(format!(
        "pgbench-log-{}",
        crate::util::hex(&crate::util::random_bytes::<6>())
    ));
    std::fs::create_dir_all(&dir).context("a directory for pgbench's log")?;
    let r = pgbench_logged(&bin, url, script, transactions, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn pgbench_logged(
    bin: &Path,
    url: &str,
    script: &Path,
    transactions: u32,
    dir: &Path,
) -> Result<Run> {
    let prefix = dir.join("tx");
    let start = Instant::now();
    let out = std::process::Command::new(bin)
        .args(["-n", "-c", "1", "-t"])
        .arg(transactions.to_string())
        .arg("-f")
        .arg(script)
        .arg("-l")
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(url)
        .output()
        .context("running pgbench")?;
    let elapsed_s = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut latencies_us = vec![];
    for e in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(e?.path())?;
        // client_id transaction_no time script_no time_epoch time_us
        for line in text.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|t| t.parse().ok()) {
                latencies_us.push(us);
            }
        }
    }
    if latencies_us.is_empty() {
        bail!("pgbench wrote no transaction log");
    }
    Ok(Run {
        latencies_us,
        elapsed_s,
    })
}

/// The `p`th percentile (0–100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights_and_the_seed() {
        let q = |w| Query {
            sql: String::new(),
            weight: w,
        };
        let queries = [q(8), q(2)];
        let mut p = Picker::new(&queries, 7);
        let picks: Vec<usize> = (0..10_000).map(|_| p.pick()).collect();
        let first = picks.iter().filter(|&&i| i == 0).count();
        assert!((7_600..8_400).contains(&first), "{first}");
        let mut again = Picker::new(&queries, 7);
        assert!(
            picks.iter().all(|&i| i == again.pick()),
            "same seed, same picks"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[5], 99.0), 5);
    }
}
