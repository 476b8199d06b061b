//! The transitions. Each gate reads and validates the state, checks every precondition and
//! names all that fail (changing nothing), then acts, and writes the new state last: if an
//! action fails halfway, what it already did is undone where it can be, and the state file
//! still says where the feature really is.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::forge::Run;
use super::state::{self, Phase, WorkflowState};
use super::{pipeline, Ctx, Preconditions};
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::rehearse;

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

/// What the acting principal sees of a tier: the tier itself, or, for a principal that may not
/// connect to it (an agent), a throwaway branch forked from it, masked as the policy says.
/// The fork is the gate's own and is purged when the view is dropped.
struct TierView<'a> {
    url: String,
    fork: Option<String>,
    api: &'a crate::api::lakebase::client::Branches,
}

impl<'a> TierView<'a> {
    fn open(cx: &'a Ctx, tier: &str, feature: &str) -> Result<TierView<'a>> {
        let direct =
            (cx.env.connect)(tier).and_then(|u| crate::migrate::db::Db::connect(&u).map(|_| u));
        let api = cx.env.api;
        match direct {
            Ok(url) => Ok(TierView {
                url,
                fork: None,
                api,
            }),
            Err(refused) => {
                let name = format!("{}-view-{feature}", cx.env.principal);
                api.create(
                    &name,
                    BranchSpec {
                        source_branch: Some(api.branch_name(tier)),
                        ttl: Some("3600s".into()),
                        ..Default::default()
                    },
                )
                .with_context(|| {
                    format!("'{tier}' cannot be read directly ({refused:#}), and forking a view of it failed")
                })?;
                // Purged by Drop if connecting to it fails.
                let mut view = TierView {
                    url: String::new(),
                    fork: Some(name.clone()),
                    api,
                };
                view.url = (cx.env.connect)(&name)?;
                Ok(view)
            }
        }
    }
}

impl Drop for TierView<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.fork.take() {
            if let Err(e) = self.api.delete(&f, true) {
                eprintln!("could not delete the view branch '{f}': {e:#}");
            }
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

