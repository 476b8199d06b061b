//! `lakelet migrate …`: the migration runner against a branch (through the daemon or
//! Lakebase) or any Postgres URL. The work is `crate::migrate`'s; this resolves the target,
//! gathers settings (flags over lakelet.toml's `[migrations]` over FLYWAY_PLACEHOLDERS_*),
//! and prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::print;
use crate::api::lakebase::client::{Branches, TargetKind};
use crate::migrate::corrupt::Corruption;
use crate::migrate::db::Db;
use crate::migrate::run::{MigrateReport, Runner};
use crate::migrate::script::{self, Kind, Version};
use crate::migrate::{lint, placeholders, rehearse, Settings};

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: MigrateCmd,
}

#[derive(Args, Default)]
struct Common {
    /// The branch to migrate (through the proxy, or the Lakebase endpoint with --target
    /// lakebase).
    #[arg(long, global = true, conflicts_with = "url")]
    branch: Option<String>,
    /// Any Postgres: postgresql://user:pass@host:port/db (sslmode=require for TLS).
    #[arg(long, global = true)]
    url: Option<String>,
    /// The database on the branch.
    #[arg(long, global = true, default_value = "postgres")]
    database: String,
    /// The migrations directory (default: lakelet.toml's [migrations] dir, else ./migrations).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// The schema holding the history table.
    #[arg(long, global = true)]
    schema: Option<String>,
    /// The history table.
    #[arg(long, global = true)]
    table: Option<String>,
    /// A placeholder value, NAME=VALUE (repeatable); replaces ${NAME} in scripts.
    #[arg(long = "placeholder", global = true, value_name = "NAME=VALUE")]
    placeholders: Vec<String>,
    /// Apply a version older than the newest applied one instead of refusing it.
    #[arg(long, global = true)]
    out_of_order: bool,
    /// How long to wait for another runner's lock.
    #[arg(long, global = true, default_value = "60s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// Recorded as installed_by (default: the connecting user or principal).
    #[arg(long, global = true)]
    installed_by: Option<String>,
    /// Apply only up to this version.
    #[arg(long = "target-version", global = true)]
    target_version: Option<String>,
}

#[derive(Subcommand)]
enum MigrateCmd {
    /// Apply every pending migration (each in its own transaction).
    Migrate {
        /// Print what would run (placeholders replaced), change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Every migration and its state.
    Info,
    /// Check the applied migrations against the files (checksums, missing, failed, pending).
    Validate {
        /// Pending migrations are fine (they only mean the database is behind).
        #[arg(long)]
        ignore_pending: bool,
    },
    /// Remove failed entries, realign checksums with the files, mark missing files deleted.
    Repair,
    /// Start a history for an existing database at a version (migrations up to it never run).
    Baseline {
        #[arg(long, default_value = "1")]
        version: String,
        #[arg(long, default_value = crate::migrate::history::BASELINE_DESCRIPTION)]
        description: String,
    },
    /// Revert the most recently applied migration with its U<version>__….sql file.
    Undo,
    /// On a throwaway branch: apply each pending migration, run it again, and check the
    /// second run succeeds and changes nothing. The branch is deleted afterwards.
    Rehearse {
        /// Damage a slice of a column first (repeatable, combinable):
        /// [SCHEMA.]TABLE.COLUMN[:PERCENT][@RECIPE,…] (default 1%). Recipes: missing-digit,
        /// embedded-space, trailing-blank, wrong-case, null, out-of-range-date,
        /// duplicate-key, overlong-string (default for text: the first three).
        #[arg(long, value_name = "TABLE.COLUMN[:PCT][@RECIPE,…]")]
        corrupt: Vec<Corruption>,
        /// Picks which rows --corrupt damages.
        #[arg(long, default_value_t = 42)]
        seed: u32,
        /// Keep the branch for inspection.
        #[arg(long)]
        keep: bool,
        /// Show this many of the rows that break a migration (every one is counted).
        #[arg(long, default_value_t = 20)]
        rows: usize,
    },
    /// Flag dangerous or locking changes. With --branch/--url, only pending migrations.
    Lint {
        /// Lint these files instead of the directory.
        files: Vec<PathBuf>,
    },
}

/// Where the migrations are and how to run them.
struct Project {
    dir: PathBuf,
    settings: Settings,
}

fn project(c: &Common) -> Result<Project> {
    let cfg = super::config::load()?;
    let base = cfg.base_dir();
    let m = &cfg.migrations;
    let dir = match (&c.dir, &m.dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => base.join(d),
        (None, None) => base.join("migrations"),
    };
    let mut values = m.placeholders.clone();
    values.extend(placeholders::from_env());
    for p in &c.placeholders {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--placeholder {p:?}: write NAME=VALUE");
        };
        values.insert(k.to_string(), v.to_string());
    }
    let target = match &c.target_version {
        Some(t) => Some(
            Version::parse(t)
                .with_context(|| format!("--target-version {t:?} is not a version"))?,
        ),
        None => None,
    };
    Ok(Project {
        dir,
        settings: Settings {
            schema: c
                .schema
                .clone()
                .or(m.schema.clone())
                .unwrap_or("public".into()),
            table: c
                .table
                .clone()
                .or(m.table.clone())
                .unwrap_or("flyway_schema_history".into()),
            placeholders: values,
            out_of_order: c.out_of_order || m.out_of_order.unwrap_or(false),
            lock_timeout: c.lock_timeout,
            installed_by: c.installed_by.clone(),
            target,
        },
    })
}

