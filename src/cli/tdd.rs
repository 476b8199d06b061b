//! `lakelet tdd …`: the CLI side of the TDD layer (src/tdd). This file finds the project and
//! the acting principal, refuses when `[tdd] enabled` is not set, and prints; cycle steps get
//! the SCM engine's environment (the Branches client) through `scm::engine`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

use super::print;
use crate::api::lakebase::client::TargetKind;
use crate::tdd::{self, cycle, gates, roles, schema, Role, Tdd};

#[derive(Subcommand)]
pub enum TddCmd {
    /// A feature request (Markdown or JSON) becomes .sftdd/features/F/feature-spec.{json,md},
    /// the TDD phase (discovery) and the story pipeline.
    Intake {
        file: PathBuf,
        #[arg(long)]
        feature: String,
    },
    /// Submit a role's outputs; they are schema-checked before anything reaches .sftdd/.
    /// Roles: spec-author, architect-reviewer, test-strategist, navigator, driver
    /// (scrum-master is lakelet itself: `tdd advance`).
    Step {
        role: String,
        #[arg(long)]
        feature: String,
        #[arg(long)]
        story: Option<String>,
        /// The outputs: a directory or a file, as `tdd roles` lists per role.
        #[arg(long)]
        output: PathBuf,
    },
    /// List (or with --copy, copy) exactly the files a role is handed.
    Inputs {
        role: String,
        #[arg(long)]
        feature: String,
        #[arg(long)]
        story: Option<String>,
        /// Copy them into this directory (relative paths kept under it).
        #[arg(long)]
        copy: Option<PathBuf>,
    },
    /// Each role's principals, inputs and outputs.
    Roles,
    /// Run a gate (spec | test_list) and name every problem; changes nothing.
    Gate {
        name: String,
        #[arg(long)]
        feature: String,
    },
    /// The coordinator's act: run the gate the phase needs and, when it passes, approve it
    /// (the test_list approval locks the list) and move to the next phase.
    Advance {
        #[arg(long)]
        feature: String,
    },
    /// Re-approve the locked test list as it now is (after a deliberate change), recorded.
    Relock {
        #[arg(long)]
        feature: String,
        #[arg(long)]
        reason: String,
    },
    /// Red-green-refactor cycles on their own database branches.
    #[command(subcommand)]
    Cycle(CycleCmd),
    /// Phase, stories, gates, tests, cycles and what blocks.
    Status {
        #[arg(long)]
        feature: String,
    },
    /// Print the JSON Schema (draft-07) of an artifact kind: feature-spec, story, ac,
    /// architecture, test-list, story-pipeline, workflow-state, cycle.
    Schema { kind: String },
}

#[derive(Subcommand)]
pub enum CycleCmd {
    /// Fork the cycle's branch from the feature's and write cycle-NNN.json (navigator).
    Start {
        #[arg(long)]
        feature: String,
        #[arg(long)]
        story: String,
        #[arg(long)]
        test: String,
    },
    /// Run the test; it must fail (navigator).
    Red(StoryArgs),
    /// Run the test; it must pass (driver).
    Green(StoryArgs),
    /// Run the test; it must still pass; ends the cycle and deletes its branch (driver).
    Refactor(StoryArgs),
    /// End a green cycle without refactoring; deletes its branch (driver).
    End(StoryArgs),
}

#[derive(clap::Args)]
pub struct StoryArgs {
    #[arg(long)]
    feature: String,
    #[arg(long)]
    story: String,
}

/// Who acts, as the daemon authenticates it: LAKELET_PRINCIPAL (or `--as`) with its
/// LAKELET_SECRET, or the owner's token. `[tdd.roles]` and `[tdd] separate` decide who may
/// write a story's tests and who may make them pass; a name anyone can set would decide
/// nothing, so an act needs the daemon to vouch for the actor.
fn principal(dd: &Path) -> Result<String> {
    let c = crate::api::client::Client::connect(dd)
        .context("the TDD layer checks who acts against the daemon's principals")?;
    let w: crate::api::governance::WhoAmI = c.get("/whoami")?;
    Ok(w.principal)
}

