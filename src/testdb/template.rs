//! `lakelet test template`: find or build the template for the project's migrations and seeds.
//!
//! The name is `[PRINCIPAL-]template-<12 hex of a SHA-256>` over everything that decides the
//! template's content: who builds it, the source branch (name and uid: a reset, restore or
//! promotion gives it a new one), every migration file (path and bytes), the runner's
//! settings, every seed file. Any
//! change makes a new name, so a stale template is never reused; the old one is not touched
//! and goes when its TTL ends (soft-deleted, then purged like any snapshot).
//!
//! Building: fork `<template>-build` from the source, migrate it, run the seeds in file-name
//! order (each in one transaction), stop its compute (a clean shutdown: forks start without
//! crash recovery), snapshot it as the template, purge the build branch. A failure at any
//! step removes the build branch and names the file; no template is created.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::api::client::is_not_found;
use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::db::Db;
use crate::migrate::run::Runner;
use crate::migrate::script::{self, Script};
use crate::migrate::Settings;

/// What a template is built from.
pub struct Spec {
    /// The branch the template forks (a tier, or the empty root).
    pub from: String,
    pub migrations: PathBuf,
    /// Seed files (`*.sql`, run in name order after the migrations), if any.
    pub seeds: Option<PathBuf>,
    pub settings: Settings,
    /// How long an unused template is kept.
    pub ttl: Duration,
    /// Build again even if a template with this hash exists.
    pub rebuild: bool,
    /// A principal's branches are named `{principal}-…` (feature-name globs).
    pub prefix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Template {
    pub name: String,
    pub hash: String,
    pub from: String,
    /// Built now (else found).
    pub built: bool,
    pub migrations: usize,
    pub seeds: Vec<String>,
    pub elapsed_ms: u64,
}

/// Side effects the template needs from the daemon beyond the Branches client: a connection
/// string for a branch, and stopping a branch's compute.
pub trait Daemon {
    fn url(&self, branch: &str) -> Result<String>;
    fn stop(&self, branch: &str) -> Result<()>;
}

/// The seed files of `dir`: `*.sql`, sorted by name. A missing directory is an error (it was
/// asked for); an empty one is fine.
pub fn seed_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!(
            "the seeds directory {} does not exist (set [test] seeds in lakelet.toml, or pass \
             --seeds DIR; leave both out for no seeds)",
            dir.display()
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// The template's name for this content.
pub fn hash(
    from: &str,
    from_uid: &str,
    scripts: &[Script],
    settings: &Settings,
    seeds: &[(String, Vec<u8>)],
) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut put = |tag: &str, bytes: &[u8]| {
        // Length-prefixed, so no two different inputs concatenate to the same bytes.
        h.update(tag.as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    put("lakelet-template", b"1");
    put("from", from.as_bytes());
    put("uid", from_uid.as_bytes());
    put("schema", settings.schema.as_bytes());
    put("table", settings.table.as_bytes());
    for (k, v) in &settings.placeholders {
        put("placeholder", format!("{k}={v}").as_bytes());
    }
    let mut scripts: Vec<&Script> = scripts.iter().collect();
    scripts.sort_by(|a, b| a.script.cmp(&b.script));
    for s in scripts {
        put("migration", s.script.as_bytes());
        put("text", s.text.as_bytes());
        put("no-transaction", &[s.no_transaction as u8]);
    }
    for (name, bytes) in seeds {
        put("seed", name.as_bytes());
        put("text", bytes);
    }
    let d = h.finish();
    format!("template-{}", &crate::util::hex(d.as_ref())[..12])
}

/// Finds the template for `spec`, or builds it. `progress` gets a line per step.
pub fn ensure(
    api: &Branches,
    daemon: &dyn Daemon,
    spec: &Spec,
    progress: &mut dyn FnMut(&str),
) -> Result<Template> {
    let t0 = Instant::now();
    let scripts = script::load(&spec.migrations)?;
    let seed_paths = match &spec.seeds {
        Some(d) => seed_files(d)?,
        None => vec![],
    };
    let mut seeds = vec![];
    for p in &seed_paths {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        seeds.push((name, bytes));
    }
    let source = api
        .get(&spec.from)
        .with_context(|| format!("the template's source branch '{}'", spec.from))?;
    let uid = source.uid.clone().unwrap_or_default();
    // A template is its builder's: the policy decides a fork of it as of any snapshot, so
    // an agent forks the templates it built (from tiers it may create from), not another's.
    let name = match &spec.prefix {
        Some(p) => format!(
            "{p}-{}",
            hash(
                &format!("{p}@{}", spec.from),
                &uid,
                &scripts,
                &spec.settings,
                &seeds
            )
        ),
        None => hash(&spec.from, &uid, &scripts, &spec.settings, &seeds),
    };
    let found = |built: bool| Template {
        name: name.clone(),
        hash: name.rsplit('-').next().unwrap_or_default().to_string(),
        from: spec.from.clone(),
        built,
        migrations: scripts.len(),
        seeds: seeds.iter().map(|(n, _)| n.clone()).collect(),
        elapsed_ms: t0.elapsed().as_millis() as u64,
    };
    let live = api
        .list_snapshots()?
        .iter()
        .any(|s| s.snapshot_id.as_deref() == Some(name.as_str()));
    if live && !spec.rebuild {
        progress(&format!("template {name} is up to date"));
        return Ok(found(false));
    }
    // The name is a hash only `lakelet test` makes: a live one (--rebuild) or one its TTL
    // soft-deleted is ours to remove before building the same content again.
    if let Err(e) = api.delete_snapshot(&name) {
        if !is_not_found(&e) {
            return Err(e.context(format!("removing the old template {name}")));
        }
    }
    // Named like a feature of its builder (`{principal}-…` globs).
    let build = format!("{name}-build");
    progress(&format!(
        "building template {name} from '{}': {} migrations, {} seed files",
        spec.from,
        scripts.len(),
        seeds.len()
    ));
    // A build killed midway left this name (nothing but a build makes it).
    if let Err(e) = api.delete(&build, true) {
        if !is_not_found(&e) {
            return Err(e.context(format!("removing the unfinished build branch {build}")));
        }
    }
    api.create(
        &build,
        BranchSpec {
            source_branch: Some(api.branch_name(&spec.from)),
            ttl: Some("3600s".into()),
            ..Default::default()
        },
    )
    .with_context(|| format!("forking the build branch {build} from '{}'", spec.from))?;
    let r = fill(
        api,
        daemon,
        spec,
        &build,
        &name,
        &scripts,
        &seed_paths,
        progress,
    );
    let purge = api.delete(&build, true);
    r?;
    purge.with_context(|| format!("removing the build branch {build}"))?;
    progress(&format!("template {name} ready"));
    Ok(found(true))
}

#[allow(clippy::too_many_arguments)]
fn fill(
    api: &Branches,
    daemon: &dyn Daemon,
    spec: &Spec,
    build: &str,
    name: &str,
    scripts: &[Script],
    seeds: &[PathBuf],
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    {
        let db = Db::connect(&daemon.url(build)?)?;
        let settings = spec.settings.clone().with_builtins(&db)?;
        let runner = Runner::new(&db, &settings, scripts)?;
        let r = runner.migrate(false)?;
        if let Some(f) = &r.failed {
            bail!(
                "migration {} failed, so no template was made: {f}",
                spec.migrations.join(&f.script).display()
            );
        }
        progress(&format!("  {} migrations applied", r.applied.len()));
        for p in seeds {
            let sql = std::fs::read_to_string(p)
                .with_context(|| format!("reading the seed file {}", p.display()))?;
            db.exec("BEGIN")?;
            if let Err(e) = db.exec(&sql) {
                let _ = db.exec("ROLLBACK");
                bail!(
                    "seed file {} failed, so no template was made: {e}",
                    p.display()
                );
            }
            db.exec("COMMIT")
                .with_context(|| format!("committing the seed file {}", p.display()))?;
            progress(&format!("  seeded {}", p.display()));
        }
    }
    daemon.stop(build)?;
    api.create_snapshot_with_ttl(name, build, &format!("{}s", spec.ttl.as_secs()))
        .with_context(|| format!("snapshotting {build} as {name}"))?;
    Ok(())
}
