//! What CI runs, the same on a GitHub runner and on a laptop with no cloud: `lakelet ci pr`
//! (a fresh database branch per run, migrated, linted and tested, with the schema-diff
//! comment) and `lakelet ci cleanup-orphans`. `lakelet ci merge` is in merge.rs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::forge::{Forge, Run, Step};
use super::git::Git;
use super::{Ctx, Env, LintLevel, Project};
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::db::Db;
use crate::migrate::run::Runner;

/// The database branch of run `seq` of PR `number`: forked anew for that run alone, so a run
/// never inherits what an earlier (red) run left behind.
pub fn ci_branch(number: u64, seq: u64) -> String {
    format!("ci-pr-{number}-{seq}")
}

/// The PR a CI branch belongs to: `ci-pr-7-2`, or `ci-pr-7` as lakelet named them before.
pub fn ci_branch_pr(name: &str) -> Option<u64> {
    name.strip_prefix("ci-pr-")?.split('-').next()?.parse().ok()
}

/// Whether the name `b` is taken, by a live or a soft-deleted branch.
fn taken(env: &Env, b: &str) -> Result<bool> {
    match env.api.get(b) {
        Ok(_) => Ok(true),
        Err(e) if crate::api::client::is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Soft-deletes the branches the runs of PR `number` forked (as their records say), but
/// `keep`: the workflow touches only what it recorded as its own, and a soft delete can be
/// undone (`lakelet branch undelete`). A new run retires the earlier runs' branches; a merge
/// or an abandon, all of them.
pub(super) fn retire_runs(
    env: &Env,
    forge: &Forge,
    number: u64,
    keep: Option<&str>,
) -> Result<Vec<String>> {
    let mut gone = vec![];
    for r in forge.runs_of(number)? {
        let Some(b) = r
            .branch
            .filter(|b| Some(b.as_str()) != keep && ci_branch_pr(b) == Some(number))
        else {
            continue;
        };
        if !gone.contains(&b) && env.exists(&b)? {
            env.api
                .delete(&b, false)
                .with_context(|| format!("soft-deleting the run's branch '{b}'"))?;
            gone.push(b);
        }
    }
    Ok(gone)
}

/// The tier a PR merges into: `--base`, else the local PR's record.
pub(super) fn base_of(
    p: &Project,
    forge: &Forge,
    number: u64,
    base: Option<&str>,
) -> Result<String> {
    let base = match base {
        Some(b) => b.to_string(),
        None => {
            forge
                .pr(number)?
                .with_context(|| {
                    format!(
                    "there is no local pull request #{number}; pass its base tier with --base TIER"
                )
                })?
                .base
        }
    };
    if !p.is_tier(&base) {
        bail!(
            "the PR's base '{base}' is not a tier in lakelet.toml ({}); PRs merge into a tier",
            p.policy
                .tiers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(base)
}

fn step(steps: &mut Vec<Step>, name: &str, r: Result<String>) -> bool {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(e) => (false, format!("{e:#}")),
    };
    eprintln!("{} {name}: {detail}", if ok { "✓" } else { "✗" });
    steps.push(Step {
        name: name.into(),
        ok,
        detail,
    });
    ok
}

/// Runs the project's test command against `url`; its output goes to `log`.
fn run_tests(p: &Project, url: &str, log: &Path) -> Result<String> {
    let Some(cmd) = &p.test_command else {
        return Ok("no test command ([ci] test in lakelet.toml); skipped".into());
    };
    std::fs::create_dir_all(log.parent().expect("a file"))?;
    let out = std::fs::File::create(log)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(&p.dir)
        .env("DATABASE_URL", url)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("running `{cmd}`"))?;
    if !status.success() {
        bail!(
            "`{cmd}` failed ({status}); its output is in {}",
            log.display()
        );
    }
    Ok(format!("`{cmd}` passed (output in {})", log.display()))
}

/// `lakelet ci pr --number N`: forks (or reuses) `ci-pr-N` from the PR's base tier, applies
/// the migrations, runs the tests with DATABASE_URL, writes the schema-diff comment. The run
/// is recorded, green or red; a red run is also an error.
pub fn pr(cx: &Ctx, number: u64, base: Option<&str>, comment: Option<PathBuf>) -> Result<Run> {
    let (p, env, git, forge) = (cx.project, cx.env, cx.git, cx.forge);
    let base = base_of(p, forge, number, base)?;
    let sha = git.head()?;
    let mut ci = ci_branch(number, forge.next_seq("ci", number)?);
    let started_at = super::state::now();
    let mut steps = vec![];
    let fork = (|| -> Result<String> {
        // Runs at once may pick the same next number: the first to fork it has it.
        for _ in 0..20 {
            if !taken(env, &ci)? {
                break;
            }
            let seq = ci.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
            ci = ci_branch(number, seq.unwrap_or(0) + 1);
        }
        create_ci(env, &ci, &base)?;
        let retired = retire_runs(env, forge, number, Some(&ci))?;
        Ok(format!(
            "forked '{ci}' from '{base}' for this run{}",
            if retired.is_empty() {
                String::new()
            } else {
                format!("; soft-deleted the earlier runs' {}", retired.join(", "))
            }
        ))
    })();
    let mut green = step(&mut steps, "fork", fork);
    let url = if green {
        Some((env.connect)(&ci)?)
    } else {
        None
    };
    if let Some(url) = &url {
        let migrated = (|| -> Result<String> {
            let scripts = p.scripts()?;
            let db = Db::connect(url)?;
            let settings = p.settings.clone().with_builtins(&db)?;
            let r = Runner::new(&db, &settings, &scripts)?.migrate(false)?;
            if let Some(f) = &r.failed {
                bail!("{f}");
            }
            Ok(format!(
                "{} migrations applied; schema version {}",
                r.applied.len(),
                r.schema_version_after.as_deref().unwrap_or("none")
            ))
        })();
        green = step(&mut steps, "migrate", migrated);
        if green {
            green = step(&mut steps, "lint", lint_gate(p, env, &base));
        }
        if green {
            let log = forge
                .logs()
                .join(format!("{ci}-{}.log", &sha[..12.min(sha.len())]));
            green = step(&mut steps, "test", run_tests(p, url, &log));
        }
    }
    let mut comment_path = None;
    if let Some(url) = &url {
        let path = comment.unwrap_or_else(|| forge.logs().join(format!("{ci}-schema-diff.md")));
        let diff = (|| -> Result<String> {
            let base_url = (env.connect)(&base)?;
            let plan = crate::diff::compare(&base_url, url)?;
            let report = crate::diff::Report {
                base: base.clone(),
                target: ci.clone(),
                plan,
                lint: crate::diff::lint_pending(&base_url, &p.settings, &p.scripts()?)
                    .unwrap_or_default(),
            };
            std::fs::create_dir_all(path.parent().expect("a file"))?;
            std::fs::write(&path, crate::diff::render::markdown(&report))?;
            Ok(format!(
                "{} changes against '{base}'; comment in {}",
                report.plan.changes.len(),
                path.display()
            ))
        })();
        if step(&mut steps, "schema-diff", diff) {
            comment_path = Some(path);
        } else {
            green = false;
        }
    }
    let run = forge.record(Run {
        id: String::new(),
        url: String::new(),
        kind: "ci".into(),
        pr: number,
        sha,
        conclusion: if green { "success" } else { "failure" }.into(),
        started_at,
        finished_at: super::state::now(),
        steps,
        comment: comment_path,
        snapshot: None,
        branch: Some(ci.clone()),
        by: None,
        by_role: None,
    })?;
    env.record(
        "ci.pr",
        &ci,
        serde_json::json!({ "pr": number, "base": base, "sha": run.sha, "run": run.url }),
        &if green {
            Ok(())
        } else {
            Err(anyhow::anyhow!("red"))
        },
    );
    Ok(run)
}

/// Lint findings on the PR's pending migrations fail the run at `[ci] lint = "error"` (the
/// default) unless acknowledged in the file (`-- lakelet:allow RULE reason`); at "warn" they
/// are reported only.
fn lint_gate(p: &Project, env: &Env, base: &str) -> Result<String> {
    let lints = crate::diff::lint_pending(&(env.connect)(base)?, &p.settings, &p.scripts()?)?;
    let open: Vec<String> = lints
        .iter()
        .flat_map(|f| {
            f.findings.iter().filter(|x| x.blocks()).map(move |x| {
                format!(
                    "{}:{} {}: {} (fix: {})",
                    f.file, x.line, x.rule, x.message, x.fix
                )
            })
        })
        .collect();
    let acked: usize = lints
        .iter()
        .map(|f| {
            f.findings
                .iter()
                .filter(|x| x.acknowledged.is_some())
                .count()
        })
        .sum();
    if open.is_empty() {
        return Ok(format!("no open findings ({acked} acknowledged)"));
    }
    if p.lint == LintLevel::Warn {
        return Ok(format!(
            "{} findings, reported only ([ci] lint = \"warn\"): {}",
            open.len(),
            open.join("; ")
        ));
    }
    bail!(
        "{} lint findings block the run ([ci] lint = \"error\"); apply the fix, or acknowledge \
         one with `-- lakelet:allow RULE reason` in the file:\n    {}",
        open.len(),
        open.join("\n    ")
    )
}

fn create_ci(env: &Env, ci: &str, base: &str) -> Result<()> {
    env.api
        .create(
            ci,
            BranchSpec {
                source_branch: Some(env.api.branch_name(base)),
                ttl: Some("604800s".into()),
                ..Default::default()
            },
        )
        .map(|_| ())
        .with_context(|| format!("forking '{ci}' from '{base}'"))
}

/// `lakelet ci cleanup-orphans`: soft-deletes the branches CI runs forked for PRs no longer
/// open, and feature branches whose PR was merged or closed or whose git branch is gone.
/// Only branches the workflow recorded (a run's branch, a PR's database branch) are touched. Open PRs are
/// the local forge's, or `open` when the caller knows them (a GitHub workflow passes
/// `gh pr list`'s numbers).
pub fn cleanup_orphans(
    env: &Env,
    git: &Git,
    forge: &Forge,
    open: Option<&[u64]>,
    dry_run: bool,
) -> Result<Vec<String>> {
    let prs = forge.list()?;
    let is_open = |n: u64| match open {
        Some(list) => list.contains(&n),
        None => prs.iter().any(|p| p.number == n && p.state == "open"),
    };
    let mut doomed = vec![];
    for b in env.api.list(false)? {
        let Some(id) = b.branch_id.clone().or_else(|| {
            b.name
                .as_deref()
                .and_then(|n| n.rsplit('/').next())
                .map(str::to_string)
        }) else {
            continue;
        };
        if let Some(n) = ci_branch_pr(&id) {
            // Only a branch a recorded run forked: a `ci-pr-…` someone made by hand stays.
            let recorded = forge
                .runs_of(n)?
                .iter()
                .any(|r| r.branch.as_deref() == Some(id.as_str()));
            if recorded && !is_open(n) {
                doomed.push(id);
            }
            continue;
        }
        let Some(pr) = prs
            .iter()
            .filter(|p| p.database_branch.as_deref() == Some(id.as_str()))
            .max_by_key(|p| p.number)
        else {
            continue;
        };
        let git_gone = !git.has_branch(&pr.head)
            && (!git.has_remote("origin") || git.remote_head("origin", &pr.head)?.is_none());
        if !is_open(pr.number) || git_gone {
            doomed.push(id);
        }
    }
    if !dry_run {
        for b in &doomed {
            let r = env.api.delete(b, false);
            env.record("ci.cleanup", b, serde_json::json!({}), &r);
            r.with_context(|| format!("deleting the orphan '{b}'"))?;
        }
    }
    Ok(doomed)
}
