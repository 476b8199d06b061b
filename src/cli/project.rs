//! The project as the workflow sees it (lakelet.toml here or above, with the daemon's policy
//! as the truth for its tiers) and `lakelet init`: the scaffold, and against a running daemon
//! the project made ready to claim.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::print;
use super::scm::engine;
use crate::api::client::Client;
use crate::api::lakebase::client::TargetKind;
use crate::scm::{self, Project};

/// The project: lakelet.toml (policy, migrations, `[ci]`) in this directory or above.
pub(super) fn project(project_flag: Option<&str>, dd: &Path) -> Result<Project> {
    let cfg = super::config::load()?;
    let path = cfg
        .path
        .clone()
        .context("no lakelet.toml here or above; `lakelet init` scaffolds the project")?;
    let policy = super::policy::check_file(&path)?;
    if !policy.declared {
        bail!(
            "{} declares no tiers; the workflow needs them (`lakelet init --force` writes the starter)",
            path.display()
        );
    }
    let (migrations, settings) = super::migrate::configured(None)?;
    Ok(Project {
        dir: path.parent().expect("a file").to_path_buf(),
        id: super::config::project_id(project_flag)?,
        policy,
        migrations,
        settings,
        test_command: cfg.ci.test.clone(),
        lint: cfg.ci.lint.unwrap_or_default(),
        approvals: cfg.ci.approvals.unwrap_or(0),
        // One opt-in hook: prepare-pr runs the TDD layer's check, known to scm only by name.
        pr_check: cfg
            .tdd
            .enabled
            .then(|| super::tdd::pr_check(dd, cfg.tdd.clone())),
        merge_snapshot_ttl: match &cfg.ci.snapshot_ttl {
            Some(t) => humantime::parse_duration(t)
                .with_context(|| format!("[ci] snapshot_ttl {t:?}: a duration like 2d or 12h"))?,
            None => std::time::Duration::from_secs(2 * 86400),
        },
    })
}

/// `lakelet init`: the scaffold; then, when a local daemon runs for this data directory,
/// the project made ready to claim: the daemon given this lakelet.toml if it enforces none,
/// the missing tiers' database branches created, and the entry tier's git branch.
pub fn init(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    force: bool,
) -> Result<()> {
    let dir = std::env::current_dir()?;
    let s = scm::scaffold::init(&dir, project_flag, force, &|| project(project_flag, dd))?;
    let local = super::config::branches(dd, target, project_flag)
        .map(|b| b.kind == TargetKind::Local)
        .unwrap_or(false);
    let ready = if local && crate::api::client::running_daemon(dd).is_some() {
        make_ready(dd, target, project_flag)?
    } else {
        vec![format!(
            "no lakelet daemon runs for {}: `lakelet up`, then `lakelet init` again makes the \
             tiers (or `lakelet scm doctor --fix`)",
            dd.display()
        )]
    };
    let out = serde_json::json!({ "scaffold": &s, "ready": ready });
    print(json, &out, |_| {
        let mut out: Vec<String> = s
            .written
            .iter()
            .map(|p| format!("wrote {}", p.display()))
            .collect();
        out.extend(s.kept.iter().map(|p| format!("kept  {}", p.display())));
        out.extend(ready.iter().map(|r| format!("ready {r}")));
        out.push(format!(
            "workflow at {} (project {}, tier_topology {}); next: `lakelet scm claim FEATURE`",
            s.state.state, s.state.project_id, s.state.tier_topology
        ));
        out.join("\n")
    });
    Ok(())
}

/// What `init` does against a running daemon; each step said in a line.
fn make_ready(
    dd: &Path,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
) -> Result<Vec<String>> {
    let mut said = vec![];
    let view: crate::api::governance::PolicyView = Client::connect(dd)?.get("/policy")?;
    if !view.declared {
        let path = project(project_flag, dd)?.dir.join("lakelet.toml");
        let text = std::fs::read_to_string(&path)?;
        let body = serde_json::json!({ "file": path.display().to_string(), "text": text });
        match Client::connect(dd)?.post::<serde_json::Value>("/policy/apply", &body) {
            Ok(_) => said.push(format!("the daemon now enforces {}", path.display())),
            Err(e) => {
                said.push(format!(
                    "the daemon enforces no lakelet.toml and did not take this one: {e:#}"
                ));
                return Ok(said);
            }
        }
    }
    engine(dd, target, project_flag, |cx| {
        for f in scm::care::doctor(cx, true)? {
            if let Some(fixed) = f.fixed.filter(|_| f.check == "tier") {
                said.push(fixed);
            }
        }
        let entry = cx.project.entry_tier().to_string();
        if !cx.git.has_branch(&entry) {
            if cx.git.rev(&format!("origin/{entry}")).is_some() {
                cx.git.out(&[
                    "branch",
                    "--quiet",
                    "--track",
                    &entry,
                    &format!("origin/{entry}"),
                ])?;
                said.push(format!("git branch '{entry}' tracks origin/{entry}"));
            } else if cx.git.head().is_ok() {
                cx.git.out(&["branch", "--quiet", &entry])?;
                said.push(format!(
                    "git branch '{entry}' (the entry tier) made at HEAD"
                ));
            } else {
                said.push(format!(
                    "commit the scaffold, then `git branch {entry}` (the entry tier's git branch)"
                ));
            }
        }
        Ok(())
    })?;
    Ok(said)
}

/// The daemon's policy is the truth: the tiers, the entry tier and the feature TTL the gates
/// use are the ones it enforces, whatever lakelet.toml this checkout has (an old branch, a
/// local edit not yet applied). The checkout keeps what only it knows: migrations, `[ci]`.
pub(super) fn align(dd: &Path, project: &mut Project) -> Result<()> {
    let view: crate::api::governance::PolicyView = Client::connect(dd)?.get("/policy")?;
    if !view.declared {
        bail!(
            "the daemon of {} enforces no lakelet.toml, so the workflow has no tiers it would \
             hold to; `lakelet policy apply` loads {} into it",
            dd.display(),
            project.dir.join("lakelet.toml").display()
        );
    }
    let p = &mut project.policy;
    if p.sha256 != view.sha256 {
        eprintln!(
            "note: this checkout's lakelet.toml differs from the policy the daemon enforces; \
             the daemon's tiers and entry tier apply (`lakelet policy apply` loads the \
             checkout's)"
        );
    }
    p.tiers = view
        .tiers
        .iter()
        .map(|t| {
            let tier = crate::policy::model::Tier {
                name: t.name.clone(),
                parent: t.parent.clone(),
                production: t.production,
                raw: t.raw_data,
                mask: t.mask,
                protected: t.protected,
            };
            (t.name.clone(), tier)
        })
        .collect();
    p.features.from = view.feature_tier.clone();
    p.features.ttl = view.feature_ttl_s.map(std::time::Duration::from_secs);
    p.root = view.root.clone();
    Ok(())
}