/// The migrations directory and settings lakelet.toml gives, `dir` overriding the directory:
/// what `lakelet diff` lints, read the way `lakelet migrate` reads them.
pub(super) fn configured(dir: Option<PathBuf>) -> Result<(PathBuf, Settings)> {
    let p = project(&Common {
        dir,
        ..Default::default()
    })?;
    Ok((p.dir, p.settings))
}

/// The script names (`V2__x.sql`) not yet applied on the database at `url`.
fn pending_on(url: &str, settings: &Settings, scripts: &[script::Script]) -> Result<Vec<String>> {
    let db = Db::connect(url)?;
    let runner = Runner::new(&db, settings, scripts)?;
    let applied = runner.history()?;
    let plan = runner.plan(&applied);
    Ok(plan.pending().iter().map(|s| s.script.clone()).collect())
}

/// The connection string and the user to record for the target.
fn connection(dd: &Path, api: Option<&Branches>, c: &Common) -> Result<(String, Option<String>)> {
    match (&c.url, &c.branch) {
        (Some(u), _) => Ok((u.clone(), None)),
        (None, Some(b)) => {
            let api = api.context("no Branches API client")?;
            let info = super::connect::target_info(dd, api, b, &c.database, false)?;
            Ok((info.url, Some(info.user)))
        }
        (None, None) => bail!("name the database: --branch NAME or --url postgresql://…"),
    }
}

