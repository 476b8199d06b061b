//! Governance from the command line: `lakelet init`, `policy`, `principal`, `audit`,
//! `promote`, `whoami`. Every decision is the daemon's; these commands only ask and print.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::print;
use crate::api::client::{seg, Client};
use crate::policy::audit::Record;

/// The file `lakelet init` writes: every table, commented, valid as it stands.
pub const STARTER: &str = r#"# lakelet.toml: the project's database governance, version-controlled with the code.
# `lakelet up` enforces it; after editing, `lakelet policy check` then `lakelet policy apply`.

[project]
id = "my-app"                 # the Lakebase project these branches mirror

# The tier hierarchy: long-lived branches, each forked from its parent. The root tier (no
# parent) is the branch `lakelet up` creates. Changes move up the chain one link at a time:
# a feature merges into the tier it came from, a tier promotes into its parent.
[tiers.main]
production = true             # production data: agents never branch from or connect to it
# raw_data = true             # (implied by production) only unmasked roles may connect
# protected = true            # (the default for tiers) never deleted, reset or restored

[tiers.staging]
parent = "main"
mask = true                   # created from main with the masking rules applied: no raw data

[tiers.qa]
parent = "staging"

# Features: ephemeral branches forked from a tier.
[features]
from = "staging"              # the tier `lakelet branch create X` forks from by default
ttl = "7d"                    # expiry of a feature created without --ttl
name = ["{principal}-*", "ci-pr-*", "agent-*"]   # allowed names; {principal} is the creator

# Roles. Branch selectors: "*" (all), "tiers", "features", "own" (features the principal
# created), or a tier's name. migrate = write access over the proxy (else connect is
# read-only).
[roles.platform]              # required: the daemon's owner acts as platform
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
promote = true
protect = true
admin = true                  # principals, the policy, gc, import; implies audit, superuser

[roles.developer]
create_from = ["main", "staging", "qa"]
connect = ["own", "staging", "qa"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]

[roles.agent]                 # agents never touch production and never promote
create_from = ["staging", "qa"]
connect = ["own"]
migrate = ["own"]
reset = ["own"]
delete = ["own"]

[roles.ci]
create_from = ["staging", "qa"]
connect = ["features", "staging", "qa"]
migrate = ["features"]
reset = ["features"]
delete = ["features"]
promote = true                # merge features into their tier, promote qa → staging → main
audit = true

# Principals may be declared here (their role then cannot be changed by `principal add`).
# Each gets its secret with `lakelet principal add NAME --role ROLE`.
# [principals.ci-runner]
# role = "ci"

# Masking: these roles get a masked copy when they branch from a tier with raw data, and
# never connect to raw data. Methods: hash, email, null, fixed, partial.
[masking]
roles = ["developer", "agent"]

[masking.columns]
# "public.customers.email" = "email"
# "public.customers.name" = "hash"
# "public.customers.phone" = { method = "partial", keep_last = 4 }
# "public.customers.notes" = "null"
# "public.customers.ssn" = { method = "fixed", value = "000-00-0000" }
"#;

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

/// Writes the starter lakelet.toml into `dir`.
pub fn init(dir: &Path, json: bool, force: bool) -> Result<()> {
    let path = dir.join("lakelet.toml");
    if path.exists() && !force {
        bail!(
            "{} exists; edit it, or pass --force to overwrite it with the starter",
            path.display()
        );
    }
    crate::util::write_atomically(&path, STARTER.as_bytes(), 0o644)?;
    print(json, &serde_json::json!({ "written": path }), |_| {
        format!(
            "wrote {}: tiers main → staging → qa, roles platform, developer, agent, ci; \
             `lakelet up` enforces it",
            path.display()
        )
    });
    Ok(())
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
            let v: serde_json::Value =
                Client::connect(dd)?.post("/policy/apply", &serde_json::json!({}))?;
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
