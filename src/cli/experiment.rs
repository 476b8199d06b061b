//! `lakelet experiment`: A/B designs on parallel branches, measured side by side, the
//! decision recorded in the repo and audited. The work is `crate::experiment`'s; this
//! resolves the target, the project's directories and who decides, and prints.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::print;
use crate::api::lakebase::client::TargetKind;
use crate::experiment::{self, record, workload::Workload, Design, Metric};

#[derive(Args)]
pub struct ExperimentArgs {
    /// What is being decided (the record's title).
    #[arg(long)]
    title: String,
    /// The tier (or any branch) every design is forked from.
    #[arg(long)]
    from: String,
    /// A design: NAME=MIGRATIONS_DIR, the migrations that build it on top of the project's
    /// own (repeat for each design; two or more).
    #[arg(long = "design", value_name = "NAME=DIR", required = true)]
    designs: Vec<Design>,
    /// The workload: a SQL file of queries (`-- lakelet:weight N` above a query sets how often
    /// it is picked), or a pgbench script with --pgbench.
    #[arg(long)]
    workload: PathBuf,
    /// The workload is a pgbench script.
    #[arg(long)]
    pgbench: bool,
    /// Measured runs per design.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Warm-up runs per design, discarded.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Transactions per run.
    #[arg(long, default_value_t = 500)]
    transactions: u32,
    /// Picks the SQL workload's queries (the same picks on every design).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What decides when --choose does not.
    #[arg(long, value_enum, default_value_t = Metric::P95)]
    metric: Metric,
    /// The design chosen, whatever the figures say (they are recorded all the same).
    #[arg(long)]
    choose: Option<String>,
    /// Why, in a sentence, for the record.
    #[arg(long)]
    reason: Option<String>,
    /// Where decision records go (default: docs/decisions beside lakelet.toml).
    #[arg(long)]
    decisions: Option<PathBuf>,
}

pub fn run(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    a: ExperimentArgs,
) -> Result<()> {
    let api = super::config::branches(dd, target, project_flag)?;
    let (migrations, settings) = super::migrate::configured(None)?;
    let project = crate::migrate::refactor::transitions::project_of(&migrations);
    let principal = crate::api::client::acting_principal()?.map(|(n, _)| n);
    let workload = Workload::load(&a.workload, a.pgbench)?;
    let work = dd.join("tmp");
    std::fs::create_dir_all(&work)?;
    let opts = experiment::Options {
        title: a.title,
        from: a.from,
        designs: a.designs,
        workload,
        runs: a.runs,
        warmup: a.warmup,
        transactions: a.transactions,
        seed: a.seed,
        metric: a.metric,
        choose: a.choose,
        reason: a.reason,
        decisions: a
            .decisions
            .unwrap_or_else(|| project.join("docs/decisions")),
        prefix: match &principal {
            Some(p) => format!("{p}-exp"),
            None => "exp".into(),
        },
        settings,
        base: migrations.clone(),
        work,
        by: principal.clone(),
    };
    let connect = |b: &str| -> Result<String> {
        Ok(super::connect::target_info(dd, &api, b, "postgres", false)?.url)
    };
    let d = experiment::run(&api, &connect, &opts)?;
    let event = crate::scm::Event {
        action: "experiment.decide".into(),
        target: d.kept_branch.clone(),
        args: serde_json::json!({
            "title": d.title, "chosen": d.chosen, "from": d.from,
            "designs": d.designs.iter().map(|f| &f.design).collect::<Vec<_>>(),
            "soft_deleted": d.soft_deleted, "record": d.markdown,
        }),
        refused: String::new(),
    };
    super::scm::report_event(dd, api.kind == TargetKind::Local, &project, &event);
    print(json, &d, |d| {
        format!(
            "{}\nrecorded in {} (and .json)",
            record::markdown(d).trim_end(),
            d.markdown.display()
        )
    });
    Ok(())
}
