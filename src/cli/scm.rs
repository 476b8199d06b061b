//! `lakelet scm …`, `lakelet ci …`, `lakelet promote` and `lakelet rollback`: the CLI side of
//! the SCM gate engine. This file only builds the engine's [`Env`] for the target (local
//! daemon or Lakebase) and prints; the gates live in `src/scm`, the project and `lakelet init`
//! in project.rs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::print;
use super::project::{align, project};
use crate::api::client::Client;
use crate::api::lakebase::client::{Branches, TargetKind};
use crate::scm::forge::Forge;
use crate::scm::git::Git;
use crate::scm::{self, state, Ctx, Env, Project};

#[derive(Subcommand)]
pub enum ScmCmd {
    /// scaffold-complete|merged → feature-claimed: a git branch `feature/FEATURE` and a database
    /// branch forked from the entry tier, paired.
    Claim {
        feature: String,
        /// The tier to fork from; must be the entry tier (lakelet.toml [features] from).
        #[arg(long)]
        parent: Option<String>,
    },
    /// feature-claimed → pr-ready: migrations validate and rehearse against the tier, the
    /// schema diff is written (.lakebase/schema-diff.md), the branch is pushed, the PR opened.
    PreparePr,
    /// pr-ready → ci-green: CI is green for HEAD.
    WaitCi {
        /// With no CI run for HEAD yet, run the pipeline here (`lakelet ci pr`).
        #[arg(long)]
        local: bool,
    },
    /// ci-green → merged: migrate the tier behind a snapshot, merge and push, delete the
    /// ephemeral branches.
    Merge,
    /// Drop the feature in flight: its database branches, its PR; back to scaffold-complete.
    Abandon {
        /// Also delete the git branch (its commits stay reachable through the reflog).
        #[arg(long)]
        delete_branch: bool,
    },
    /// The project's pull requests (one numbering for every clone), or PR N with its runs.
    Prs { number: Option<u64> },
    /// Approve pull request N at its head (someone else's, as a person: not an agent).
    Approve { number: u64 },
    /// Print the workflow state (validated).
    State {
        /// Print the JSON Schema (draft-07) of the state file instead.
        #[arg(long)]
        schema: bool,
    },
    /// Cross-check the state file, git, the database branches and the scaffold.
    Doctor {
        /// Repair what is safe to repair: missing tiers, scaffold files.
        #[arg(long)]
        fix: bool,
    },
    /// Delete your feature database branches whose git branch is gone; reset a state whose
    /// feature lost both branches.
    RecoverOrphans {
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum CiCmd {
    /// Fork a fresh ci-pr-N-K from the PR's base tier for this run, migrate, lint, run
    /// `[ci] test` with DATABASE_URL, write the schema-diff comment; the run is recorded
    /// with the daemon's PR. Exits 1 when red.
    Pr {
        #[arg(long)]
        number: u64,
        /// The tier the PR merges into (default: the local PR's).
        #[arg(long)]
        base: Option<String>,
        /// Where to write the schema-diff comment (Markdown).
        #[arg(long)]
        comment_file: Option<PathBuf>,
    },
    /// Merge PR N: checks it is open and its head green (by a run a merge trusts) on the
    /// tier as it is now; snapshots the tier, migrates it, merges and pushes the head, marks
    /// the PR merged and soft-deletes its branches. The snapshot expires after
    /// `[ci] snapshot_ttl`.
    Merge {
        #[arg(long)]
        number: u64,
        #[arg(long)]
        base: Option<String>,
        /// The feature's database branch (default: the local PR's).
        #[arg(long)]
        feature_branch: Option<String>,
    },
    /// Soft-delete the run branches of PRs no longer open, and features whose PR or git
    /// branch is gone (only branches the workflow recorded).
    CleanupOrphans {
        /// The open PR numbers, comma-separated (default: the local forge's).
        #[arg(long)]
        open_prs: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
}

struct Parts {
    project: Project,
    api: Branches,
    git: Git,
    forge: Forge,
    principal: String,
}

fn parts(dd: &Path, target: Option<TargetKind>, project_flag: Option<&str>) -> Result<Parts> {
    let mut project = project(project_flag, dd)?;
    let api = super::config::branches(dd, target, project_flag)?;
    if api.kind == TargetKind::Local {
        align(dd, &mut project)?;
    }
    let git = Git::open(&project.dir)?;
    // Against the local daemon, PRs and runs are the daemon's: one numbering for every clone.
    let forge = if api.kind == TargetKind::Local {
        Forge::daemon(dd.to_path_buf(), git.records_dir()?)
    } else {
        Forge::at(git.records_dir()?)
    };
    let principal = if api.kind == TargetKind::Local {
        let w: crate::api::governance::WhoAmI = Client::connect(dd)?.get("/whoami")?;
        w.principal
    } else {
        match crate::api::client::acting_principal()? {
            Some((p, _)) => p,
            None => "feature".into(),
        }
    };
    Ok(Parts {
        project,
        api,
        git,
        forge,
        principal,
    })
}

/// Runs `f` on the project here, with the engine's environment for the target.
pub(super) fn engine<T>(
    dd: &Path,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    f: impl FnOnce(&Ctx) -> Result<T>,
) -> Result<T> {
    let parts = parts(dd, target, project_flag)?;
    with_env(dd, &parts, |env| {
        f(&Ctx {
            project: &parts.project,
            env,
            git: &parts.git,
            forge: &parts.forge,
        })
    })
}

/// Runs `f` with the engine's environment for the target.
fn with_env<T>(dd: &Path, parts: &Parts, f: impl FnOnce(&Env) -> Result<T>) -> Result<T> {
    let api = &parts.api;
    let local = api.kind == TargetKind::Local;
    let connect = |b: &str| -> Result<String> {
        Ok(super::connect::target_info(dd, api, b, "postgres", false)?.url)
    };
    let grant = |from: &str, to: &str| -> Result<String> {
        if !local {
            // Lakebase decides with the workspace identity's own permissions.
            return connect(to);
        }
        let g: crate::api::governance::Grant = Client::connect(dd)?.post(
            "/promotions",
            &serde_json::json!({ "from": from, "to": to }),
        )?;
        super::connect::url_as(dd, to, &g.user, &g.token)
    };
    let rollback = |r: &scm::tiers::Rollback| -> Result<crate::api::rollback::RolledBack> {
        if !local {
            bail!(
                "Lakebase cannot repoint a branch in place; create a branch from the snapshot \
                 '{}' and move the application to it",
                r.snapshot
            );
        }
        Client::connect(dd)?.post("/rollbacks", r)
    };
    let on_timeline = |child: &str, parent: &str| -> Result<Option<bool>> {
        if !local {
            return Ok(None);
        }
        let s: crate::api::Status = Client::connect(dd)?.get("/status")?;
        let find = |n: &str| {
            s.branches
                .iter()
                .find(|b| b.info.name == n)
                .map(|b| &b.info)
        };
        Ok(match (find(child), find(parent)) {
            (Some(c), Some(p)) => Some(c.parent_timeline.as_deref() == Some(p.timeline.as_str())),
            _ => None,
        })
    };
    let project_dir = parts.project.dir.clone();
    let audit = |e: &scm::Event| report_event(dd, local, &project_dir, e);
    let env = Env {
        api,
        connect: &connect,
        grant: &grant,
        rollback: &rollback,
        audit: &audit,
        on_timeline: &on_timeline,
        principal: parts.principal.clone(),
    };
    f(&env)
}

/// Records a workflow event in the daemon's audit trail (decided as the caller), or against
/// Lakebase in `.lakebase/audit.jsonl`; a failure to record is said, not fatal.
pub(super) fn report_event(dd: &Path, local: bool, project_dir: &Path, e: &scm::Event) {
    let r = if local {
        Client::connect(dd).and_then(|c| {
            c.post::<serde_json::Value>("/workflow-events", e)
                .map(|_| ())
        })
    } else {
        append_local_audit(project_dir, e)
    };
    if let Err(err) = r {
        eprintln!(
            "warning: the audit record of {} was not written: {err:#}",
            e.action
        );
    }
}

/// Against Lakebase there is no lakelet daemon to keep the trail: a JSON line per event in
/// `.lakebase/audit.jsonl`.
fn append_local_audit(dir: &Path, e: &scm::Event) -> Result<()> {
    use std::io::Write;
    let p = dir.join(".lakebase/audit.jsonl");
    std::fs::create_dir_all(p.parent().expect("a file"))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)?;
    let mut v = serde_json::to_value(e)?;
    v["time"] = serde_json::Value::String(state::now());
    writeln!(f, "{v}")?;
    Ok(())
}

pub fn scm(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    cmd: ScmCmd,
) -> Result<()> {
    if let ScmCmd::State { schema: true } = cmd {
        print!("{}", state::SCHEMA);
        return Ok(());
    }
    if let ScmCmd::State { .. } = cmd {
        let dir = project(project_flag, dd)?.dir;
        let s = state::load(&dir)?;
        print(json, &s, |s| {
            serde_json::to_string_pretty(s).expect("serializable")
        });
        return Ok(());
    }
    engine(dd, target, project_flag, |cx| {
        let env = cx.env;
        match cmd {
            ScmCmd::Claim { feature, parent } => {
                let s = scm::gates::claim(cx, &feature, parent.as_deref())?;
                print(json, &s, |s| {
                    format!(
                        "feature-claimed: git branch '{}' and database branch '{}' ({}), forked from '{}'",
                        s.get("branch"),
                        env.feature_branch(s.get("feature_id")),
                        s.get("lakebase_branch_uid"),
                        s.get("parent_branch")
                    )
                });
            }
            ScmCmd::PreparePr => {
                let r = scm::gates::prepare_pr(cx)?;
                print(json, &r, |r| {
                    format!(
                        "pr-ready: pushed '{}', pull request #{} ({})\nrehearsed {} migrations on a throwaway branch of '{}'; schema diff in {}",
                        r.pr.head,
                        r.pr.number,
                        r.pr.url,
                        r.rehearsal.migrations.len(),
                        r.pr.base,
                        r.diff.display()
                    )
                });
            }
            ScmCmd::WaitCi { local } => {
                let (s, run) = scm::gates::wait_ci(cx, local)?;
                print(json, &s, |_| {
                    format!("ci-green: {} passed for {}", run.id, &run.sha[..12])
                });
            }
            ScmCmd::Merge => {
                let o = scm::gates::merge(cx)?;
                print(json, &o.state, |_| {
                    match &o.merged {
                    Some(m) => format!(
                        "merged #{} into '{}': {} migrations applied behind snapshot '{}' (kept, expiring); soft-deleted {}",
                        o.pr.number,
                        m.tier,
                        m.change.migrate.applied.len(),
                        m.change.snapshot,
                        m.deleted.join(", ")
                    ),
                    None => format!(
                        "merged: pull request #{} was merged into '{}' by {}; the state records it",
                        o.pr.number,
                        o.pr.base,
                        o.pr.closed_by.as_deref().unwrap_or("its merger")
                    ),
                }
                });
            }
            ScmCmd::Abandon { delete_branch } => {
                let s = scm::gates::abandon(cx, delete_branch)?;
                print(json, &s, |s| {
                    format!("abandoned; the workflow is at {}", s.state)
                });
            }
            ScmCmd::Doctor { fix } => {
                let f = scm::care::doctor(cx, fix)?;
                print(json, &f, |f| {
                    f.iter()
                        .map(|x| {
                            format!(
                                "{} {:<15} {}{}",
                                if x.ok { "ok  " } else { "FAIL" },
                                x.check,
                                x.detail,
                                x.fixed
                                    .as_ref()
                                    .map(|d| format!(" (fixed: {d})"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                let bad = f.iter().filter(|x| !x.ok).count();
                if bad > 0 {
                    bail!(
                        "{bad} checks failed{}",
                        if fix {
                            ""
                        } else {
                            "; `lakelet scm doctor --fix` repairs the safe ones"
                        }
                    );
                }
            }
            ScmCmd::RecoverOrphans { dry_run } => {
                let r = scm::care::recover_orphans(cx, dry_run)?;
                print(json, &r, |r| {
                    format!(
                        "{} {} orphaned feature branches{}{}{}",
                        if dry_run {
                            "would soft-delete"
                        } else {
                            "soft-deleted"
                        },
                        r.deleted.len(),
                        if r.deleted.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ": {} (`lakelet branch undelete NAME` brings one back)",
                                r.deleted.join(", ")
                            )
                        },
                        if r.left_alone.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; left alone, not made by the workflow: {}",
                                r.left_alone.join(", ")
                            )
                        },
                        if r.state_reset {
                            "; the state is back at scaffold-complete"
                        } else {
                            ""
                        }
                    )
                });
            }
            ScmCmd::Prs { number: None } => {
                let prs = cx.forge.list()?;
                print(json, &prs, |prs| {
                    if prs.is_empty() {
                        return "no pull requests".into();
                    }
                    prs.iter()
                        .map(|p| {
                            format!(
                                "#{:<4} {:<7} {} → {}  {} (by {}{})",
                                p.number,
                                p.state,
                                p.head,
                                p.base,
                                p.title,
                                p.opened_by.as_deref().unwrap_or("?"),
                                p.closed_by
                                    .as_deref()
                                    .map(|c| format!(", {} by {c}", p.state))
                                    .unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
            ScmCmd::Prs { number: Some(n) } => {
                let pr = cx
                    .forge
                    .pr(n)?
                    .with_context(|| format!("there is no pull request #{n}"))?;
                let runs = cx.forge.runs_of(n)?;
                let v = serde_json::json!({ "pr": pr, "runs": runs });
                print(json, &v, |_| {
                    let mut out = format!(
                        "#{} {} → {} ({}): {}\n{}\n",
                        pr.number, pr.head, pr.base, pr.state, pr.title, pr.body
                    );
                    for r in &runs {
                        out += &format!(
                            "  {} {} {} by {} on {}\n",
                            r.id,
                            &r.sha[..12.min(r.sha.len())],
                            r.conclusion,
                            r.by.as_deref().unwrap_or("?"),
                            r.branch.as_deref().unwrap_or("-")
                        );
                    }
                    out + pr.diff.as_deref().unwrap_or("")
                });
            }
            ScmCmd::Approve { number } => {
                let pr = cx
                    .forge
                    .pr(number)?
                    .with_context(|| format!("there is no pull request #{number}"))?;
                let sha = if cx.git.has_remote("origin") {
                    cx.git.remote_head("origin", &pr.head)?
                } else {
                    None
                }
                .with_context(|| format!("origin has no branch '{}' to approve", pr.head))?;
                let pr = cx.forge.approve(number, &sha)?;
                print(json, &pr, |p| {
                    format!(
                        "approved #{} at {} ({} approvals)",
                        p.number,
                        &sha[..12],
                        p.approvals.len()
                    )
                });
            }
            ScmCmd::State { .. } => unreachable!("handled above"),
        }
        Ok(())
    })
}

pub fn ci(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    cmd: CiCmd,
) -> Result<()> {
    engine(dd, target, project_flag, |cx| ci_cmd(cx, json, cmd))
}

fn ci_cmd(cx: &Ctx, json: bool, cmd: CiCmd) -> Result<()> {
    match cmd {
        CiCmd::Pr {
            number,
            base,
            comment_file,
        } => {
            let run = scm::pipeline::pr(cx, number, base.as_deref(), comment_file)?;
            print(json, &run, |r| {
                format!("{} {}: {} ({})", r.id, &r.sha[..12], r.conclusion, r.url)
            });
            if !run.green() {
                bail!("CI is red for pull request #{number}; see {}", run.url);
            }
            Ok(())
        }
        CiCmd::Merge {
            number,
            base,
            feature_branch,
        } => {
            // With a PR this forge keeps, the merger carries it the whole way (git merge and
            // push, the PR marked merged): the handoff. Without one (a GitHub workflow after
            // GitHub merged), only the tier.
            let git = cx.forge.pr(number)?.is_some();
            let m = scm::merge::merge(
                cx,
                number,
                scm::merge::MergeHow {
                    base: base.as_deref(),
                    feature: feature_branch.as_deref(),
                    undo_on_failure: false,
                    git,
                },
            )?;
            print(json, &m, |m| {
                format!(
                    "'{}': {} migrations applied; deleted {}",
                    m.tier,
                    m.change.migrate.applied.len(),
                    if m.deleted.is_empty() {
                        "nothing".into()
                    } else {
                        m.deleted.join(", ")
                    }
                )
            });
            if !m.change.ok {
                bail!(
                    "migrating '{}' failed: {}\nthe snapshot '{}' is kept: `lakelet rollback {} --to {}`",
                    m.tier,
                    m.change.migrate.failed.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                    m.change.snapshot,
                    m.tier,
                    m.change.snapshot
                );
            }
            Ok(())
        }
        CiCmd::CleanupOrphans { open_prs, dry_run } => {
            let open: Option<Vec<u64>> = match &open_prs {
                None => None,
                Some(s) => Some(
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(|x| {
                            x.parse()
                                .with_context(|| format!("--open-prs: {x:?} is not a PR number"))
                        })
                        .collect::<Result<_>>()?,
                ),
            };
            let d =
                scm::pipeline::cleanup_orphans(cx.env, cx.git, cx.forge, open.as_deref(), dry_run)?;
            print(json, &d, |d| {
                format!(
                    "{} {} orphaned branches{}",
                    if dry_run { "would delete" } else { "deleted" },
                    d.len(),
                    if d.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.join(", "))
                    }
                )
            });
            Ok(())
        }
    }
}

/// `lakelet promote FROM [TO]`: the verified migrations one tier up, behind a kept snapshot.
pub fn promote(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    from: &str,
    to: Option<&str>,
) -> Result<()> {
    let c = engine(dd, target, project_flag, |cx| {
        let r = scm::tiers::promote(cx.project, cx.env, from, to);
        cx.env.record(
            "promote.apply",
            from,
            serde_json::json!({ "to": to }),
            &r.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e:#}")),
        );
        r
    })?;
    print(json, &c, |c| {
        format!(
            "promoted '{}' into '{}': {} migrations applied (schema version {}); snapshot '{}' kept — `lakelet rollback {}` undoes it",
            c.from,
            c.tier,
            c.migrate.applied.len(),
            c.migrate.schema_version_after.as_deref().unwrap_or("none"),
            c.snapshot,
            c.tier
        )
    });
    Ok(())
}

/// `lakelet rollback TIER [--to SNAPSHOT] [--discard-writes-since]`: repoints the tier at a
/// pre-migration snapshot, unless it took writes since the change being undone.
pub fn rollback(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    tier: &str,
    to: Option<&str>,
    discard: bool,
) -> Result<()> {
    let done = engine(dd, target, project_flag, |cx| {
        scm::tiers::rollback(cx.env, tier, to, discard)
    })?;
    print(json, &done, |d| {
        let mut out = format!("'{tier}' now points at its snapshot '{}'", d.snapshot);
        if let Some(b) = &d.backup {
            out += &format!(
                "; discarded the writes since, kept in snapshot '{b}' for a week:\n  - {}",
                d.discarded
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  - ")
            );
        }
        out
    });
    Ok(())
}
