//! `lakelet scm merge`: the feature's own merge, or the record of one another principal made
//! (the handoff).

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::super::state::{self, Phase, WorkflowState};
use super::super::{Ctx, Preconditions};
use super::{pushed_at, pushed_head};

/// What `scm merge` did: merged the feature itself, or found it merged by a principal that
/// may merge (the handoff) and recorded that.
#[derive(Debug, Serialize)]
pub struct MergeOutcome {
    pub state: WorkflowState,
    /// Set when this principal merged it.
    pub merged: Option<crate::scm::merge::Merged>,
    pub pr: crate::scm::forge::Pr,
}

/// `lakelet scm merge`: only when CI is green for HEAD. The tier is migrated first, behind a
/// snapshot (rolled back if a migration fails, before git is touched); then git merges and
/// pushes the tier's branch; then the ephemeral branches go. When a principal that may merge
/// (CI, a maintainer) has already carried the PR to merged (`lakelet ci merge`), the gate
/// checks that merge and records it; when this principal may not merge, it says whom to
/// hand the PR to.
pub fn merge(cx: &Ctx) -> Result<MergeOutcome> {
    let r = (|| {
        let s = cx.load()?;
        // Merged already by a principal that may merge (the handoff): record it.
        if s.state == Phase::CiGreen {
            if let Ok(pr) = cx.forge.pr_at(s.get("pr_url")) {
                if pr.state == "merged" {
                    return adopt(cx, s, pr);
                }
            }
        }
        let mut pre = Preconditions::default();
        let found = pushed_at(cx, &s, Phase::CiGreen, &mut pre);
        if let Some((head, _)) = &found {
            match cx.forge.run_at(s.get("ci_run_url")) {
                Ok(run) if run.green() && &run.sha == head => {}
                Ok(run) if !run.green() => pre.fail(format!("the CI run {} is red", run.url)),
                Ok(run) => pre.fail(format!(
                    "CI was green for {}, but HEAD is {}; run `lakelet scm wait-ci` again",
                    &run.sha[..12],
                    &head[..12]
                )),
                Err(e) => pre.fail(format!("{e:#}")),
            }
            let tier = s.get("parent_branch");
            match cx.git.merges_cleanly(tier, s.get("branch")) {
                Ok(true) => {}
                Ok(false) => pre.fail(format!(
                    "'{}' does not merge cleanly into '{tier}'; merge '{tier}' into it, push, and wait for CI again",
                    s.get("branch")
                )),
                Err(e) => pre.fail(format!("{e:#}")),
            }
        }
        pre.verdict("merge")?;
        let (_, pr) = found.expect("checked");
        let tier = s.get("parent_branch").to_string();
        let branch = s.get("branch").to_string();
        let how = crate::scm::merge::MergeHow {
            base: Some(&tier),
            feature: pr.database_branch.as_deref(),
            undo_on_failure: true,
            git: false,
        };
        let merged = crate::scm::merge::merge(cx, pr.number, how)?;
        if !merged.change.ok {
            bail!(
                "merge refused; migrating '{tier}' failed and it was rolled back to '{}': {}\n\
                 git was not touched and the state stays ci-green",
                merged.change.snapshot,
                merged
                    .change
                    .migrate
                    .failed
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            );
        }
        let git = (|| -> Result<()> {
            cx.git.out(&["switch", "--quiet", &tier])?;
            cx.git.out(&[
                "merge",
                "--no-ff",
                "--quiet",
                "-m",
                &format!("Merge {branch} (#{})", pr.number),
                &branch,
            ])?;
            cx.git.out(&["push", "--quiet", "origin", &tier])?;
            Ok(())
        })();
        git.with_context(|| format!("'{tier}' is migrated, but the git merge did not finish; finish it by hand (`git merge {branch}` on '{tier}', `git push`), then run `lakelet scm doctor`"))?;
        let mut pr = pr;
        cx.forge.set_state(&mut pr, "merged")?;
        let next = WorkflowState {
            state: Phase::Merged,
            merged_at: Some(state::now()),
            migrate_run_url: Some(merged.run.url.clone()),
            migrate_completed_at: Some(merged.run.finished_at.clone()),
            ..s
        };
        cx.commit("merge", &next)?;
        Ok(MergeOutcome {
            state: next,
            merged: Some(merged),
            pr,
        })
    })();
    cx.refused("merge", "feature", r)
}

/// The PR was merged by another principal: the gate checks that its green merge run took
/// the commit origin has for the feature (what this clone pushed), records the merge in the
/// state, and brings git to the tier's branch.
fn adopt(cx: &Ctx, s: WorkflowState, pr: crate::scm::forge::Pr) -> Result<MergeOutcome> {
    let mut pre = Preconditions::default();
    let head = pushed_head(cx, &s, &mut pre).map(|(h, _)| h);
    pre.verdict("merge")?;
    let head = head.expect("checked");
    let run = cx
        .forge
        .runs_of(pr.number)?
        .into_iter()
        .rfind(|r| r.kind == "merge" && r.green())
        .with_context(|| {
            format!(
                "merge refused; pull request #{} is marked merged (by {}), but no green merge \
                 run records it; ask its merger (`lakelet ci merge --number {}` records one)",
                pr.number,
                pr.closed_by.as_deref().unwrap_or("someone"),
                pr.number
            )
        })?;
    if run.sha != head {
        bail!(
            "merge refused; pull request #{} was merged at {}, but HEAD is {}; the state stays ci-green",
            pr.number,
            &run.sha[..12.min(run.sha.len())],
            &head[..12]
        );
    }
    let tier = s.get("parent_branch").to_string();
    // The tier's branch as origin has it now: the merge is there.
    let git = cx
        .git
        .out(&["fetch", "--quiet", "origin"])
        .and_then(|_| cx.git.switch_to_origins(&tier));
    if let Err(e) = git {
        eprintln!("warning: '{tier}' was not brought up to origin's: {e:#}");
    }
    let next = WorkflowState {
        state: Phase::Merged,
        merged_at: Some(pr.closed_at.clone().unwrap_or_else(state::now)),
        migrate_run_url: Some(run.url.clone()),
        migrate_completed_at: Some(run.finished_at.clone()),
        ..s
    };
    cx.commit("record-merge", &next)?;
    Ok(MergeOutcome {
        state: next,
        merged: None,
        pr,
    })
}
