//! diff: a semantic schema diff between two databases, with hazards and a migration.
//!
//! Works on any two Postgres databases reachable by connection strings (branches are resolved
//! to URLs, and point-in-time sides forked, by the CLI through the Branches API client). The
//! diff reads catalogs, never a text dump, so it knows what depends on what.
//!
//! - `model.rs`: object identities and what is compared.
//! - `catalog/`: reading one database (one query per object kind).
//! - `plan/`: classify, propagate to dependents, order by pg_depend, emit SQL with online
//!   forms and a hazard for every risk.
//! - `render.rs`: text, markdown (the PR comment), json and sql.
//!
//! Invariant the tests hold it to: applying `plan(a, b).script` to `a` makes `plan(a', b)`
//! empty, and `plan(x, x)` is empty.

pub mod catalog;
pub mod model;
pub mod plan;
pub mod probe;
pub mod render;

use anyhow::Result;
use serde::Serialize;

use crate::migrate::db::Db;
use crate::migrate::lint::Finding;

/// A finished comparison: what the CLI prints in any format.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the user called each side (`staging`, `feature@0/1A2B3C`, a URL without its
    /// password).
    pub base: String,
    pub target: String,
    #[serde(flatten)]
    pub plan: plan::Plan,
    /// Findings of the migrations that go with the change (`--migrations`), by file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lint: Vec<FileLint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileLint {
    pub file: String,
    pub findings: Vec<Finding>,
}

/// Reads both sides and plans the migration from `base` to `target`.
pub fn compare(base_url: &str, target_url: &str) -> Result<plan::Plan> {
    let db = Db::connect(base_url)?;
    let base = catalog::read(&db)?;
    let target = read(target_url)?;
    let mut plan = plan::plan(&base, &target);
    probe::probe(&db, &base, &target, &mut plan)?;
    Ok(plan)
}

/// Lint findings of the migrations in `scripts` not yet applied on the database at
/// `base_url` (what a PR would apply there), read with the migration runner's `settings`.
pub fn lint_pending(
    base_url: &str,
    settings: &crate::migrate::Settings,
    scripts: &[crate::migrate::script::Script],
) -> Result<Vec<FileLint>> {
    let db = Db::connect(base_url)?;
    let runner = crate::migrate::run::Runner::new(&db, settings, scripts)?;
    let applied = runner.history()?;
    let plan = runner.plan(&applied);
    let mut out = vec![];
    // Every script is in the one migrations directory, of the one project.
    let project = scripts
        .first()
        .map(|s| crate::migrate::refactor::transitions::project_of(&s.path));
    for s in plan.pending() {
        let mut findings = crate::migrate::lint::lint(&s.text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", s.script))?;
        // A refactoring's contract: refused before its transition ends or while the base
        // still has readers of the old shape.
        if let Some(project) = &project {
            findings.extend(crate::migrate::refactor::transitions::lint_contract(
                project,
                &s.text,
                Some(&db),
            )?);
        }
        out.push(FileLint {
            file: s.script.clone(),
            findings,
        });
    }
    Ok(out)
}

/// Connects and reads one side's catalog.
pub fn read(url: &str) -> Result<catalog::Catalog> {
    let db = Db::connect(url)?;
    catalog::read(&db)
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.plan.changes.is_empty()
    }
}
