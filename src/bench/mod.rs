//! `lakelet bench`: what a private database per PR costs with lakelet, measured in one run side
//! by side with what teams do instead — `CREATE DATABASE … TEMPLATE`, `pg_dump | pg_restore`,
//! a copy of the data directory (a Docker volume copy) — and steady-state pgbench on a branch
//! vs the same Postgres on local disk.
//!
//! The bench sits above the api layer like scm: it drives its own daemon through the Branches
//! client and the proxy (URLs from the CLI), and native clusters through compute's process
//! helpers. Nothing it starts outlives it: the work directory, the daemon, every native server
//! are torn down at the end, on error and on SIGINT/SIGTERM alike (`Lab::cleanup`).

mod client;
pub mod cost;
mod lab;
mod measure;
pub mod plot;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use lab::UrlFn;
use report::{Machine, Report, Settings};

pub struct Config {
    /// pgbench scales of the parents, ascending.
    pub sizes: Vec<u32>,
    /// Live servers' databases (libpq URLs) imported as further parents.
    pub imports: Vec<String>,
    /// lakelet branches per size.
    pub runs: usize,
    /// Copies per size by each alternative (each copies the whole database).
    pub alt_runs: usize,
    /// Each steady-state pgbench run.
    pub duration: Duration,
    /// Interleaved rounds of each steady-state workload (native, branch socket, proxy).
    pub rounds: usize,
    pub clients: u32,
    pub threads: u32,
    /// Where the work directory goes: the disk both sides are measured on.
    pub work: PathBuf,
    /// Where the report, the JSON and the plots are written.
    pub out: PathBuf,
    /// The lakelet executable the bench's daemon runs.
    pub exe: PathBuf,
    pub pg_bindir: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

/// Progress lines on stderr, stamped with the seconds since the start.
pub struct Progress {
    start: Instant,
}

impl Progress {
    pub fn say(&self, msg: impl std::fmt::Display) {
        eprintln!("[{:>7.1}s] {msg}", self.start.elapsed().as_secs_f64());
    }
}

/// What `run` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Outputs {
    pub report_md: PathBuf,
    pub report_json: PathBuf,
    pub plots: Vec<PathBuf>,
}

impl Config {
    fn check(&mut self) -> Result<()> {
        if self.sizes.contains(&0) || (self.sizes.is_empty() && self.imports.is_empty()) {
            bail!(
                "--sizes needs pgbench scales of at least 1, e.g. --sizes 1,10,100 (or pass \
                 --import URL)"
            );
        }
        self.sizes.sort_unstable();
        self.sizes.dedup();
        if self.runs == 0 || self.alt_runs == 0 {
            bail!("--runs and --alt-runs must be at least 1");
        }
        if self.duration < Duration::from_secs(1) {
            bail!("--duration must be at least 1s (pgbench -T counts whole seconds)");
        }
        Ok(())
    }
}

/// Runs the whole bench and writes the report into `cfg.out`.
pub fn run(mut cfg: Config, url: Box<UrlFn>) -> Result<(Report, Outputs)> {
    cfg.check()?;
    let installs = crate::compute::pg::discover(cfg.pg_bindir.as_deref())?;
    let pg = installs
        .first()
        .context("no Postgres installation found; install postgresql or pass --pg-bindir")?
        .clone();
    for tool in ["pgbench", "pg_dump", "pg_restore"] {
        if !pg.bin(tool).exists() {
            bail!(
                "{} is missing; install the Postgres client programs (Debian: postgresql-client)",
                pg.bin(tool).display()
            );
        }
    }
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("creating the output directory {}", cfg.out.display()))?;
    let p = Progress {
        start: Instant::now(),
    };
    let started_at = now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sizes = rt.block_on(async {
        let mut lab = lab::Lab::new(&cfg.work, cfg.exe.clone(), pg.clone(), url)?;
        p.say(format!(
            "work directory {} ({}); Postgres {}",
            lab.root.display(),
            filesystem(&lab.root),
            pg.version
        ));
        let r = tokio::select! {
            // A ^C reaches pgbench too, whose failure would otherwise win the race.
            biased;
            s = interrupted() => Err(anyhow!("interrupted by {s}")),
            r = measure_all(&mut lab, &cfg, &p) => r,
        };
        p.say("cleaning up: native servers, the bench's daemon, the work directory");
        lab.cleanup().await;
        r
    })?;

    let report = Report {
        lakelet_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        finished_at: now(),
        command: cfg.command.clone(),
        machine: machine(&cfg.work, &pg.version),
        settings: Settings {
            sizes: cfg.sizes.clone(),
            imports: cfg.imports.iter().map(|u| client::redact(u)).collect(),
            runs: cfg.runs,
            alt_runs: cfg.alt_runs,
            duration_s: cfg.duration.as_secs(),
            pgbench_rounds: cfg.rounds.max(1),
            pgbench_clients: cfg.clients,
            pgbench_threads: cfg.threads,
        },
        sizes,
    };
    let outputs = write(&report, &cfg.out)?;
    p.say(format!("report: {}", outputs.report_md.display()));
    Ok((report, outputs))
}

async fn measure_all(
    lab: &mut lab::Lab,
    cfg: &Config,
    p: &Progress,
) -> Result<Vec<report::SizeResult>> {
    p.say("starting the bench's own lakelet daemon");
    lab.up().await?;
    let plan = measure::Plan {
        runs: cfg.runs,
        alt_runs: cfg.alt_runs,
        duration: cfg.duration,
        rounds: cfg.rounds.max(1),
        clients: cfg.clients,
        threads: cfg.threads,
    };
    let sources = cfg
        .sizes
        .iter()
        .map(|&s| measure::Source::Pgbench(s))
        .chain(cfg.imports.iter().cloned().map(measure::Source::Import));
    let mut out = Vec::new();
    for (k, src) in sources.enumerate() {
        let what = match &src {
            measure::Source::Pgbench(s) => format!("pgbench scale {s}"),
            measure::Source::Import(u) => format!("the import of {}", client::redact(u)),
        };
        out.push(
            measure::size(lab, &plan, k, &src, p)
                .await
                .with_context(|| format!("measuring {what}"))?,
        );
    }
    Ok(out)
}

/// The first SIGINT, SIGTERM or SIGHUP.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut i), Ok(mut t), Ok(mut h)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = i.recv() => "SIGINT",
        _ = t.recv() => "SIGTERM",
        _ = h.recv() => "SIGHUP",
    }
}

/// report.json, report.md and the plots, each written whole (temp file + rename).
pub fn write(r: &Report, dir: &Path) -> Result<Outputs> {
    let json = dir.join("report.json");
    let md = dir.join("report.md");
    crate::util::write_atomically(&json, &serde_json::to_vec_pretty(r)?, 0o644)?;
    crate::util::write_atomically(&md, report::markdown(r).as_bytes(), 0o644)?;
    let plots = plot::all(r, dir)?;
    Ok(Outputs {
        report_md: md,
        report_json: json,
        plots,
    })
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn machine(work: &Path, postgres: &str) -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let work = work.canonicalize().unwrap_or_else(|_| work.to_path_buf());
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        memory_bytes: memory_kib * 1024,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        postgres: postgres.to_string(),
        filesystem: filesystem(&work),
        work_dir: work.display().to_string(),
    }
}

/// The type of the filesystem holding `path`: the longest mount point in /proc/mounts that
/// contains it.
fn filesystem(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mnt, fstype) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt)
                .then(|| (mnt.len(), fstype.to_string()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, t)| t)
        .unwrap_or_else(|| "unknown".into())
}
