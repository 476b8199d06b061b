//! What CI runs, the same on a GitHub runner and on a laptop with no cloud:
//! `lakelet ci pr` (a private database per PR, migrated and tested, with the schema-diff
//! comment), `lakelet ci merge` (the tier migrated behind a snapshot, ephemeral branches
//! deleted) and `lakelet ci cleanup-orphans`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::forge::{Forge, Run, Step};
use super::git::Git;
use super::tiers::{self, Guard, TierChange};
use super::{Ctx, Env, Project};
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::db::Db;
use crate::migrate::history::Applied;
use crate::migrate::run::Runner;

/// The per-PR database branch.
pub fn ci_branch(number: u64) -> String {
    format!("ci-pr-{number}")
}

/// The tier a PR merges into: `--base`, else the local PR's record.
fn base_of(p: &Project, forge: &Forge, number: u64, base: Option<&str>) -> Result<String> {
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

/// Whether `ci` still stands on `base` as it is now: forked from it, from the timeline the
/// base is on (a rollback moves it), and carrying the base's whole migration history as a
/// prefix (a merge of another PR moves it). Data written to the base since does not count.
fn still_on(env: &Env, p: &Project, ci: &str, base: &str) -> Result<bool> {
    let b = env.api.get(ci)?;
    let source = b.status.and_then(|s| s.source_branch).unwrap_or_default();
    if source != env.api.branch_name(base) && source != base {
        return Ok(false);
    }
    if (env.on_timeline)(ci, base)? == Some(false) {
        return Ok(false);
    }
    let key = |a: &Applied| (a.version.clone(), a.script.clone(), a.checksum, a.success);
    let on_base: Vec<_> = tiers::history(env, p, base)?.iter().map(key).collect();
    let on_ci: Vec<_> = tiers::history(env, p, ci)?.iter().map(key).collect();
    Ok(on_ci.len() >= on_base.len() && on_ci[..on_base.len()] == on_base[..])
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
    let ci = ci_branch(number);
    let started_at = super::state::now();
    let mut steps = vec![];
    let fork = (|| -> Result<String> {
        if env.exists(&ci)? {
            if still_on(env, p, &ci, &base)? {
                return Ok(format!(
                    "reused '{ci}': '{base}' has not moved since it was forked"
                ));
            }
            env.api.delete(&ci, true)?;
            create_ci(env, &ci, &base)?;
            return Ok(format!(
                "'{base}' moved since '{ci}' was forked: recreated it"
            ));
        }
        create_ci(env, &ci, &base)?;
        Ok(format!("forked '{ci}' from '{base}'"))
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

#[derive(Debug, Serialize)]
pub struct Merged {
    pub pr: u64,
    pub tier: String,
    pub change: TierChange,
    pub deleted: Vec<String>,
    pub run: Run,
}

/// `lakelet ci merge --number N`: snapshots the base tier, applies the migrations to it, and
/// on success deletes `ci-pr-N` and the feature branch (and the snapshot); on failure the
/// snapshot stays for `lakelet rollback` and every branch stays for diagnosis.
pub fn merge(
    cx: &Ctx,
    number: u64,
    base: Option<&str>,
    feature: Option<&str>,
    undo_on_failure: bool,
) -> Result<Merged> {
    let (p, env, git, forge) = (cx.project, cx.env, cx.git, cx.forge);
    let base = base_of(p, forge, number, base)?;
    let ci = ci_branch(number);
    let pr = forge.pr(number)?;
    let feature = feature
        .map(str::to_string)
        .or_else(|| pr.as_ref().and_then(|p| p.database_branch.clone()));
    // The grant is for moving this PR's branch into the tier: the PR's own database branch,
    // which the daemon knows was forked from `base`.
    let from = if env.exists(&ci)? {
        ci.clone()
    } else {
        feature.clone().with_context(|| {
            format!("neither '{ci}' nor the feature's database branch exists; run `lakelet ci pr --number {number}` first")
        })?
    };
    let started_at = super::state::now();
    let change = tiers::migrate_behind_snapshot(
        p,
        env,
        &from,
        &base,
        &format!("merge-pr-{number}"),
        Guard {
            target: None,
            keep_on_success: false,
            undo_on_failure,
        },
    )?;
    let mut deleted = vec![];
    let mut steps = vec![Step {
        name: "migrate".into(),
        ok: change.ok,
        detail: match &change.migrate.failed {
            None => format!(
                "{} migrations applied to '{base}'",
                change.migrate.applied.len()
            ),
            Some(f) => f.to_string(),
        },
    }];
    if change.ok {
        for b in [Some(ci.clone()), feature.clone()].into_iter().flatten() {
            if env.exists(&b)? {
                env.api
                    .delete(&b, true)
                    .with_context(|| format!("'{base}' is migrated; deleting '{b}' failed"))?;
                deleted.push(b);
            }
        }
        steps.push(Step {
            name: "cleanup".into(),
            ok: true,
            detail: format!("deleted {}", deleted.join(", ")),
        });
    }
    let run = forge.record(Run {
        id: String::new(),
        url: String::new(),
        kind: "merge".into(),
        pr: number,
        sha: git.head()?,
        conclusion: if change.ok { "success" } else { "failure" }.into(),
        started_at,
        finished_at: super::state::now(),
        steps,
        comment: None,
        snapshot: change.snapshot_kept.then(|| change.snapshot.clone()),
    })?;
    let r = if change.ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!("migration failed"))
    };
    env.record(
        "ci.merge",
        &base,
        serde_json::json!({ "pr": number, "snapshot": change.snapshot, "deleted": deleted }),
        &r,
    );
    Ok(Merged {
        pr: number,
        tier: base,
        change,
        deleted,
        run,
    })
}

/// `lakelet ci cleanup-orphans`: deletes `ci-pr-N` branches whose PR is no longer open, and
/// feature branches whose PR was merged or closed or whose git branch is gone. Open PRs are
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
        if let Some(n) = id
            .strip_prefix("ci-pr-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if !is_open(n) {
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
            let r = env.api.delete(b, true);
            env.record("ci.cleanup", b, serde_json::json!({}), &r);
            r.with_context(|| format!("deleting the orphan '{b}'"))?;
        }
    }
    Ok(doomed)
}
