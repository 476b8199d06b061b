//! The transitions. Each gate reads and validates the state, checks every precondition and
//! names all that fail (changing nothing), then acts, and writes the new state last: if an
//! action fails halfway, what it already did is undone where it can be, and the state file
//! still says where the feature really is.

use anyhow::{anyhow, bail, Result};

mod merge;
mod prepare;

pub use merge::{merge, MergeOutcome};
pub use prepare::{prepare_pr, Prepared};

use super::forge::Run;
use super::state::{self, Phase, WorkflowState};
use super::{pipeline, Ctx, Preconditions};

impl Ctx<'_> {
    fn load(&self) -> Result<WorkflowState> {
        state::load(&self.project.dir)
    }

    /// Writes the new state and audits the transition.
    fn commit(&self, gate: &str, s: &WorkflowState) -> Result<()> {
        state::save(&self.project.dir, s)?;
        self.env.record(
            &format!("scm.{gate}"),
            s.branch.as_deref().unwrap_or(&s.project_id),
            serde_json::json!({ "state": s.state, "feature_id": s.feature_id }),
            &Ok(()),
        );
        Ok(())
    }

    /// Audits a refusal and passes it on.
    fn refused<T>(&self, gate: &str, target: &str, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.env.record(
                &format!("scm.{gate}"),
                target,
                serde_json::json!({}),
                &Err(anyhow!("{e:#}")),
            );
        }
        r
    }

    /// The checks every gate past claim shares: the state is in `phases`, and the git branch
    /// and database branch it names are really there and paired.
    fn consistent(&self, s: &WorkflowState, phases: &[Phase], pre: &mut Preconditions) {
        if !phases.contains(&s.state) {
            pre.fail(format!(
                "the workflow is at {}, and this gate needs {}",
                s.state,
                phases
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
            return;
        }
        if s.state == Phase::ScaffoldComplete || s.state == Phase::Merged {
            return;
        }
        let branch = s.get("branch");
        match self.git.current_branch() {
            Ok(b) if b == branch => {}
            Ok(b) => pre.fail(format!(
                "git is on '{b}', but the claimed feature's branch is '{branch}'; `git switch {branch}`"
            )),
            Err(e) => pre.fail(format!("{e:#}")),
        }
        let db = self.env.feature_branch(s.get("feature_id"));
        let tier = s.get("parent_branch");
        match self.env.api.get(&db) {
            Ok(b) if b.uid.as_deref() == Some(s.get("lakebase_branch_uid")) => {
                let source = b.status.and_then(|st| st.source_branch).unwrap_or_default();
                if source != self.env.api.branch_name(tier) && source != tier {
                    pre.fail(format!(
                        "the database branch '{db}' was forked from {source:?}, not from the \
                         parent_branch '{tier}' the state file names; the feature was forked \
                         from the wrong tier (`lakelet scm abandon`, then claim it again)"
                    ));
                }
            }
            Ok(b) => pre.fail(format!(
                "the database branch '{db}' has uid {}, but the state file pairs the feature with {}; \
                 the state file was edited or the branch recreated (`lakelet scm doctor`)",
                b.uid.unwrap_or_default(),
                s.get("lakebase_branch_uid")
            )),
            Err(e) => pre.fail(format!(
                "the feature's database branch '{db}' is gone ({e:#}); `lakelet scm abandon` \
                 or `lakelet scm recover-orphans`"
            )),
        }
        if !self.project.is_tier(s.get("parent_branch")) {
            pre.fail(format!(
                "parent_branch '{}' is not a tier in lakelet.toml",
                s.get("parent_branch")
            ));
        }
    }

    fn clean_tree(&self, pre: &mut Preconditions) {
        match self.git.dirty() {
            Ok(d) if d.is_empty() => {}
            Ok(d) => pre.fail(format!(
                "the work tree has uncommitted changes; commit or stash them:\n      {}",
                d.join("\n      ")
            )),
            Err(e) => pre.fail(format!("{e:#}")),
        }
    }
}

fn valid_feature_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id.as_bytes()[0].is_ascii_lowercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.ends_with('-')
}

