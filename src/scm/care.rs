//! `lakelet scm doctor [--fix]` and `lakelet scm recover-orphans`: cross-checks of the state
//! file against git, the database branches and the scaffold, and the repairs that are safe
//! to make without asking. Neither advances the workflow.

use anyhow::Result;
use serde::Serialize;

use super::state::{self, Phase};
use super::Ctx;
use crate::api::lakebase::types::BranchSpec;

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: String,
    pub ok: bool,
    pub detail: String,
    /// What --fix did about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
}

fn finding(check: &str, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        ok,
        detail: detail.into(),
        fixed: None,
    }
}

/// Runs every check; with `fix`, repairs what can be repaired safely (missing tier
/// branches, the scaffold's directories and workflow files).
pub fn doctor(cx: &Ctx, fix: bool) -> Result<Vec<Finding>> {
    let p = cx.project;
    let mut out = vec![];
    let st = state::load(&p.dir);
    out.push(match &st {
        Ok(s) => finding(
            "state-file",
            true,
            format!("{} at {}", state::FILE, s.state),
        ),
        Err(e) => finding("state-file", false, format!("{e:#}")),
    });
    // Tiers, parents first, so --fix can create each from an existing parent.
    let mut tiers: Vec<&str> = p.policy.tiers.keys().map(String::as_str).collect();
    tiers.sort_by_key(|t| {
        let mut depth = 0;
        let mut x = *t;
        while let Some(parent) = p.parent_tier(x) {
            depth += 1;
            x = parent;
        }
        depth
    });
    for t in tiers {
        let mut f = match cx.env.exists(t) {
            Ok(true) => finding("tier", true, format!("'{t}' exists")),
            Ok(false) => finding(
                "tier",
                false,
                format!("the tier '{t}' has no database branch"),
            ),
            Err(e) => finding("tier", false, format!("{e:#}")),
        };
        if !f.ok && fix {
            if let Some(parent) = p.parent_tier(t) {
                let r = cx.env.api.create(
                    t,
                    BranchSpec {
                        source_branch: Some(cx.env.api.branch_name(parent)),
                        no_expiry: Some(true),
                        ..Default::default()
                    },
                );
                f.fixed = Some(match r {
                    Ok(_) => {
                        f.ok = true;
                        format!("created '{t}' from '{parent}'")
                    }
                    Err(e) => format!("creating '{t}' failed: {e:#}"),
                });
            }
        }
        if cx.git.has_branch(t) || cx.git.rev(&format!("origin/{t}")).is_some() {
            out.push(f);
            out.push(finding(
                "git-tier",
                true,
                format!("git has the branch '{t}'"),
            ));
        } else {
            out.push(f);
            let entry = p.entry_tier();
            out.push(finding(
                "git-tier",
                t != entry,
                if t == entry {
                    format!(
                        "git has no branch '{t}', and the entry tier needs one: `git branch {t}`"
                    )
                } else {
                    format!("git has no branch '{t}' (only the entry tier '{entry}' needs one)")
                },
            ));
        }
    }
    if let Ok(s) = &st {
        if !matches!(s.state, Phase::ScaffoldComplete | Phase::Merged) {
            let db = cx.env.feature_branch(s.get("feature_id"));
            out.push(match cx.env.api.get(&db) {
                Ok(b) if b.uid.as_deref() == Some(s.get("lakebase_branch_uid")) => {
                    finding("feature-branch", true, format!("'{db}' is paired (uid {})", s.get("lakebase_branch_uid")))
                }
                Ok(b) => finding("feature-branch", false, format!("'{db}' has uid {}, the state file says {}", b.uid.unwrap_or_default(), s.get("lakebase_branch_uid"))),
                Err(_) => finding("feature-branch", false, format!("the feature's database branch '{db}' is gone; `lakelet scm recover-orphans` resets the state")),
            });
            let branch = s.get("branch");
            out.push(finding(
                "feature-git",
                cx.git.has_branch(branch),
                format!("git branch '{branch}'"),
            ));
        }
        if s.tier_topology != p.tier_topology().unwrap_or(0) {
            out.push(finding(
                "tier-topology",
                false,
                format!(
                    "the state file says tier_topology {}, lakelet.toml gives {}",
                    s.tier_topology,
                    p.tier_topology()
                        .map(|t| t.to_string())
                        .unwrap_or_else(|e| format!("{e:#}"))
                ),
            ));
        }
    }
    for (rel, exists) in super::scaffold::files(&p.dir) {
        let mut f = finding("scaffold", exists, rel.clone());
        if !exists && fix {
            f.fixed = Some(match super::scaffold::write_one(p, &rel) {
                Ok(()) => {
                    f.ok = true;
                    format!("wrote {rel}")
                }
                Err(e) => format!("{e:#}"),
            });
        }
        out.push(f);
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Recovered {
    /// Database branches of this principal's features with no git branch left, soft-deleted
    /// (`lakelet branch undelete` brings one back).
    pub deleted: Vec<String>,
    /// Branches named like one of this principal's features, with no git branch, that the
    /// workflow did not make (or that were made again since): left alone.
    pub left_alone: Vec<String>,
    /// The state was reset to scaffold-complete (its feature had neither branch left).
    pub state_reset: bool,
}

/// `lakelet scm recover-orphans`: soft-deletes this principal's feature database branches
/// whose git branch is gone (locally and on origin) — only those the workflow made (its
/// ledger, by name and uid): a branch someone made by hand with a feature-like name is not
/// the workflow's to clean up — and resets a state file whose feature lost both of its
/// branches.
pub fn recover_orphans(cx: &Ctx, dry_run: bool) -> Result<Recovered> {
    let prefix = format!("{}-", cx.env.principal);
    let st = state::load(&cx.project.dir).ok();
    let current = st
        .as_ref()
        .filter(|s| !matches!(s.state, Phase::ScaffoldComplete | Phase::Merged))
        .map(|s| cx.env.feature_branch(s.get("feature_id")));
    let mut deleted = vec![];
    let mut left_alone = vec![];
    for b in cx.env.api.list(false)? {
        let Some(id) = b.branch_id.clone() else {
            continue;
        };
        let Some(feature) = id.strip_prefix(&prefix) else {
            continue;
        };
        if cx.project.is_tier(&id)
            || feature.starts_with("rehearse-")
            || feature.starts_with("diff-")
        {
            continue;
        }
        if current.as_deref() == Some(id.as_str()) {
            continue;
        }
        let git_branch = format!("feature/{feature}");
        let remote =
            cx.git.has_remote("origin") && cx.git.remote_head("origin", &git_branch)?.is_some();
        if !cx.git.has_branch(&git_branch) && !remote {
            if !cx.forge.made_it(&id, b.uid.as_deref())? {
                left_alone.push(id);
                continue;
            }
            if !dry_run {
                let r = cx.env.api.delete(&id, false);
                cx.env
                    .record("scm.recover-orphans", &id, serde_json::json!({}), &r);
                r?;
                cx.forge.unmade(&id)?;
            }
            deleted.push(id);
        }
    }
    let mut state_reset = false;
    if let (Some(s), Some(db)) = (&st, &current) {
        let gone = !cx.env.exists(db)? && !cx.git.has_branch(s.get("branch"));
        if gone && !dry_run {
            state::save(&cx.project.dir, &s.cleared())?;
            cx.env.record(
                "scm.recover-orphans",
                db,
                serde_json::json!({ "state": "scaffold-complete" }),
                &Ok(()),
            );
        }
        state_reset = gone;
    }
    Ok(Recovered {
        deleted,
        left_alone,
        state_reset,
    })
}
