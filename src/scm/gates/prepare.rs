//! `lakelet scm prepare-pr`, and what a principal sees of the tier it prepares against.

use anyhow::{Context, Result};
use serde::Serialize;

use super::super::state::{self, Phase, WorkflowState};
use super::super::{Ctx, Preconditions};
use crate::api::lakebase::types::BranchSpec;
use crate::migrate::rehearse;

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

#[derive(Debug, Serialize)]
pub struct Prepared {
    pub state: WorkflowState,
    pub rehearsal: rehearse::Report,
    /// The schema diff against the tier, Markdown (`.lakebase/schema-diff.md`).
    pub diff: std::path::PathBuf,
    pub pr: crate::scm::forge::Pr,
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
        if let Some(c) = &cx.project.pr_check {
            match (c.run)(&cx.project.dir) {
                Ok(problems) => {
                    for p in problems {
                        pre.fail(format!("check '{}': {p}", c.name));
                    }
                }
                Err(e) => pre.fail(format!("check '{}' could not run: {e:#}", c.name)),
            }
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
        let pr = cx.forge.open(crate::scm::forge::Opening {
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