/// Who reads, for commands that change nothing: the authenticated principal when the daemon
/// can say, else a name that no role glob but `*` matches.
const UNAUTHENTICATED: &str = "(unauthenticated)";

fn open(dd: &Path, acts: bool) -> Result<Tdd> {
    let cfg = super::config::load()?;
    let path = cfg
        .path
        .clone()
        .context("no lakelet.toml here or above; `lakelet init` scaffolds the project")?;
    tdd::require_enabled(&cfg.tdd, Some(&path))?;
    let principal = match principal(dd) {
        Ok(p) => p,
        Err(e) if acts => return Err(e),
        Err(_) => UNAUTHENTICATED.into(),
    };
    Ok(Tdd {
        dir: path.parent().expect("a file").to_path_buf(),
        cfg: cfg.tdd,
        principal,
    })
}

/// The check prepare-pr runs when `[tdd] enabled` (scm knows it as "tdd").
pub fn pr_check(dd: &Path, cfg: tdd::Config) -> crate::scm::Check {
    let dd = dd.to_path_buf();
    crate::scm::Check {
        name: "tdd",
        run: Box::new(move |dir: &Path| {
            let t = Tdd {
                dir: dir.to_path_buf(),
                cfg: cfg.clone(),
                principal: principal(&dd).unwrap_or_else(|_| UNAUTHENTICATED.into()),
            };
            gates::pr_check(&t)
        }),
    }
}