pub fn run(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    args: MigrateArgs,
) -> Result<()> {
    let c = &args.common;
    let proj = project(c)?;
    if let MigrateCmd::Lint { files } = &args.cmd {
        return lint_cmd(dd, json, target, project_flag, c, &proj, files);
    }
    let scripts = script::load(&proj.dir)?;
    let api = match &c.branch {
        Some(_) => Some(super::config::branches(dd, target, project_flag)?),
        None => None,
    };
    if let MigrateCmd::Rehearse {
        corrupt,
        seed,
        keep,
        rows,
    } = args.cmd
    {
        let (Some(api), Some(branch)) = (&api, &c.branch) else {
            bail!("rehearse forks a throwaway branch: name the branch to fork with --branch NAME");
        };
        let database = c.database.clone();
        let connect = |b: &str| -> Result<String> {
            Ok(super::connect::target_info(dd, api, b, &database, false)?.url)
        };
        let mut settings = proj.settings.clone();
        if settings.installed_by.is_none() {
            settings.installed_by = connection(dd, Some(api), c)?.1;
        }
        let opts = rehearse::Options {
            corrupt,
            seed,
            keep,
            row_limit: rows,
            // Feature-name globs commonly allow `{principal}-*`.
            prefix: match crate::api::client::acting_principal()? {
                Some((name, _)) => format!("{name}-rehearse"),
                None => "rehearse".into(),
            },
        };
        let r = rehearse::rehearse(api, &connect, branch, &settings, &scripts, &opts)?;
        print(json, &r, rehearse_text);
        if !r.ok {
            bail!("the rehearsal found problems (see above); nothing outside the throwaway branch changed");
        }
        return Ok(());
    }
    let (url, user) = connection(dd, api.as_ref(), c)?;
    let db = Db::connect(&url)?;
    let mut settings = proj.settings.clone();
    if settings.installed_by.is_none() {
        settings.installed_by = user;
    }
    let settings = settings.with_builtins(&db)?;
    let runner = Runner::new(&db, &settings, &scripts)?;
    match args.cmd {
        MigrateCmd::Migrate { dry_run } => {
            let r = runner.migrate(dry_run)?;
            print(json, &r, migrate_text);
            if let Some(f) = &r.failed {
                if json {
                    bail!("migration {} failed", f.script);
                }
                bail!("{f}");
            }
        }
        MigrateCmd::Info => {
            let applied = runner.history()?;
            let plan = runner.plan(&applied);
            let info = plan.info();
            print(json, &info, |i| info_text(&db.label, plan.current(), i));
        }
        MigrateCmd::Validate { ignore_pending } => {
            let applied = runner.history()?;
            let plan = runner.plan(&applied);
            let mut problems = plan.problems(!ignore_pending);
            // Every file that would run must also be runnable as written.
            for s in scripts.iter().filter(|s| s.kind != Kind::Undo) {
                if let Err(e) = crate::migrate::run::prepare(s, &settings) {
                    problems.push(format!("{e:#}"));
                }
            }
            let v = serde_json::json!({
                "database": db.label,
                "valid": problems.is_empty(),
                "migrations": scripts.len(),
                "problems": problems,
            });
            if json {
                print(true, &v, |_| String::new());
            }
            if !problems.is_empty() {
                bail!(
                    "validation of {} failed:\n  {}",
                    db.label,
                    problems.join("\n  ")
                );
            }
            if !json {
                println!(
                    "validated {} migrations against {}: the history matches the files",
                    scripts.len(),
                    db.label
                );
            }
        }
        MigrateCmd::Repair => {
            let done = runner.repair()?;
            print(json, &done, |d| {
                if d.is_empty() {
                    "nothing to repair".into()
                } else {
                    d.join("\n")
                }
            });
        }
        MigrateCmd::Baseline {
            version,
            description,
        } => {
            let v = Version::parse(&version)
                .with_context(|| format!("--version {version:?} is not a version"))?;
            runner.baseline(&v, &description)?;
            let out = serde_json::json!({"database": db.label, "baseline": v.to_string()});
            print(json, &out, |_| {
                format!(
                    "{}: history started at version {v} (migrations up to it will not run)",
                    db.label
                )
            });
        }
        MigrateCmd::Undo => match runner.undo()? {
            Ok(ran) => print(json, &ran, |r| {
                format!(
                    "undid version {} with {} ({} ms)",
                    r.version.as_deref().unwrap_or("?"),
                    r.script,
                    r.execution_time_ms
                )
            }),
            Err(f) => bail!("{f}"),
        },
        MigrateCmd::Rehearse { .. } | MigrateCmd::Lint { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn lint_cmd(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    c: &Common,
    proj: &Project,
    files: &[PathBuf],
) -> Result<()> {
    // (script name, text) of what to lint.
    let mut inputs: Vec<(String, String)> = vec![];
    let mut base: Option<Db> = None;
    if !files.is_empty() {
        for f in files {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            inputs.push((f.display().to_string(), text));
        }
    } else {
        let scripts = script::load(&proj.dir)?;
        let only: Option<Vec<String>> = if c.branch.is_some() || c.url.is_some() {
            let api = match &c.branch {
                Some(_) => Some(super::config::branches(dd, target, project_flag)?),
                None => None,
            };
            let (url, _) = connection(dd, api.as_ref(), c)?;
            base = Some(Db::connect(&url)?);
            Some(pending_on(&url, &proj.settings, &scripts)?)
        } else {
            None
        };
        for s in scripts.iter().filter(|s| s.kind != Kind::Undo) {
            if only.as_ref().is_none_or(|o| o.contains(&s.script)) {
                inputs.push((s.script.clone(), s.text.clone()));
            }
        }
    }
    let mut all = vec![];
    let project = crate::migrate::refactor::transitions::project_of(&proj.dir);
    for (name, text) in &inputs {
        let mut findings =
            lint::lint(text).map_err(|e| anyhow::anyhow!("{name}:{}: {}", e.line, e.message))?;
        findings.extend(crate::migrate::refactor::transitions::lint_contract(
            &project,
            text,
            base.as_ref(),
        )?);
        for f in findings {
            all.push(serde_json::json!({
                "script": name, "rule": f.rule, "line": f.line, "statement": f.statement,
                "message": f.message, "fix": f.fix, "acknowledged": f.acknowledged,
                "advice": f.is_advice(), "blocks": f.blocks(),
            }));
        }
    }
    let open = all.iter().filter(|f| f["blocks"] == true).count();
    let out = serde_json::json!({"files": inputs.len(), "findings": all, "unacknowledged": open});
    print(json, &out, |o| {
        let mut s = String::new();
        for f in o["findings"].as_array().into_iter().flatten() {
            s += &format!(
                "{}:{}: [{}] {}\n    {}\n    fix: {}\n",
                f["script"].as_str().unwrap_or(""),
                f["line"],
                f["rule"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or(""),
                f["statement"].as_str().unwrap_or(""),
                f["fix"].as_str().unwrap_or(""),
            );
            if let Some(r) = f["acknowledged"].as_str() {
                s += &format!(
                    "    acknowledged: {}\n",
                    if r.is_empty() { "(no reason given)" } else { r }
                );
            } else if f["advice"] == true {
                s += "    advice: reported, does not fail lint\n";
            }
        }
        let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
        s += &format!(
            "{}, {}, {open} to fix or acknowledge (with a `-- lakelet:allow RULE reason` \
             comment above the statement)",
            n(inputs.len(), "file"),
            n(all.len(), "finding")
        );
        s
    });
    if open > 0 {
        let s = if open == 1 {
            "finding is"
        } else {
            "findings are"
        };
        bail!("{open} lint {s} not acknowledged");
    }
    Ok(())
}

fn migrate_text(r: &MigrateReport) -> String {
    let mut s = String::new();
    if r.dry_run {
        if r.would_run.is_empty() {
            return format!("{}: up to date, nothing would run", r.database);
        }
        for w in &r.would_run {
            s += &format!(
                "-- {} ({}, {})\n{}\n\n",
                w.script,
                w.version
                    .as_deref()
                    .map_or("repeatable".into(), |v| format!("version {v}")),
                if w.transactional {
                    "one transaction"
                } else {
                    "no transaction"
                },
                w.sql.trim_end()
            );
        }
        s += &format!(
            "-- dry run: {} migrations would run on {}; nothing changed",
            r.would_run.len(),
            r.database
        );
        return s;
    }
    for a in &r.applied {
        s += &format!(
            "applied {} ({} statements, {} rows, {} ms)\n",
            a.script, a.statements, a.rows_affected, a.execution_time_ms
        );
    }
    let v = |o: &Option<String>| o.clone().unwrap_or("<empty>".into());
    if r.applied.is_empty() && r.failed.is_none() {
        s += &format!(
            "{}: up to date at version {}",
            r.database,
            v(&r.schema_version_after)
        );
    } else {
        s += &format!(
            "{}: {} migrations applied, version {} → {}",
            r.database,
            r.applied.len(),
            v(&r.schema_version_before),
            v(&r.schema_version_after)
        );
    }
    s
}

fn info_text(db: &str, current: Option<Version>, rows: &[crate::migrate::plan::Info]) -> String {
    let mut s = format!(
        "{db}: schema version {}\n{:<10} {:<8} {:<36} {:<9} {:<23} {}\n",
        current.map(|v| v.to_string()).unwrap_or("<empty>".into()),
        "CATEGORY",
        "VERSION",
        "DESCRIPTION",
        "TYPE",
        "INSTALLED ON",
        "STATE"
    );
    for r in rows {
        s += &format!(
            "{:<10} {:<8} {:<36} {:<9} {:<23} {:?}{}\n",
            r.category,
            r.version.as_deref().unwrap_or(""),
            r.description.chars().take(36).collect::<String>(),
            r.kind,
            r.installed_on.as_deref().unwrap_or(""),
            r.state,
            if r.checksum_mismatch {
                " (checksum mismatch)"
            } else {
                ""
            }
        );
    }
    s.trim_end().to_string()
}

fn rehearse_text(r: &rehearse::Report) -> String {
    let mut s = format!("rehearsal of '{}' on '{}'\n", r.source, r.branch);
    for c in &r.corrupted {
        let by: Vec<String> = c
            .recipes
            .iter()
            .map(|(r, n)| format!("{n} {}", r.name()))
            .collect();
        s += &format!(
            "corrupted {} rows of {}.{}: {}\n",
            c.rows,
            c.table,
            c.column,
            by.join(", ")
        );
    }
    if r.migrations.is_empty() {
        s += "nothing pending: every migration is already applied\n";
    }
    for m in &r.migrations {
        s += &format!("{}\n", m.script);
        if let Some(f) = &m.failed {
            s += &format!(
                "  FAILED at line {}: {}\n  {}\n",
                f.line,
                f.sql,
                f.error.replace('\n', "\n  ")
            );
            if let Some(br) = &f.breaking {
                s += &format!(
                    "  {} rows of {} break it{}:\n",
                    br.count,
                    br.table,
                    if m.breaking_by_recipe.is_empty() {
                        String::new()
                    } else {
                        let by: Vec<String> = m
                            .breaking_by_recipe
                            .iter()
                            .map(|(r, n)| format!("{n} {r}"))
                            .collect();
                        format!(" ({})", by.join(", "))
                    }
                );
                if (br.sample.len() as u64) < br.count {
                    s += &format!("  the first {}:\n", br.sample.len());
                }
                for b in &br.sample {
                    s += &format!(
                        "    ctid {} {}\n      {}\n",
                        b.ctid,
                        b.row,
                        b.error.lines().next().unwrap_or("")
                    );
                }
            }
        }
        if let Some(a) = &m.first_run {
            s += &format!(
                "  first run: ok ({} statements, {} rows, {} ms)\n",
                a.statements, a.rows_affected, a.execution_time_ms
            );
        }
        if let Some(sr) = &m.second_run {
            if let Some(e) = &sr.error {
                s += &format!(
                    "  second run: FAILED, not idempotent: {}\n",
                    e.replace('\n', "\n    ")
                );
            } else if !sr.changed.is_empty() {
                s += &format!(
                    "  second run: changed the schema, not idempotent:\n    {}\n",
                    sr.changed.join("\n    ")
                );
            } else {
                s += &format!(
                    "  second run: ok, schema unchanged ({} rows touched)\n",
                    sr.rows_affected
                );
            }
        }
    }
    s += &format!(
        "{}; branch '{}' {}",
        if r.ok {
            "rehearsal passed"
        } else {
            "rehearsal FAILED"
        },
        r.branch,
        if r.kept { "kept" } else { "deleted" }
    );
    s
}
