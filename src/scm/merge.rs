//! `lakelet ci merge`: a PR into its tier. One decision first (the daemon's write grant for
//! the move), then every precondition (open, approved, green by a run a merge trusts, that
//! run still standing on the tier, a clean git merge), then the tier migrated behind a
//! snapshot; for a PR another principal opened, the git merge, the push and the PR's state
//! too (the handoff).

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::forge::{Pr, Run, Step};
use super::git::Git;
use super::pipeline::{base_of, retire_runs};
use super::tiers::{self, Guard, TierChange};
use super::{Ctx, Env, Preconditions, Project};
use crate::migrate::history::Applied;

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
    git.switch_to_origins(base)?;
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
        .rfind(|r| r.kind == "ci" && r.sha == sha);
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
        deleted = retire_runs(env, forge, number, None)
            .with_context(|| format!("'{base}' is migrated, but its cleanup did not finish"))?;
        if let Some(f) = feature.clone().filter(|f| !deleted.contains(f)) {
            if env.exists(&f)? {
                env.api
                    .delete(&f, false)
                    .with_context(|| format!("'{base}' is migrated; soft-deleting '{f}' failed"))?;
                deleted.push(f);
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