pub fn run(
    dd: &Path,
    json: bool,
    target: Option<TargetKind>,
    project_flag: Option<&str>,
    cmd: TddCmd,
) -> Result<()> {
    if let TddCmd::Schema { kind } = &cmd {
        let k = schema::Kind::parse(kind).with_context(|| {
            format!(
                "unknown kind {kind:?}; the kinds are {}",
                schema::ALL.map(|k| k.name()).join(", ")
            )
        })?;
        print!("{}", k.text());
        return Ok(());
    }
    let acts = !matches!(
        cmd,
        TddCmd::Status { .. } | TddCmd::Gate { .. } | TddCmd::Roles | TddCmd::Inputs { .. }
    );
    let t = open(dd, acts)?;
    match cmd {
        TddCmd::Schema { .. } => unreachable!(),
        TddCmd::Intake { file, feature } => {
            let r = tdd::intake::intake(&t, &file, &feature)?;
            print(json, &r, |r| {
                format!(
                    "feature {} at discovery: wrote {}",
                    r.feature_id,
                    r.written.join(", ")
                )
            });
        }
        TddCmd::Step {
            role,
            feature,
            story,
            output,
        } => {
            let r = roles::step(&t, Role::parse(&role)?, &feature, story.as_deref(), &output)?;
            print(json, &r, |r| {
                format!(
                    "accepted the {} output: {}",
                    r.role.name(),
                    r.written.join(", ")
                )
            });
        }
        TddCmd::Inputs {
            role,
            feature,
            story,
            copy,
        } => {
            t.feature(&feature)?;
            let files = roles::inputs(&t, Role::parse(&role)?, &feature, story.as_deref())?;
            if let Some(to) = &copy {
                for f in &files {
                    let dest = to.join(t.rel(f));
                    std::fs::create_dir_all(dest.parent().expect("a file"))?;
                    std::fs::copy(f, &dest).with_context(|| format!("copying {}", f.display()))?;
                }
            }
            let rel: Vec<String> = files.iter().map(|f| t.rel(f)).collect();
            print(
                json,
                &serde_json::json!({ "role": role, "inputs": rel }),
                |_| rel.join("\n"),
            );
        }
        TddCmd::Roles => {
            let v: Vec<serde_json::Value> = roles::ROLES
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "role": r.name(),
                        "principals": t.cfg.roles.get(r.name()).cloned().unwrap_or_else(|| vec!["*".into()]),
                        "outputs": r.outputs(),
                    })
                })
                .collect();
            print(json, &v, |v| {
                v.iter()
                    .map(|r| {
                        format!(
                            "{:<19} {}  → {}",
                            r["role"].as_str().unwrap(),
                            r["principals"],
                            r["outputs"].as_str().unwrap()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TddCmd::Gate { name, feature } => {
            let v = gates::run(&t, gates::Gate::parse(&name)?, &feature)?;
            if v.ok {
                print(json, &v, |v| {
                    let mut s = format!("the {} gate of {feature} passes", v.gate);
                    for n in &v.notes {
                        s += &format!("\nnote: {n}");
                    }
                    s
                });
            } else {
                if json {
                    print(json, &v, |_| String::new());
                }
                v.into_result()?;
            }
        }
        TddCmd::Advance { feature } => {
            let a = gates::advance(&t, &feature)?;
            print(json, &a, |a| match a.approved {
                Some(g) => format!(
                    "approved the {g} gate of {}: {} → {}",
                    a.feature_id, a.from, a.to
                ),
                None => format!("{}: {} → {}", a.feature_id, a.from, a.to),
            });
        }
        TddCmd::Relock { feature, reason } => {
            let l = gates::relock(&t, &feature, &reason)?;
            print(json, &l, |l| {
                format!(
                    "re-locked the test list of {} ({} tests): {reason}",
                    l.feature_id,
                    l.items.len()
                )
            });
        }
        TddCmd::Status { feature } => {
            let s = tdd::status::status(&t, &feature)?;
            print(json, &s, status_text);
        }
        TddCmd::Cycle(c) => {
            let r = super::scm::engine(dd, target, project_flag, |cx| match c {
                CycleCmd::Start {
                    feature,
                    story,
                    test,
                } => cycle::start(&t, cx.env, cx.forge, &feature, &story, &test),
                CycleCmd::Red(a) => {
                    cycle::step(&t, cx.env, cx.forge, &a.feature, &a.story, cycle::Step::Red)
                }
                CycleCmd::Green(a) => cycle::step(
                    &t,
                    cx.env,
                    cx.forge,
                    &a.feature,
                    &a.story,
                    cycle::Step::Green,
                ),
                CycleCmd::Refactor(a) => cycle::step(
                    &t,
                    cx.env,
                    cx.forge,
                    &a.feature,
                    &a.story,
                    cycle::Step::Refactor,
                ),
                CycleCmd::End(a) => {
                    cycle::step(&t, cx.env, cx.forge, &a.feature, &a.story, cycle::Step::End)
                }
            })?;
            print(json, &r, |r| {
                let mut s = format!(
                    "{} {} of {} on branch {}",
                    r.cycle["cycle_id"].as_str().unwrap_or(""),
                    ["ended_at", "refactored_at", "green_at", "red_at"]
                        .iter()
                        .find(|k| r.cycle[**k].is_string())
                        .map_or("started", |k| k.trim_end_matches("_at")),
                    r.cycle["test_id"].as_str().unwrap_or(""),
                    r.cycle["branch_id"].as_str().unwrap_or("")
                );
                if r.branch_deleted {
                    s += " (deleted)";
                }
                s
            });
        }
    }
    Ok(())
}

fn status_text(s: &tdd::status::Status) -> String {
    let mut out = format!(
        "{}: phase {}, feature {}\n",
        s.feature_id, s.phase, s.feature_status
    );
    for g in &s.gates {
        out += &format!(
            "gate {:<10} {}{}\n",
            g.verdict.gate,
            if g.approved { "approved, " } else { "" },
            if g.verdict.ok { "passes" } else { "refuses" }
        );
    }
    out += &format!(
        "test list {}\n",
        if s.locked { "locked" } else { "not locked" }
    );
    for t in &s.tests {
        out += &format!(
            "  {} ({}): {}\n",
            t["id"].as_str().unwrap_or(""),
            t["ac_id"].as_str().unwrap_or(""),
            t["status"].as_str().unwrap_or("")
        );
    }
    out += &format!("{} cycles\n", s.cycles.len());
    if s.blocking.is_empty() {
        out += "nothing blocks";
    } else {
        out += &format!("blocking:\n  - {}", s.blocking.join("\n  - "));
    }
    out
}
