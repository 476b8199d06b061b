//! What CI runs, the same on a GitHub runner and on a laptop with no cloud:
//! `lakelet ci pr` (a private database per PR, migrated and tested, with the schema-diff
//! comment), `lakelet ci merge` (the tier migrated behind a snapshot, ephemeral branches
//! deleted) and `lakelet ci cleanup-orphans`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::forge::{Forge, Pr, Run, Step};
use super::git::Git;
use super::tiers::{self, Guard, TierChange};
use super::{Ctx, Env, LintLevel, Preconditions, Project};
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::db::Db;
use crate::migrate::history::Applied;
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

/// Soft-deletes the branches earlier runs of PR `number` forked (as their records say), but
/// `keep`: the workflow touches only what it recorded as its own, and a soft delete can be
/// undone (`lakelet branch undelete`).
fn retire_runs(env: &Env, forge: &Forge, number: u64, keep: &str) -> Result<Vec<String>> {
    let mut gone = vec![];
    for r in forge.runs_of(number)? {
        let Some(b) = r
            .branch
            .filter(|b| b != keep && ci_branch_pr(b) == Some(number))
        else {
            continue;
        };
        if !gone.contains(&b) && env.exists(&b)? {
            env.api
                .delete(&b, false)
                .with_context(|| format!("soft-deleting the earlier run's branch '{b}'"))?;
            gone.push(b);
        }
    }
    Ok(gone)
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
        let retired = retire_runs(env, forge, number, &ci)?;
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
            f.findings
                .iter()
                .filter(|x| x.acknowledged.is_none())
                .map(move |x| {
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

#[derive(Debug, Serialize)]
pub struct Merged {
    pub pr: u64,
    pub tier: String,
    /// The commit merged: the PR head the green run tested.
    pub sha: String,
    pub change: TierChange,
    pub deleted: Vec<String>,
    pub run: Run,
    /// This principal also merged the head into the tier's git branch, pushed it and marked
    /// the PR merged: the handoff, for a PR another principal opened.
    pub handed_off: bool,
}

/// How `ci merge` runs.
pub struct MergeHow<'a> {
    /// The tier (default: the PR's).
    pub base: Option<&'a str>,
    /// The feature's database branch (default: the PR's).
    pub feature: Option<&'a str>,
    /// Repoint the tier at its snapshot when a migration fails (the `scm merge` gate).
    pub undo_on_failure: bool,
    /// Merge the PR's head into the tier's git branch, push it, and mark the PR merged.
    pub git: bool,
}

/// The commit a merge takes: origin's head of the PR's branch when the PR is recorded (the
/// merger's clone need not have it checked out), else HEAD.
fn merge_sha(git: &Git, pr: Option<&Pr>) -> Result<String> {
    match pr {
        Some(pr) if git.has_remote("origin") => {
            git.remote_head("origin", &pr.head)?.with_context(|| {
                format!(
                    "origin has no branch '{}' (pull request #{}'s head)",
                    pr.head, pr.number
                )
            })
        }
        _ => git.head(),
    }
}

/// Whether a run's verdict is one a merge trusts: recorded by the merger itself, or by a
/// principal whose role may merge. An author's own green run is not a review.
fn trusted(p: &Project, env: &Env, run: &Run) -> bool {
    match (&run.by, &run.by_role) {
        // A record in the git directory (against Lakebase): no principals to tell apart.
        (None, _) => true,
        (Some(by), _) if *by == env.principal => true,
        (_, Some(role)) => p
            .policy
            .roles
            .get(role)
            .is_some_and(|r| r.promote && !r.agent),
        _ => false,
    }
}

/// Every failed precondition of a merge of PR `number` at `sha` into `base`, whose newest CI
/// run of `sha` is `run`.
fn merge_checks(
    cx: &Ctx,
    number: u64,
    pr: Option<&Pr>,
    base: &str,
    sha: &str,
    run: Option<&Run>,
    how: &MergeHow,
) -> Result<()> {
    let (p, env, git) = (cx.project, cx.env, cx.git);
    let mut pre = Preconditions::default();
    let short = &sha[..12.min(sha.len())];
    if let Some(pr) = pr {
        pre.check(pr.state == "open", || {
            format!(
                "pull request #{number} is {} (by {})",
                pr.state,
                pr.closed_by.as_deref().unwrap_or("someone")
            )
        });
        pre.check(pr.base == base, || {
            format!(
                "pull request #{number} merges into '{}', not '{base}'",
                pr.base
            )
        });
        // Approvals count for the head they looked at, and never the opener's own.
        let approved: Vec<&str> = pr
            .approvals
            .iter()
            .filter(|a| a.sha == sha && pr.opened_by.as_deref() != Some(a.by.as_str()))
            .map(|a| a.by.as_str())
            .collect();
        pre.check(approved.len() >= p.approvals, || {
            format!(
                "pull request #{number} has {} approval(s) of {short}{}, and [ci] approvals asks \
                 for {}; a reviewer runs `lakelet scm approve {number}`",
                approved.len(),
                if approved.is_empty() {
                    String::new()
                } else {
                    format!(" (by {})", approved.join(", "))
                },
                p.approvals
            )
        });
    } else if how.git {
        pre.fail(format!("there is no pull request #{number} to merge"));
    }
    match run {
        // A PR this forge does not keep was merged by its own forge (GitHub), whose checks
        // gated it; its runs ran in other jobs, against other daemons.
        None if pr.is_none() => {}
        None => pre.fail(format!(
            "no CI run has tested {short} (pull request #{number}'s head); `lakelet ci pr --number {number}` first"
        )),
        Some(r) if !r.green() => pre.fail(format!(
            "the CI run {} of {short} is red; fix it, push, and run CI again",
            r.id
        )),
        Some(r) if !trusted(p, env, r) => pre.fail(format!(
            "the green run {} was recorded by {} (role {}), whose role may not merge; a merge \
             trusts runs by CI or a maintainer: `lakelet ci pr --number {number}` as one",
            r.id,
            r.by.as_deref().unwrap_or("?"),
            r.by_role.as_deref().unwrap_or("?")
        )),
        Some(r) => {
            // The run tested the PR on the tier as it was; if another merge (or a rollback)
            // moved the tier since, that verdict is stale.
            if let Some(b) = r.branch.as_deref().filter(|b| env.exists(b).unwrap_or(false)) {
                if !still_on(env, p, b, base)? {
                    pre.fail(format!(
                        "'{base}' moved since {} tested the PR (another merge or a rollback); \
                         merge '{base}' into the feature's branch, push, and run CI again",
                        r.id
                    ));
                }
            }
        }
    }
    if how.git {
        pre.check(git.dirty()?.is_empty(), || {
            "the merger's work tree has uncommitted changes".into()
        });
        match git.merges_cleanly(&format!("origin/{base}"), sha) {
            Ok(true) => {}
            Ok(false) => pre.fail(format!(
                "{short} does not merge cleanly into '{base}'; merge '{base}' into the feature's branch, push, and run CI again"
            )),
            Err(e) => pre.fail(format!("{e:#}")),
        }
    }
    pre.verdict("ci merge")
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

/// Merges `sha` into the tier's git branch as origin has it, and pushes.
fn git_merge(git: &Git, base: &str, sha: &str, title: &str) -> Result<()> {
    if git.has_branch(base) {
        git.out(&["switch", "--quiet", base])?;
        git.out(&["merge", "--quiet", "--ff-only", &format!("origin/{base}")])?;
    } else {
        git.out(&[
            "switch",
            "--quiet",
            "--track",
            "-c",
            base,
            &format!("origin/{base}"),
        ])?;
    }
    git.out(&["merge", "--no-ff", "--quiet", "-m", title, sha])?;
    git.out(&["push", "--quiet", "origin", base])?;
    Ok(())
}

/// `lakelet ci merge --number N`: checks the PR is open, its head tested green (by a run a
/// merge trusts) on the tier as it is now; snapshots the tier, applies the migrations, and on
/// success (with `how.git`) merges and pushes the head and marks the PR merged, then
/// soft-deletes the PR's run branches and feature branch. The snapshot is kept for
/// `[ci] snapshot_ttl` (2 days unless declared) and then expires, so a bad merge found the
/// next morning can still be rolled back; every branch stays after a failure, for diagnosis.
pub fn merge(cx: &Ctx, number: u64, how: MergeHow) -> Result<Merged> {
    let (p, env, git, forge) = (cx.project, cx.env, cx.git, cx.forge);
    let pr = forge.pr(number)?;
    let base = base_of(p, forge, number, how.base)?;
    if how.git && git.has_remote("origin") {
        git.out(&["fetch", "--quiet", "origin"])?;
    }
    let sha = merge_sha(git, pr.as_ref())?;
    let run = forge
        .runs_of(number)?
        .into_iter()
        .filter(|r| r.kind == "ci" && r.sha == sha)
        .next_back();
    let feature = how
        .feature
        .map(str::to_string)
        .or_else(|| pr.as_ref().and_then(|p| p.database_branch.clone()));
    // The grant is for moving this PR's branch into the tier: the run's branch, else the
    // PR's own database branch, which the daemon knows was forked from `base`. It is asked
    // for first: the daemon's decision (with its rule) is the first thing a principal that
    // may not merge hears, and it is the one decision the merge takes.
    let from = [run.as_ref().and_then(|r| r.branch.clone()), feature.clone()]
        .into_iter()
        .flatten()
        .find(|b| env.exists(b).unwrap_or(false));
    let granted = match &from {
        Some(from) => Some((env.grant)(from, &base).map_err(|e| {
            anyhow::anyhow!(
                "merge refused: {e:#}\nhand pull request #{number} to a principal that may \
                 merge (CI or a maintainer runs `lakelet ci merge --number {number}`); then \
                 `lakelet scm merge` in the feature's clone records it. Nothing was changed"
            )
        })?),
        None => None,
    };
    merge_checks(cx, number, pr.as_ref(), &base, &sha, run.as_ref(), &how)?;
    if how.git {
        // The migrations that go in are the PR head's, whatever the merger had checked out.
        git.out(&["checkout", "--quiet", "--detach", &sha])?;
    }
    let (Some(from), Some(granted)) = (from, granted) else {
        bail!("neither the run's branch nor the feature's database branch exists; run `lakelet ci pr --number {number}` again");
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
            keep_on_success: true,
            undo_on_failure: how.undo_on_failure,
            snapshot_ttl: Some(p.merge_snapshot_ttl),
            granted: Some(granted),
        },
    )?;
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
    let mut deleted = vec![];
    if change.ok {
        if how.git {
            let title = format!(
                "Merge {} (#{number})",
                pr.as_ref().map(|p| p.head.as_str()).unwrap_or("?")
            );
            git_merge(git, &base, &sha, &title).with_context(|| {
                format!("'{base}' is migrated, but the git merge did not finish; finish it by hand (`git merge {sha}` on '{base}', `git push`), then `lakelet ci merge` again marks the PR")
            })?;
            let mut pr = pr.clone().expect("checked");
            forge.set_state(&mut pr, "merged")?;
        }
        let mut doomed: Vec<String> = forge
            .runs_of(number)?
            .into_iter()
            .filter_map(|r| r.branch)
            .filter(|b| ci_branch_pr(b) == Some(number))
            .collect();
        doomed.extend(feature.clone());
        for b in doomed {
            if !deleted.contains(&b) && env.exists(&b)? {
                env.api
                    .delete(&b, false)
                    .with_context(|| format!("'{base}' is migrated; soft-deleting '{b}' failed"))?;
                deleted.push(b);
            }
        }
        steps.push(Step {
            name: "cleanup".into(),
            ok: true,
            detail: format!("soft-deleted {}", deleted.join(", ")),
        });
    }
    let run = forge.record(Run {
        id: String::new(),
        url: String::new(),
        kind: "merge".into(),
        pr: number,
        sha: sha.clone(),
        conclusion: if change.ok { "success" } else { "failure" }.into(),
        started_at,
        finished_at: super::state::now(),
        steps,
        comment: None,
        snapshot: change.snapshot_kept.then(|| change.snapshot.clone()),
        branch: Some(from),
        by: None,
        by_role: None,
    })?;
    let r = if change.ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!("migration failed"))
    };
    env.record(
        "ci.merge",
        &base,
        serde_json::json!({ "pr": number, "sha": sha, "snapshot": change.snapshot, "deleted": deleted }),
        &r,
    );
    Ok(Merged {
        pr: number,
        tier: base,
        sha,
        change,
        deleted,
        run,
        handed_off: how.git,
    })
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
