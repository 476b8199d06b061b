//! `lakelet experiment`: A/B designs on parallel branches (practice 9).
//!
//! Fork one branch per design from a tier, apply each design's migrations, run the same
//! workload on every design in interleaved rounds (warm-up rounds discarded, the order of the
//! designs alternating so neither always runs on a warmer machine), and measure latency
//! percentiles, throughput and storage side by side. The chosen design's branch is kept; the
//! others are soft-deleted. The figures and the choice become a decision record in the repo
//! (`docs/decisions/NNNN-title.md` and `.json`), and the decision is audited.
//!
//! Like migrate and scm, it knows connection strings and the Branches API client, so the same
//! experiment runs against the local daemon and against Lakebase.
//!
//! - `workload.rs`: the weighted SQL file or pgbench script, timed per transaction.
//! - `record.rs`: the decision record.

pub mod record;
pub mod workload;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::db::Db;
use crate::migrate::run::Runner;
use crate::migrate::{script, Settings};
use workload::{percentile, Workload};

/// One design: a name and the migrations that build it on top of the project's.
#[derive(Debug, Clone, Serialize)]
pub struct Design {
    pub name: String,
    pub migrations: PathBuf,
}

impl std::str::FromStr for Design {
    type Err = String;

    /// `NAME=DIR`.
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((name, dir)) = s.split_once('=') else {
            return Err(format!("{s:?}: write a design as NAME=MIGRATIONS_DIR"));
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "design name {name:?}: letters, digits, '-' and '_' only"
            ));
        }
        Ok(Design {
            name: name.to_string(),
            migrations: PathBuf::from(dir),
        })
    }
}

/// What decides between designs when no one names the winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Lowest 95th-percentile latency.
    P95,
    /// Lowest median latency.
    P50,
    /// Most transactions per second.
    Throughput,
    /// Least storage.
    Storage,
}

pub struct Options {
    pub title: String,
    pub from: String,
    pub designs: Vec<Design>,
    pub workload: Workload,
    pub runs: u32,
    pub warmup: u32,
    pub transactions: u32,
    pub seed: u64,
    pub metric: Metric,
    /// The design chosen by a person (the figures are still recorded).
    pub choose: Option<String>,
    pub reason: Option<String>,
    /// Where decision records go (`docs/decisions`).
    pub decisions: PathBuf,
    /// Branch names start with it (a principal's prefix where the policy wants one).
    pub prefix: String,
    pub settings: Settings,
    /// The project's own migrations (what the tier already has, and any pending); each
    /// design's are added to them, as a second Flyway location.
    pub base: PathBuf,
    /// Scratch space (pgbench's logs).
    pub work: PathBuf,
    /// Who decides, for the record.
    pub by: Option<String>,
}

/// One design's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub design: String,
    pub branch: String,
    pub migrations: Vec<String>,
    pub fork_ms: f64,
    pub migrate_ms: f64,
    pub transactions: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub throughput_tps: f64,
    /// The median of each measured run's throughput.
    pub runs_tps: Vec<f64>,
    /// The user tables and their indexes, after the workload.
    pub tables_bytes: i64,
    pub database_bytes: i64,
}

/// Deletes the experiment's branches if it fails before a decision.
struct Cleanup<'a> {
    api: &'a Branches,
    names: Vec<String>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.armed {
            for n in &self.names {
                if let Err(e) = self.api.delete(n, false) {
                    eprintln!(
                        "could not delete the experiment branch '{n}' ({e:#}); it expires in a day"
                    );
                }
            }
        }
    }
}