/// `lakelet scm claim FEATURE [--parent TIER]`: a git branch `feature/FEATURE` from the tier's
/// git branch, paired with a database branch forked from the tier.
pub fn claim(cx: &Ctx, feature: &str, parent: Option<&str>) -> Result<WorkflowState> {
    let r = (|| {
        let s = cx.load()?;
        let p = cx.project;
        let entry = p.entry_tier().to_string();
        let tier = parent.unwrap_or(&entry).to_string();
        let branch = format!("feature/{feature}");
        let db = cx.env.feature_branch(feature);
        let mut pre = Preconditions::default();
        if !matches!(s.state, Phase::ScaffoldComplete | Phase::Merged) {
            pre.fail(format!(
                "feature '{}' is in flight ({}); finish it (`lakelet scm merge`) or `lakelet scm abandon` it first",
                s.feature_id.as_deref().unwrap_or("?"),
                s.state
            ));
        }
        pre.check(valid_feature_id(feature), || {
            format!("feature id {feature:?} is invalid: 1–40 lowercase letters, digits and hyphens, starting with a letter")
        });
        pre.check(tier == entry, || {
            format!(
                "features fork from the entry tier '{entry}' (lakelet.toml [features] from, \
                 tier_topology {}), not '{tier}'",
                s.tier_topology
            )
        });
        pre.check(cx.git.has_branch(&entry), || {
            // A clone has origin's tiers as remote-tracking branches only: track that one.
            let how = if cx.git.rev(&format!("origin/{entry}")).is_some() {
                format!("`git branch --track {entry} origin/{entry}`")
            } else {
                format!("`git branch {entry}`")
            };
            format!("git has no branch '{entry}' for the entry tier; create it ({how})")
        });
        pre.check(!cx.git.has_branch(&branch), || {
            format!("git branch '{branch}' already exists; pick another feature id or delete it")
        });
        cx.clean_tree(&mut pre);
        match cx.env.exists(&entry) {
            Ok(true) => {}
            Ok(false) => pre.fail(format!(
                "the tier '{entry}' has no database branch; `lakelet scm doctor --fix` creates the tiers"
            )),
            Err(e) => pre.fail(format!("{e:#}")),
        }
        match cx.env.api.get(&db) {
            Err(e) if crate::api::client::is_not_found(&e) => {}
            Err(e) => pre.fail(format!("{e:#}")),
            Ok(b)
                if b.status.as_ref().and_then(|st| st.current_state.as_deref())
                    == Some("DELETED") =>
            {
                pre.fail(format!(
                    "the database branch '{db}' was soft-deleted (an earlier merge or abandon of \
                     this feature id); `lakelet branch undelete {db}` or \
                     `lakelet branch delete {db} --purge` first, or pick another feature id"
                ))
            }
            Ok(_) => pre.fail(format!(
                "the database branch '{db}' already exists; delete it or pick another feature id"
            )),
        }
        pre.verdict("claim")?;

        // The feature TTL of the policy: a target that fills in none of its own (a daemon
        // without a declared policy, Lakebase) still gets an expiry.
        let created = cx.env.fork(&db, &entry, p.policy.features.ttl)?;
        if let Err(e) = cx.git.out(&["switch", "-c", &branch, &entry]) {
            let _ = cx.env.api.delete(&db, true);
            return Err(e.context("creating the git branch; the database branch was deleted again"));
        }
        // The ledger of what the workflow made: its cleanups touch nothing else.
        cx.forge.made(&db, created.uid.as_deref(), "scm.claim")?;
        let next = WorkflowState {
            state: Phase::FeatureClaimed,
            feature_id: Some(feature.into()),
            branch: Some(branch),
            parent_branch: Some(entry),
            lakebase_branch_uid: created.uid.clone(),
            claimed_at: Some(state::now()),
            ..s.cleared()
        };
        cx.commit("claim", &next)?;
        Ok(next)
    })();
    cx.refused("claim", feature, r)
}

/// The checks wait-ci and merge share: at `phase` and consistent, clean, pushed, and the PR
/// still open. The HEAD and the PR, when the state is at `phase`.
fn pushed_at(
    cx: &Ctx,
    s: &WorkflowState,
    phase: Phase,
    pre: &mut Preconditions,
) -> Option<(String, super::forge::Pr)> {
    cx.consistent(s, &[phase], pre);
    if s.state != phase {
        return None;
    }
    pushed_head(cx, s, pre)
}

