//! lakelet.toml, as far as the CLI needs it today: the project id and which target (the local
//! daemon or a Lakebase workspace) the branch commands talk to.
//!
//! ```toml
//! [project]
//! id = "my-app"        # the Lakebase project; also the local daemon's project id
//!
//! [target]
//! default = "local"    # or "lakebase" (host and token from DATABRICKS_HOST / DATABRICKS_TOKEN)
//! ```
//! Other tables are left to the layers that own them. The file is found in the working
//! directory or the nearest ancestor, like git finds its repository.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::api::lakebase::client::{Branches, TargetKind};
use crate::api::lakebase::validate::check_id;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    // The policy's tables (tiers, roles, …) are read by the policy layer.
    pub project: ProjectTable,
    pub target: TargetTable,
    pub migrations: MigrationsTable,
    pub ci: CiTable,
    /// `[tdd]`: the opt-in TDD layer (src/tdd).
    pub tdd: crate::tdd::Config,
    /// `[test]`: a fresh database per test (`lakelet test`).
    pub test: TestTable,
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectTable {
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetTable {
    pub default: Option<TargetKind>,
}

/// `[ci]`: what `lakelet ci pr` runs against the PR's database branch.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CiTable {
    /// The project's test command, run by `sh -c` in the project directory with
    /// DATABASE_URL set.
    pub test: Option<String>,
    /// Whether lint findings on a PR's migrations fail its run: "error" (the default) or
    /// "warn".
    pub lint: Option<crate::scm::LintLevel>,
    /// How long the pre-migration snapshot of a merge is kept (`2d` unless given).
    pub snapshot_ttl: Option<String>,
    /// How many approvals, by principals other than its opener, a PR needs before `ci
    /// merge` (0 unless given).
    pub approvals: Option<usize>,
}

/// `[migrations]`: where the files are and how the runner treats them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationsTable {
    /// The migrations directory, relative to lakelet.toml (default: `migrations`).
    pub dir: Option<PathBuf>,
    /// The schema of the history table (default: `public`).
    pub schema: Option<String>,
    /// The history table (default: `flyway_schema_history`).
    pub table: Option<String>,
    pub out_of_order: Option<bool>,
    pub placeholders: std::collections::BTreeMap<String, String>,
}

impl Config {
    /// The directory paths in lakelet.toml are relative to (its own; `.` without one).
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// `[test]`: how `lakelet test` builds its template and sizes its pool.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestTable {
    /// Seed files (`*.sql`, run in name order after the migrations), relative to
    /// lakelet.toml. None by default.
    pub seeds: Option<PathBuf>,
    /// The branch templates fork (default: the root branch).
    pub from: Option<String>,
    /// Branches kept ready (default 4).
    pub pool: Option<i64>,
    /// The most the pool's ready computes may take, in MiB (default: no bound).
    pub memory_budget_mb: Option<u64>,
    /// How long an unused template is kept (default `7d`).
    pub template_ttl: Option<String>,
}

/// The nearest lakelet.toml at or above `dir`.
fn find(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("lakelet.toml"))
        .find(|p| p.is_file())
}

/// Reads lakelet.toml if there is one; a malformed file is an error naming the line.
pub fn load() -> Result<Config> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let Some(path) = find(&cwd) else {
        return Ok(Config::default());
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut c: Config =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(id) = &c.project.id {
        check_id("[project] id", id).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    c.path = Some(path);
    Ok(c)
}

/// The nearest lakelet.toml, if it declares a policy (tiers, roles, …).
pub fn policy_file() -> Result<Option<PathBuf>> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let Some(path) = find(&cwd) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(crate::policy::file::declares_policy(&text).then_some(path))
}

/// The project id: `--project`, else lakelet.toml, else `local`.
pub fn project_id(flag: Option<&str>) -> Result<String> {
    if let Some(p) = flag {
        check_id("--project", p).map_err(anyhow::Error::msg)?;
        return Ok(p.to_string());
    }
    Ok(load()?.project.id.unwrap_or_else(|| "local".into()))
}

/// The Branches API client for `--target` (else lakelet.toml's, else local).
pub fn branches(
    data_dir: &Path,
    target: Option<TargetKind>,
    project: Option<&str>,
) -> Result<Branches> {
    let cfg = load()?;
    match target.or(cfg.target.default).unwrap_or(TargetKind::Local) {
        TargetKind::Local => Branches::local(data_dir),
        TargetKind::Lakebase => {
            let host = std::env::var("DATABRICKS_HOST").unwrap_or_default();
            let token = std::env::var("DATABRICKS_TOKEN").unwrap_or_default();
            let project = match project.map(str::to_string).or(cfg.project.id) {
                Some(p) => p,
                None => bail!(
                    "the Lakebase target needs a project: pass --project ID or set [project] id \
                     in lakelet.toml"
                ),
            };
            Branches::lakebase(&host, &token, &project)
        }
    }
}