/// Runs the experiment and writes its decision record.
pub fn run(
    api: &Branches,
    connect: &dyn Fn(&str) -> Result<String>,
    o: &Options,
) -> Result<record::Decision> {
    if o.designs.len() < 2 {
        bail!("an experiment compares two or more designs: --design A=DIR --design B=DIR");
    }
    for (i, d) in o.designs.iter().enumerate() {
        if o.designs[..i].iter().any(|e| e.name == d.name) {
            bail!("two designs are named {:?}", d.name);
        }
    }
    if let Some(c) = &o.choose {
        if !o.designs.iter().any(|d| &d.name == c) {
            bail!("--choose {c:?} names no design of this experiment");
        }
    }
    if o.runs == 0 || o.transactions == 0 {
        bail!("--runs and --transactions are at least 1");
    }
    // Every design's migrations load before anything is forked.
    let base = if o.base.is_dir() {
        script::load(&o.base)?
    } else {
        vec![]
    };
    let scripts: Vec<Vec<script::Script>> = o
        .designs
        .iter()
        .map(|d| {
            let mut all = base.clone();
            all.extend(script::load(&d.migrations).with_context(|| format!("design {}", d.name))?);
            Ok(all)
        })
        .collect::<Result<_>>()?;
    let mut cleanup = Cleanup {
        api,
        names: vec![],
        armed: true,
    };
    let mut figures = vec![];
    let mut sessions = vec![];
    for (d, scripts) in o.designs.iter().zip(&scripts) {
        let name = crate::util::throwaway_name(&format!("{}-{}", o.prefix, d.name), &o.from);
        eprintln!("design {}: forking '{name}' from '{}'…", d.name, o.from);
        let t = Instant::now();
        api.create(
            &name,
            BranchSpec {
                source_branch: Some(api.branch_name(&o.from)),
                ttl: Some("86400s".into()),
                ..Default::default()
            },
        )
        .with_context(|| format!("forking design {}'s branch from '{}'", d.name, o.from))?;
        cleanup.names.push(name.clone());
        let db = Db::connect(&connect(&name)?)?;
        let fork_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let settings = o.settings.clone().with_builtins(&db)?;
        let runner = Runner::new(&db, &settings, scripts)?;
        db.act_as_schema_owner()?;
        let report = runner.migrate(false)?;
        if let Some(f) = report.failed {
            bail!("design {}: {f}", d.name);
        }
        db.exec("reset role")?;
        let migrate_ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "design {}: {} migration(s) in {migrate_ms:.0} ms",
            d.name,
            report.applied.len()
        );
        figures.push(Figures {
            design: d.name.clone(),
            branch: name,
            migrations: report.applied.iter().map(|r| r.script.clone()).collect(),
            fork_ms,
            migrate_ms,
            transactions: 0,
            p50_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            mean_ms: 0.0,
            throughput_tps: 0.0,
            runs_tps: vec![],
            tables_bytes: 0,
            database_bytes: 0,
        });
        sessions.push(db);
    }
    measure(o, connect, &sessions, &mut figures)?;
    let chosen = choose(o, &figures);
    let losers: Vec<String> = figures
        .iter()
        .filter(|f| f.design != chosen)
        .map(|f| f.branch.clone())
        .collect();
    drop(sessions);
    for b in &losers {
        api.delete(b, false)
            .with_context(|| format!("soft-deleting the losing design's branch '{b}'"))?;
    }
    cleanup.armed = false;
    let decision = record::Decision::new(o, figures, chosen, losers)?;
    record::write(&o.decisions, &decision)
}

/// Interleaved rounds: warm-up rounds first (discarded), the designs' order alternating.
fn measure(
    o: &Options,
    connect: &dyn Fn(&str) -> Result<String>,
    sessions: &[Db],
    figures: &mut [Figures],
) -> Result<()> {
    let n = figures.len();
    let mut latencies: Vec<Vec<u64>> = vec![vec![]; n];
    let mut tps: Vec<Vec<f64>> = vec![vec![]; n];
    let mut elapsed = vec![0.0f64; n];
    for round in 0..(o.warmup + o.runs) {
        let measured = round >= o.warmup;
        let mut order: Vec<usize> = (0..n).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for &i in &order {
            let seed = o.seed.wrapping_add(round as u64);
            let run = match &o.workload {
                Workload::Sql { queries, .. } => {
                    workload::run_sql(&sessions[i], queries, o.transactions, seed)
                }
                Workload::Pgbench { path } => workload::run_pgbench(
                    &connect(&figures[i].branch)?,
                    path,
                    o.transactions,
                    &o.work,
                ),
            }
            .with_context(|| format!("design {}", figures[i].design))?;
            eprintln!(
                "round {}{} design {}: {:.0} tx/s",
                round + 1,
                if measured { "" } else { " (warm-up)" },
                figures[i].design,
                run.latencies_us.len() as f64 / run.elapsed_s
            );
            if measured {
                tps[i].push(run.latencies_us.len() as f64 / run.elapsed_s);
                elapsed[i] += run.elapsed_s;
                latencies[i].extend(run.latencies_us);
            }
        }
    }
    for (i, f) in figures.iter_mut().enumerate() {
        let l = &mut latencies[i];
        l.sort_unstable();
        let ms = |us: u64| us as f64 / 1e3;
        f.transactions = l.len();
        f.p50_ms = ms(percentile(l, 50.0));
        f.p95_ms = ms(percentile(l, 95.0));
        f.p99_ms = ms(percentile(l, 99.0));
        f.mean_ms = l.iter().sum::<u64>() as f64 / l.len().max(1) as f64 / 1e3;
        f.throughput_tps = l.len() as f64 / elapsed[i].max(1e-9);
        f.runs_tps = tps[i].clone();
        let db = &sessions[i];
        f.tables_bytes = db
            .value(
                "select coalesce(sum(pg_total_relation_size(c.oid)), 0)::text from pg_class c \
                 join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p', 'm') \
                 and n.nspname not in ('pg_catalog', 'information_schema') \
                 and n.nspname not like 'pg_toast%' and n.nspname <> '_lakelet'",
            )?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        f.database_bytes = db
            .value("select pg_database_size(current_database())::text")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    Ok(())
}

/// The design a person named, else the best by the metric.
fn choose(o: &Options, figures: &[Figures]) -> String {
    if let Some(c) = &o.choose {
        return c.clone();
    }
    let key = |f: &Figures| match o.metric {
        Metric::P95 => f.p95_ms,
        Metric::P50 => f.p50_ms,
        Metric::Throughput => -f.throughput_tps,
        Metric::Storage => f.tables_bytes as f64,
    };
    figures
        .iter()
        .min_by(|a, b| key(a).total_cmp(&key(b)))
        .map(|f| f.design.clone())
        .expect("two or more designs")
}
