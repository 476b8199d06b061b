//! Governance from the command line: `lakelet init`, `policy`, `principal`, `audit`,
//! `promote`, `whoami`. Every decision is the daemon's; these commands only ask and print.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

use super::print;
use crate::api::client::{seg, Client};
use crate::policy::audit::Record;

/// The file `lakelet init` writes: every table, commented, valid as it stands.

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Validate a lakelet.toml (default: the nearest) without a daemon.
    Check { file: Option<PathBuf> },
    /// The policy the daemon enforces now.
    Show,
    /// Re-read the daemon's lakelet.toml and enforce it (audited; admin roles only).
    Apply,
}

#[derive(Subcommand)]
pub enum PrincipalCmd {
    /// Add a principal; its secret is printed once, as the last line.
    Add {
        name: String,
        #[arg(long)]
        role: Option<String>,
        /// Give an existing principal a new secret (the old one stops working).
        #[arg(long)]
        rotate: bool,
    },
    List,
    Remove {
        name: String,
    },
}

/// Validates `path`, naming the line and field of a mistake.
pub fn check_file(path: &Path) -> Result<crate::policy::Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    crate::policy::file::parse(&path.display().to_string(), &text).map_err(anyhow::Error::from)
}

pub fn policy(dd: &Path, json: bool, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Check { file } => {
            let path = match file {
                Some(f) => f,
                None => super::config::policy_file()?.context(
                    "no lakelet.toml with a policy here or above; `lakelet init` writes one",
                )?,
            };
            let p = check_file(&path)?;
            print(
                json,
                &serde_json::json!({
                    "file": path, "valid": true, "root": p.root,
                    "tiers": p.tiers.keys().collect::<Vec<_>>(),
                    "roles": p.roles.keys().collect::<Vec<_>>(),
                    "sha256": p.sha256,
                }),
                |_| {
                    format!(
                        "{}: valid; tiers {}; roles {}",
                        path.display(),
                        chain(&p),
                        p.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                },
            );
        }
        PolicyCmd::Show => {
            let v: serde_json::Value = Client::connect(dd)?.get("/policy")?;
            print(json, &v, |v| serde_json::to_string_pretty(v).unwrap());
        }
        PolicyCmd::Apply => {
            // The project's lakelet.toml when there is one here (checked first, naming the
            // line); else the daemon re-reads the file it was started with.
            let body = match super::config::policy_file()? {
                Some(path) => {
                    check_file(&path)?;
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::json!({ "file": path.display().to_string(), "text": text })
                }
                None => serde_json::json!({}),
            };
            let v: serde_json::Value = Client::connect(dd)?.post("/policy/apply", &body)?;
            print(json, &v, |v| {
                format!(
                    "policy {} is now enforced",
                    v["sha256"].as_str().unwrap_or("-")
                )
            });
        }
    }
    Ok(())
}

/// The tiers as chains from the root: `main → staging → qa`.
fn chain(p: &crate::policy::Policy) -> String {
    p.tiers
        .values()
        .filter(|t| {
            !p.tiers
                .values()
                .any(|c| c.parent.as_deref() == Some(&t.name))
        })
        .map(|leaf| {
            let mut names = vec![leaf.name.clone()];
            let mut cur = leaf;
            while let Some(parent) = cur.parent.as_ref().and_then(|n| p.tiers.get(n)) {
                names.push(parent.name.clone());
                cur = parent;
            }
            names.reverse();
            names.join(" → ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn principal(dd: &Path, json: bool, cmd: PrincipalCmd) -> Result<()> {
    let c = Client::connect(dd)?;
    match cmd {
        PrincipalCmd::Add { name, role, rotate } => {
            let p: crate::api::governance::NewPrincipal = c.post(
                "/principals",
                &serde_json::json!({ "name": name, "role": role, "rotate": rotate }),
            )?;
            print(json, &p, |p| {
                format!(
                    "principal {} ({}) — its secret, shown once; set LAKELET_PRINCIPAL={} and \
                     LAKELET_SECRET to act as it (the proxy takes it as the password):\n{}",
                    p.name, p.role, p.name, p.secret
                )
            });
        }
        PrincipalCmd::List => {
            let v: Vec<crate::api::governance::PrincipalView> = c.get("/principals")?;
            print(json, &v, |v| {
                let mut out = format!("{:<24} {:<12} {}", "PRINCIPAL", "ROLE", "CREATED");
                for p in v {
                    out += &format!("\n{:<24} {:<12} {}", p.name, p.role, p.created_at);
                }
                out
            });
        }
        PrincipalCmd::Remove { name } => {
            let v: serde_json::Value = c.delete(&format!("/principals/{}", seg(&name)))?;
            print(json, &v, |_| format!("removed principal {name}"));
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Records since a time (RFC 3339) or for the last duration (1h, 2d).
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    principal: Option<String>,
    /// An action or its prefix: branch, branch.create, connect, promote, policy…
    #[arg(long)]
    action: Option<String>,
    /// Only refusals.
    #[arg(long)]
    refused: bool,
    /// The newest N.
    #[arg(long)]
    limit: Option<usize>,
}

pub fn audit(dd: &Path, json: bool, a: AuditArgs) -> Result<()> {
    let mut q = vec![];
    if let Some(s) = &a.since {
        q.push(format!("since={}", seg(s)));
    }
    if let Some(p) = &a.principal {
        q.push(format!("principal={}", seg(p)));
    }
    if let Some(x) = &a.action {
        q.push(format!("action={}", seg(x)));
    }
    if a.refused {
        q.push("decision=refused".into());
    }
    if let Some(n) = a.limit {
        q.push(format!("limit={n}"));
    }
    let path = if q.is_empty() {
        "/audit".to_string()
    } else {
        format!("/audit?{}", q.join("&"))
    };
    let recs: Vec<Record> = Client::connect(dd)?.get(&path)?;
    print(json, &recs, |recs| {
        let mut out = format!(
            "{:>5} {:<20} {:<12} {:<10} {:<6} {:<16} {:<20} {:<8} {}",
            "SEQ",
            "TIME",
            "PRINCIPAL",
            "ROLE",
            "VIA",
            "ACTION",
            "TARGET",
            "DECISION",
            "RULE / RESULT"
        );
        for r in recs {
            let why = if r.decision == "refused" {
                format!("{}: {}", r.rule, r.reason)
            } else {
                format!("{} ({})", r.result, r.rule)
            };
            out += &format!(
                "\n{:>5} {:<20} {:<12} {:<10} {:<6} {:<16} {:<20} {:<8} {}",
                r.seq,
                r.time.get(..19).unwrap_or(&r.time),
                r.principal,
                r.role,
                r.via,
                r.action,
                r.target,
                r.decision,
                why
            );
        }
        out
    });
    Ok(())
}

pub fn promote(dd: &Path, json: bool, from: &str, to: &str) -> Result<()> {
    let g: crate::api::governance::Grant = Client::connect(dd)?.post(
        "/promotions",
        &serde_json::json!({ "from": from, "to": to }),
    )?;
    print(json, &g, |g| {
        format!(
            "{} → {}: write grant for user {} on '{}' until {} (password on the last line)\n{}",
            g.from, g.to, g.user, g.to, g.expire_time, g.token
        )
    });
    Ok(())
}

pub fn whoami(dd: &Path, json: bool) -> Result<()> {
    let w: crate::api::governance::WhoAmI = Client::connect(dd)?.get("/whoami")?;
    print(json, &w, |w| {
        format!(
            "{} (role {}), proxy user {}",
            w.principal, w.role, w.proxy_user
        )
    });
    Ok(())
}
