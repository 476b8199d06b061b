//! `lakelet diff [BASE] TARGET`: the semantic schema diff between two branches (or any two
//! databases), as text, markdown (the PR comment), json or a SQL migration.
//!
//! A side written `branch@lsn` or `branch@timestamp` is read from a throwaway branch forked
//! at that point (Lakebase works the same way: a point in time is reached by a branch), and
//! the fork is deleted afterwards, even on error.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::BranchSpec;
use crate::diff::{self, render, FileLint, Report};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Sql,
}

#[derive(Args)]
pub struct DiffArgs {
    /// `[BASE] TARGET`: branch names, each optionally `@LSN` or `@TIMESTAMP` (RFC 3339).
    /// With only TARGET, BASE is the branch TARGET was forked from.
    #[arg(value_name = "BRANCH", num_args = 0..=2)]
    branches: Vec<String>,
    /// Compare this database as BASE instead of a branch.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Compare this database as TARGET instead of a branch.
    #[arg(long, value_name = "URL")]
    target_url: Option<String>,
    /// The database to compare on branch sides.
    #[arg(long, default_value = "postgres")]
    database: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Lint these migrations (default: lakelet.toml's [migrations] dir, when it exists) and
    /// show the findings with the diff; only files not yet applied on BASE are linted.
    #[arg(long, value_name = "DIR")]
    migrations: Option<PathBuf>,
    /// Exit 1 when the schemas differ (like `git diff --exit-code`).
    #[arg(long)]
    exit_code: bool,
}

/// A branch side, possibly at a point in time.
struct Side {
    branch: String,
    at: Option<String>,
}

fn side(s: &str) -> Result<Side> {
    let (branch, at) = match s.rsplit_once('@') {
        Some((b, a)) if !b.is_empty() && !a.is_empty() => (b, Some(a.to_string())),
        Some(_) => {
            bail!("{s:?}: write BRANCH, BRANCH@LSN (0/16B3748) or BRANCH@TIMESTAMP (RFC 3339)")
        }
        None => (s, None),
    };
    Ok(Side {
        branch: branch.to_string(),
        at,
    })
}

/// Throwaway branches forked for point-in-time sides; deleted when dropped.
struct Forks<'a> {
    api: Option<&'a Branches>,
    names: Vec<String>,
}

impl Drop for Forks<'_> {
    fn drop(&mut self) {
        if let Some(api) = self.api {
            for n in &self.names {
                if let Err(e) = api.delete(n, true) {
                    eprintln!("warning: could not delete the throwaway branch '{n}': {e:#}; `lakelet branch delete {n}` removes it");
                }
            }
        }
    }
}