        let created = cx.env.api.create(
            &db,
            BranchSpec {
                source_branch: Some(cx.env.api.branch_name(&entry)),
                // The feature TTL of the policy: a target that fills in none of its own (a
                // daemon without a declared policy, Lakebase) still gets an expiry.
                ttl: p
                    .policy
                    .features
                    .ttl
                    .map(|t| format!("{}s", t.as_secs().max(1))),
                ..Default::default()
            },
        )?;
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

#[derive(Debug, Serialize)]
pub struct Prepared {
    pub state: WorkflowState,
    pub rehearsal: rehearse::Report,
    /// The schema diff against the tier, Markdown (`.lakebase/schema-diff.md`).
    pub diff: std::path::PathBuf,
    pub pr: super::forge::Pr,
}

/// `lakelet scm prepare-pr`: the committed migrations validate and rehearse on a throwaway
/// branch of the tier, the schema diff against the tier is written, the branch is pushed and
/// the pull request opened.
pub fn prepare_pr(cx: &Ctx) -> Result<Prepared> {
    let r = (|| {
        let s = cx.load()?;
        let mut pre = Preconditions::default();
        cx.consistent(&s, &[Phase::FeatureClaimed], &mut pre);
        cx.clean_tree(&mut pre);
        pre.check(cx.git.has_remote("origin"), || {
            "git has no remote 'origin' to push to; `git remote add origin URL`".into()
        });
        let scripts = cx.project.scripts();
        if let Err(e) = &scripts {
            pre.fail(format!("the migrations do not load: {e:#}"));
        }
        pre.verdict("prepare-pr")?;
        let scripts = scripts?;
        let tier = s.get("parent_branch").to_string();
        let branch = s.get("branch").to_string();

        // Validate against the tier, then rehearse there: what merging will do.
        let view = TierView::open(cx, &tier, s.get("feature_id"))?;
        let mut pre = Preconditions::default();
        {
            let db = crate::migrate::db::Db::connect(&view.url)?;
            let settings = cx.project.settings.clone().with_builtins(&db)?;
            let runner = crate::migrate::run::Runner::new(&db, &settings, &scripts)?;
            let applied = runner.history()?;
            for problem in runner.plan(&applied).problems(false) {
                pre.fail(format!("validation against '{tier}': {problem}"));
            }
            // Every file that would run must be runnable as written (`lakelet migrate
            // validate` checks the same, with the same built-in placeholders).
            for sc in scripts
                .iter()
                .filter(|sc| sc.kind != crate::migrate::script::Kind::Undo)
            {
                if let Err(e) = crate::migrate::run::prepare(sc, &settings) {
                    pre.fail(format!("{e:#}"));
                }
            }
        }
        pre.verdict("prepare-pr")?;
        let opts = rehearse::Options {
            corrupt: vec![],
            seed: 42,
            keep: true,
            row_limit: 20,
            prefix: format!("{}-rehearse", cx.env.principal),
        };
        let rehearsal = rehearse::rehearse(
            cx.env.api,
            cx.env.connect,
            &tier,
            &cx.project.settings,
            &scripts,
            &opts,
        )?;
        let cleanup = |name: &str| {
            if let Err(e) = cx.env.api.delete(name, true) {
                eprintln!("could not delete the rehearsal branch '{name}': {e:#}");
            }
        };
        if !rehearsal.ok {
            cleanup(&rehearsal.branch);
            let mut pre = Preconditions::default();
            for m in &rehearsal.migrations {
                if let Some(f) = &m.failed {
                    pre.fail(format!("rehearsal: {f}"));
                } else if let Some(second) = m.second_run.as_ref().filter(|x| !x.idempotent) {
                    pre.fail(format!(
                        "rehearsal: {} is not idempotent: a second run {}",
                        m.script,
                        second
                            .error
                            .clone()
                            .unwrap_or_else(|| format!("changed {}", second.changed.join(", ")))
                    ));
                }
            }
            pre.fail("fix the migrations, commit, and run prepare-pr again".to_string());
            return Err(pre.verdict("prepare-pr").unwrap_err());
        }
        let diff_path = cx.project.dir.join(".lakebase/schema-diff.md");
        let diff = (|| -> Result<()> {
            let base_url = view.url.clone();
            let plan = crate::diff::compare(&base_url, &(cx.env.connect)(&rehearsal.branch)?)?;
            let report = crate::diff::Report {
                base: tier.clone(),
                target: format!("{branch} (migrations applied)"),
                plan,
                lint: crate::diff::lint_pending(&base_url, &cx.project.settings, &scripts)?,
            };
            std::fs::create_dir_all(diff_path.parent().expect("a file"))?;
            std::fs::write(&diff_path, crate::diff::render::markdown(&report))?;
            Ok(())
        })();
        cleanup(&rehearsal.branch);
        drop(view);
        diff.context("writing the schema diff")?;

        cx.git
            .out(&["push", "--quiet", "-u", "origin", &branch])
            .context("pushing the feature branch")?;
        let feature = s.get("feature_id");
        let pr = cx.forge.open(super::forge::Opening {
            head: branch.clone(),
            base: tier.clone(),
            database_branch: cx.env.feature_branch(feature),
            title: cx
                .git
                .out(&["log", "-1", "--format=%s"])
                .unwrap_or_else(|_| format!("feature {feature}")),
            body: format!(
                "Feature `{feature}` into `{tier}`, by {}. Rehearsed {} migrations on a throwaway branch of `{tier}`.",
                cx.env.principal,
                rehearsal.migrations.len()
            ),
            diff: std::fs::read_to_string(&diff_path).ok(),
        })?;
        let next = WorkflowState {
            state: Phase::PrReady,
            pr_url: Some(pr.url.clone()),
            pushed_at: Some(state::now()),
            ..s
        };
        cx.commit("prepare-pr", &next)?;
        Ok(Prepared {
            state: next,
            rehearsal,
            diff: diff_path,
            pr,
        })
    })();
    cx.refused("prepare-pr", "feature", r)
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

/// What `scm merge` did: merged the feature itself, or found it merged by a principal that
/// may merge (the handoff) and recorded that.
#[derive(Debug, Serialize)]
pub struct MergeOutcome {
    pub state: WorkflowState,
    /// Set when this principal merged it.
    pub merged: Option<pipeline::Merged>,
    pub pr: super::forge::Pr,
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
        let how = pipeline::MergeHow {
            base: Some(&tier),
            feature: pr.database_branch.as_deref(),
            undo_on_failure: true,
            git: false,
        };
        let merged = pipeline::merge(cx, pr.number, how)?;
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
fn adopt(cx: &Ctx, s: WorkflowState, pr: super::forge::Pr) -> Result<MergeOutcome> {
    let mut pre = Preconditions::default();
    let head = pushed_head(cx, &s, &mut pre).map(|(h, _)| h);
    pre.verdict("merge")?;
    let head = head.expect("checked");
    let run = cx
        .forge
        .runs_of(pr.number)?
        .into_iter()
        .filter(|r| r.kind == "merge" && r.green())
        .next_back()
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
    let git = (|| -> Result<()> {
        cx.git.out(&["fetch", "--quiet", "origin"])?;
        if cx.git.has_branch(&tier) {
            cx.git.out(&["switch", "--quiet", &tier])?;
            cx.git
                .out(&["merge", "--quiet", "--ff-only", &format!("origin/{tier}")])?;
        } else {
            cx.git.out(&[
                "switch",
                "--quiet",
                "--track",
                "-c",
                &tier,
                &format!("origin/{tier}"),
            ])?;
        }
        Ok(())
    })();
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
                for r in cx.forge.runs_of(pr.number)? {
                    let Some(b) = r
                        .branch
                        .filter(|b| pipeline::ci_branch_pr(b) == Some(pr.number))
                    else {
                        continue;
                    };
                    if cx.env.exists(&b)? {
                        cx.env.api.delete(&b, false)?;
                    }
                }
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