fn pushed_head(
    cx: &Ctx,
    s: &WorkflowState,
    pre: &mut Preconditions,
) -> Option<(String, super::forge::Pr)> {
    cx.clean_tree(pre);
    let head = cx.git.head().ok()?;
    match cx.git.remote_head("origin", s.get("branch")) {
        Ok(Some(r)) if r == head => {}
        Ok(_) => pre.fail(format!(
            "HEAD {} is not what origin has for '{}'; `git push` first",
            &head[..12],
            s.get("branch")
        )),
        Err(e) => pre.fail(format!("{e:#}")),
    }
    match cx.forge.pr_at(s.get("pr_url")) {
        // Merged already: carried there by a principal that may merge (the handoff).
        Ok(pr) if pr.state == "open" || pr.state == "merged" => Some((head, pr)),
        Ok(pr) => {
            pre.fail(format!("pull request #{} is {}", pr.number, pr.state));
            None
        }
        Err(e) => {
            pre.fail(format!("{e:#}"));
            None
        }
    }
}

/// `lakelet scm wait-ci [--local]`: advances when CI is green for HEAD. With no CI run for
/// HEAD yet, `--local` runs the pipeline here (what the workflow would run).
pub fn wait_ci(cx: &Ctx, local: bool) -> Result<(WorkflowState, Run)> {
    let r = (|| {
        let s = cx.load()?;
        let mut pre = Preconditions::default();
        let found = pushed_at(cx, &s, Phase::PrReady, &mut pre);
        let existing = match &found {
            Some((head, pr)) => cx.forge.latest_ci(pr.number, head)?,
            None => None,
        };
        pre.check(existing.is_some() || local || found.is_none(), || {
            "no CI run has tested HEAD yet; run `lakelet ci pr --number N` (or pass --local)".into()
        });
        pre.verdict("wait-ci")?;
        let (head, pr) = found.expect("checked");
        let run = match existing {
            Some(r) => r,
            None => pipeline::pr(cx, pr.number, Some(&pr.base), None)?,
        };
        if !run.green() {
            let failed: Vec<String> = run
                .steps
                .iter()
                .filter(|st| !st.ok)
                .map(|st| format!("{}: {}", st.name, st.detail))
                .collect();
            bail!(
                "wait-ci refused; CI is red for HEAD {} ({}):\n  - {}\nthe state stays pr-ready; fix, commit, push and wait again",
                &head[..12],
                run.url,
                failed.join("\n  - ")
            );
        }
        let next = WorkflowState {
            state: Phase::CiGreen,
            ci_run_url: Some(run.url.clone()),
            ci_green_at: Some(state::now()),
            ..s
        };
        cx.commit("wait-ci", &next)?;
        Ok((next, run))
    })();
    cx.refused("wait-ci", "feature", r)
}

/// `lakelet scm abandon [--delete-branch]`: drops the feature: its database branches go, its
/// PR is closed, git returns to the tier's branch, and the state to scaffold-complete.
pub fn abandon(cx: &Ctx, delete_git_branch: bool) -> Result<WorkflowState> {
    let r = (|| {
        let s = cx.load()?;
        let mut pre = Preconditions::default();
        pre.check(
            matches!(
                s.state,
                Phase::FeatureClaimed | Phase::PrReady | Phase::CiGreen
            ),
            || {
                format!(
                    "there is no feature in flight to abandon (the workflow is at {})",
                    s.state
                )
            },
        );
        cx.clean_tree(&mut pre);
        pre.verdict("abandon")?;
        let tier = s.get("parent_branch").to_string();
        let branch = s.get("branch").to_string();
        let db = cx.env.feature_branch(s.get("feature_id"));
        // Soft deletes: `lakelet branch undelete` brings any of them back.
        if let Some(url) = &s.pr_url {
            if let Ok(mut pr) = cx.forge.pr_at(url) {
                pipeline::retire_runs(cx.env, cx.forge, pr.number, None)?;
                if pr.state == "open" {
                    cx.forge.set_state(&mut pr, "closed")?;
                }
            }
        }
        if cx.env.exists(&db)? {
            cx.env.api.delete(&db, false)?;
            cx.forge.unmade(&db)?;
        }
        if cx.git.current_branch().ok().as_deref() == Some(branch.as_str()) {
            cx.git.out(&["switch", "--quiet", &tier])?;
        }
        if delete_git_branch && cx.git.has_branch(&branch) {
            cx.git.out(&["branch", "-D", &branch])?;
        }
        let next = s.cleared();
        cx.commit("abandon", &next)?;
        Ok(next)
    })();
    cx.refused("abandon", "feature", r)
}