pub fn run(
    dd: &Path,
    json: bool,
    target_kind: Option<crate::api::lakebase::client::TargetKind>,
    project: Option<&str>,
    a: DiffArgs,
) -> Result<()> {
    let format = if json { Format::Json } else { a.format };
    let needs_api = a.base_url.is_none() || a.target_url.is_none();
    if a.branches.len() + usize::from(a.base_url.is_some()) + usize::from(a.target_url.is_some())
        > 2
    {
        bail!("name two sides: `lakelet diff BASE TARGET`, `lakelet diff TARGET` (against its parent), or --base-url/--target-url");
    }
    if a.branches.is_empty() && a.target_url.is_none() {
        bail!("nothing to compare: name a TARGET branch (`lakelet diff feature`) or give --base-url and --target-url");
    }
    let api = if needs_api {
        Some(super::config::branches(dd, target_kind, project)?)
    } else {
        None
    };
    let mut forks = Forks {
        api: api.as_ref(),
        names: vec![],
    };
    // Which branch names fill which side.
    let (base_spec, target_spec) = match (&a.base_url, &a.target_url, a.branches.as_slice()) {
        (None, None, [t]) => (None, Some(t.clone())),
        (None, None, [b, t]) => (Some(b.clone()), Some(t.clone())),
        (Some(_), None, [t]) => (None, Some(t.clone())),
        (None, Some(_), [b]) => (Some(b.clone()), None),
        (Some(_), Some(_), []) => (None, None),
        _ => bail!("name two sides: `lakelet diff BASE TARGET`, `lakelet diff TARGET`, or --base-url/--target-url"),
    };
    let (target_url, target_label) = match (&a.target_url, &target_spec) {
        (Some(u), _) => (u.clone(), redact(u)),
        (None, Some(t)) => resolve(
            dd,
            api.as_ref().unwrap(),
            &side(t)?,
            &a.database,
            &mut forks,
        )?,
        _ => unreachable!(),
    };
    let (base_url, base_label) = match (&a.base_url, &base_spec) {
        (Some(u), _) => (u.clone(), redact(u)),
        (None, Some(b)) => resolve(
            dd,
            api.as_ref().unwrap(),
            &side(b)?,
            &a.database,
            &mut forks,
        )?,
        (None, None) => {
            let t = side(target_spec.as_deref().unwrap())?;
            let api = api.as_ref().unwrap();
            let parent = parent_of(api, &t.branch)?;
            resolve(
                dd,
                api,
                &Side {
                    branch: parent,
                    at: None,
                },
                &a.database,
                &mut forks,
            )?
        }
    };
    let plan = diff::compare(&base_url, &target_url)?;
    let lint = lint(a.migrations.as_deref(), &base_url)?;
    let report = Report {
        base: base_label,
        target: target_label,
        plan,
        lint,
    };
    drop(forks);
    let out = match format {
        Format::Text => render::text(&report),
        Format::Markdown => render::markdown(&report),
        Format::Json => render::json(&report),
        Format::Sql => render::sql(&report),
    };
    print!("{out}");
    if a.exit_code && !report.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// A connection string (and a label) for a branch side; a point-in-time side is forked.
fn resolve(
    dd: &Path,
    api: &Branches,
    s: &Side,
    database: &str,
    forks: &mut Forks,
) -> Result<(String, String)> {
    let Some(at) = &s.at else {
        let info = super::connect::target_info(dd, api, &s.branch, database, false)?;
        return Ok((info.url, s.branch.clone()));
    };
    let prefix = match crate::api::client::acting_principal()? {
        Some((name, _)) => format!("{name}-diff"),
        None => "diff".into(),
    };
    let name = crate::util::throwaway_name(&prefix, &s.branch);
    let mut spec = BranchSpec {
        source_branch: Some(api.branch_name(&s.branch)),
        ttl: Some("3600s".into()),
        ..Default::default()
    };
    match super::branch::at_field(at) {
        ("lsn", v) => spec.source_branch_lsn = Some(v),
        (_, v) => spec.source_branch_time = Some(v),
    }
    eprintln!("forking '{name}' from '{}' at {at}…", s.branch);
    api.create(&name, spec)
        .with_context(|| format!("reading '{}' at {at}", s.branch))?;
    forks.names.push(name.clone());
    let info = super::connect::target_info(dd, api, &name, database, false)?;
    Ok((info.url, format!("{}@{at}", s.branch)))
}

/// The branch `branch` was forked from.
fn parent_of(api: &Branches, branch: &str) -> Result<String> {
    let b = api
        .get(branch)
        .with_context(|| format!("looking up branch '{branch}'"))?;
    let src = b
        .status
        .and_then(|s| s.source_branch)
        .with_context(|| format!("branch '{branch}' has no parent (it is a root); name the base: `lakelet diff BASE {branch}`"))?;
    Ok(src.rsplit('/').next().unwrap_or(&src).to_string())
}

/// A URL without its password, for reports.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Lint findings of the migrations not yet applied on BASE. Without `--migrations`, the
/// configured directory is linted only if it exists.
fn lint(dir: Option<&Path>, base_url: &str) -> Result<Vec<FileLint>> {
    let explicit = dir.is_some();
    let (dir, settings) = super::migrate::configured(dir.map(Path::to_path_buf))?;
    if !explicit && !dir.is_dir() {
        return Ok(vec![]);
    }
    let scripts = crate::migrate::script::load(&dir)?;
    diff::lint_pending(base_url, &settings, &scripts)
}
