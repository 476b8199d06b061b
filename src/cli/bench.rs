//! `lakelet bench`: the CLI's part is the arguments, the proxy URLs (one definition, in
//! connect.rs) and printing; the measuring is `crate::bench`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::api::client::Client;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Parent sizes as pgbench scales (scale 1 ≈ 22 MiB, 100 ≈ 1.5 GiB); default 1,10,100,
    /// none when --import is given.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<u32>>,
    /// Also a live server's database as a parent (repeatable): `lakelet import` on one side,
    /// `pg_dump | pg_restore` into native Postgres on the other. No pgbench runs on it.
    #[arg(long, value_name = "URL")]
    import: Vec<String>,
    /// lakelet branches created (and queried) per size; p50 and p95 are over these.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Copies per size by each alternative (TEMPLATE, pg_dump | pg_restore, directory copy);
    /// each copies the whole database, so at scale 100 one dump and restore takes minutes.
    #[arg(long, default_value_t = 3)]
    alt_runs: usize,
    /// Length of each steady-state pgbench run (TPC-B and select-only, native and branch).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Interleaved rounds of the steady-state runs (native, branch, proxy in turn); the report
    /// gives each side's median round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// pgbench clients (-c) and threads (-j) for the steady-state runs.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Where the report (report.md, report.json, *.svg) is written.
    #[arg(long, default_value = "lakelet-bench")]
    out: PathBuf,
    /// The directory both sides run in (the disk being measured); a private subdirectory is
    /// created and removed. Default: $TMPDIR, else /tmp.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Measure nothing: rewrite report.md and the plots in --out from a saved report.json.
    #[arg(long, value_name = "REPORT_JSON")]
    from_json: Option<PathBuf>,
    /// Postgres binaries (default: pg_config, else the newest /usr/lib/postgresql/*/bin).
    #[arg(long, env = "LAKELET_PG_BINDIR")]
    pg_bindir: Option<PathBuf>,
}

pub fn run(json: bool, a: BenchArgs) -> Result<()> {
    if let Some(f) = &a.from_json {
        let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let report: crate::bench::report::Report = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a lakelet bench report", f.display()))?;
        std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
        let out = crate::bench::write(&report, &a.out)?;
        crate::cli::print(json, &out, |o| {
            format!(
                "written: {} and {} plots",
                o.report_md.display(),
                o.plots.len()
            )
        });
        return Ok(());
    }
    let cfg = crate::bench::Config {
        sizes: a.sizes.unwrap_or_else(|| {
            if a.import.is_empty() {
                vec![1, 10, 100]
            } else {
                vec![]
            }
        }),
        imports: a.import,
        runs: a.runs,
        alt_runs: a.alt_runs,
        duration: a.duration,
        rounds: a.rounds,
        clients: a.clients,
        threads: a.threads,
        work: a.work.unwrap_or_else(std::env::temp_dir),
        out: a.out,
        exe: std::env::current_exe().context("finding the lakelet executable")?,
        pg_bindir: a.pg_bindir,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    // The bench's daemon is its own; the owner's credentials (its api-token) reach it.
    std::env::remove_var("LAKELET_PRINCIPAL");
    std::env::remove_var("LAKELET_SECRET");
    let url = Box::new(|dd: &std::path::Path, branch: &str, db: &str| {
        Ok(super::connect::conn_info(dd, &Client::connect(dd)?, branch, db, false)?.url)
    });
    let (report, out) = crate::bench::run(cfg, url)?;
    if json {
        crate::cli::print(
            true,
            &serde_json::json!({ "report": report, "files": out }),
            |_| String::new(),
        );
    } else {
        println!("{}", crate::bench::report::markdown(&report));
        println!(
            "written: {}, {}",
            out.report_md.display(),
            out.report_json.display()
        );
        for p in &out.plots {
            println!("         {}", p.display());
        }
    }
    Ok(())
}
