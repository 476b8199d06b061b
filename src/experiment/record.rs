//! The decision record: what was compared, on what, the figures, and what was chosen and
//! why — Markdown for people (`docs/decisions/NNNN-title.md`, in the style of an
//! architecture decision record) and the same as JSON for tools, numbered in the order they
//! were made.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{Figures, Metric, Options};

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub number: u32,
    pub title: String,
    pub date: String,
    pub by: Option<String>,
    pub from: String,
    pub workload: String,
    pub runs: u32,
    pub warmup: u32,
    pub transactions_per_run: u32,
    pub seed: u64,
    pub metric: Metric,
    pub designs: Vec<Figures>,
    pub chosen: String,
    /// How the choice was made: named by a person, or the best by the metric.
    pub chosen_by: String,
    pub reason: Option<String>,
    /// The chosen design's branch, kept.
    pub kept_branch: String,
    /// The other designs' branches, soft-deleted (restorable with `lakelet branch undelete`).
    pub soft_deleted: Vec<String>,
    pub markdown: PathBuf,
    pub json: PathBuf,
}

impl Decision {
    pub fn new(
        o: &Options,
        designs: Vec<Figures>,
        chosen: String,
        losers: Vec<String>,
    ) -> Result<Decision> {
        let kept = designs
            .iter()
            .find(|f| f.design == chosen)
            .map(|f| f.branch.clone())
            .context("the chosen design has figures")?;
        Ok(Decision {
            number: 0,
            title: o.title.clone(),
            date: crate::storage::format_time(crate::util::now_nanos()),
            by: o.by.clone(),
            from: o.from.clone(),
            workload: o.workload.describe(),
            runs: o.runs,
            warmup: o.warmup,
            transactions_per_run: o.transactions,
            seed: o.seed,
            metric: o.metric,
            chosen_by: match &o.choose {
                Some(_) => "named by the decider".into(),
                None => format!("best {}", metric_name(o.metric)),
            },
            designs,
            chosen,
            reason: o.reason.clone(),
            kept_branch: kept,
            soft_deleted: losers,
            markdown: PathBuf::new(),
            json: PathBuf::new(),
        })
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::P95 => "95th-percentile latency",
        Metric::P50 => "median latency",
        Metric::Throughput => "throughput",
        Metric::Storage => "storage",
    }
}

/// `Columns vs lookup table` → `columns-vs-lookup-table`.
pub fn slug(title: &str) -> String {
    let mut s = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let mut s = s.trim_matches('-').to_string();
    s.truncate(60);
    if s.is_empty() {
        s = "decision".into();
    }
    s
}

/// The next record number in `dir` (0001 when there is none).
fn next_number(dir: &Path) -> Result<u32> {
    let mut max = 0;
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.get(..4).and_then(|n| n.parse::<u32>().ok()) {
                max = max.max(n);
            }
        }
    }
    Ok(max + 1)
}

/// Writes the record under the next free number; never replaces an existing record.
pub fn write(dir: &Path, d: &Decision) -> Result<Decision> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut d = d.clone();
    for _ in 0..100 {
        d.number = next_number(dir)?;
        let stem = format!("{:04}-{}", d.number, slug(&d.title));
        d.markdown = dir.join(format!("{stem}.md"));
        d.json = dir.join(format!("{stem}.json"));
        let md = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&d.markdown);
        let mut f = match md {
            Ok(f) => f,
            // Someone else took the number meanwhile: take the next one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("writing {}", d.markdown.display())),
        };
        use std::io::Write as _;
        f.write_all(markdown(&d).as_bytes())?;
        f.sync_all()?;
        let json = serde_json::to_string_pretty(&d)? + "\n";
        crate::util::write_atomically(&d.json, json.as_bytes(), 0o644)?;
        return Ok(d);
    }
    bail!("could not claim a decision number in {}", dir.display())
}

fn bytes(b: i64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

pub fn markdown(d: &Decision) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {:04}. {}\n", d.number, d.title);
    let _ = writeln!(s, "- Date: {}", d.date);
    if let Some(by) = &d.by {
        let _ = writeln!(s, "- Decided by: {by}");
    }
    let _ = writeln!(s, "- Status: accepted — **{}** ({})", d.chosen, d.chosen_by);
    let _ = writeln!(s, "- Forked from: `{}`", d.from);
    let _ = writeln!(
        s,
        "- Workload: {}; {} measured run(s) of {} transactions per design after {} warm-up \
         run(s), designs interleaved, seed {}\n",
        d.workload, d.runs, d.transactions_per_run, d.warmup, d.seed
    );
    let _ = writeln!(s, "## Designs\n");
    for f in &d.designs {
        let _ = writeln!(
            s,
            "- **{}**: {} (branch `{}`)",
            f.design,
            if f.migrations.is_empty() {
                "no migration".to_string()
            } else {
                f.migrations.join(", ")
            },
            f.branch
        );
    }
    let _ = writeln!(s, "\n## Figures\n");
    let _ = writeln!(
        s,
        "| design | p50 ms | p95 ms | p99 ms | mean ms | tx/s | tables | database | fork ms | migrate ms |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &d.designs {
        let _ = writeln!(
            s,
            "| {}{} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {} | {} | {:.0} | {:.0} |",
            f.design,
            if f.design == d.chosen { " ✓" } else { "" },
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            f.mean_ms,
            f.throughput_tps,
            bytes(f.tables_bytes),
            bytes(f.database_bytes),
            f.fork_ms,
            f.migrate_ms
        );
    }
    let _ = writeln!(s, "\n## Decision\n");
    let _ = writeln!(
        s,
        "**{}** is kept (branch `{}`, which expires a day after the experiment like every \
         experiment branch; `lakelet branch expire {} --never` keeps it).{}",
        d.chosen,
        d.kept_branch,
        d.kept_branch,
        match &d.reason {
            Some(r) => format!(" {r}"),
            None => String::new(),
        }
    );
    if !d.soft_deleted.is_empty() {
        let _ = writeln!(
            s,
            "\nThe other designs' branches were soft-deleted (`lakelet branch undelete NAME` \
             brings one back while it is retained): {}.",
            d.soft_deleted
                .iter()
                .map(|b| format!("`{b}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_become_file_names() {
        assert_eq!(
            slug("Columns vs. an inventory_attributes lookup!"),
            "columns-vs-an-inventory-attributes-lookup"
        );
        assert_eq!(slug("???"), "decision");
    }
}
