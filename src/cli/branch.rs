//! `lakelet branch …`: everything on branches goes through the Branches API client, so the
//! same commands work against the local daemon and a Lakebase workspace. Compute controls
//! (start, stop) and storage internals (retained, restore-point) are the daemon's own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Subcommand;

use super::print;
use crate::api::client::{is_not_found, seg, Client};
use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::{Branch, BranchSpec, RestoreRequest};
use crate::compute::Endpoint;

#[derive(Subcommand)]
pub enum BranchCmd {
    /// Hand every application object a superuser owns on branch NAME (an import, tables made
    /// as the superuser) to lakelet_app, the role migrations run as, so developers' and CI's
    /// migrations may alter them; branches forked afterwards inherit it. Admins only.
    OwnSchema {
        name: String,
        #[arg(long, default_value = "postgres")]
        database: String,
    },
    /// Let principal WITH into feature branch NAME (yours, or as an admin): write access unless
    /// --read-only, until --ttl if given. Decided by the daemon's policy and audited.
    Share {
        name: String,
        #[arg(long = "with")]
        with: String,
        #[arg(long)]
        read_only: bool,
        /// How long the share lasts (e.g. 2h, 7d); as long as the branch if unset.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Take a share back.
    Unshare {
        name: String,
        #[arg(long = "with")]
        with: String,
    },
    /// Create NAME from PARENT (default: the default branch), now or as of --at LSN|RFC3339.
    Create {
        name: String,
        #[arg(long)]
        from: Option<String>,
        /// An lsn (must be retained) or an RFC 3339 time (the newest retained state before it).
        #[arg(long)]
        at: Option<String>,
        /// A snapshot: never written, has no compute.
        #[arg(long)]
        snapshot: bool,
        /// Delete the branch this long after creation (e.g. 7d, 12h; at least 1s).
        #[arg(long, value_parser = parse_ttl, conflicts_with = "expire_time")]
        ttl: Option<Duration>,
        /// Delete the branch at this RFC 3339 time.
        #[arg(long)]
        expire_time: Option<String>,
        /// Protect it from deletion, reset and expiry.
        #[arg(long)]
        protected: bool,
    },
    /// Branches (and snapshots) of the project.
    List {
        /// Include soft-deleted branches.
        #[arg(long)]
        show_deleted: bool,
    },
    /// One branch as the API reports it.
    Get {
        name: String,
    },
    /// Delete a branch (soft: `undelete` brings it back until its purge time) or a snapshot.
    Delete {
        name: String,
        /// Remove it at once, freeing the name and (after GC) its storage.
        #[arg(long)]
        purge: bool,
    },
    /// Bring back a soft-deleted branch.
    Undelete {
        name: String,
    },
    /// Protect NAME from deletion, reset and expiry.
    Protect {
        name: String,
    },
    Unprotect {
        name: String,
    },
    /// Change when NAME expires.
    Expire {
        name: String,
        #[arg(long, value_parser = parse_ttl, conflicts_with_all = ["at", "never"])]
        ttl: Option<Duration>,
        #[arg(long, conflicts_with = "never")]
        at: Option<String>,
        #[arg(long)]
        never: bool,
    },
    /// Move NAME to the current state of the branch it was forked from (its changes are gone).
    Reset {
        name: String,
    },
    /// Move NAME to --from (default: itself) as of --at (rollback by repoint).
    Restore {
        name: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
    /// Start NAME's compute now (it also starts on demand).
    Start {
        name: String,
    },
    /// Stop NAME's compute (it starts again on demand).
    Stop {
        name: String,
    },
    /// Storage a branch owns and shares.
    Usage {
        name: String,
    },
    /// Which lsns a branch retains (possible --at values).
    Retained {
        name: String,
    },
    /// Record a restore point at the branch's current state.
    RestorePoint {
        name: String,
    },
}

/// `--at` as the API takes it: `(field, value)` for an lsn (digits or `X/Y`) or a time.
pub(super) fn at_field(at: &str) -> (&'static str, String) {
    if at.bytes().all(|b| b.is_ascii_digit()) || at.contains('/') {
        ("lsn", at.to_string())
    } else {
        ("time", at.to_string())
    }
}

/// A TTL as the API counts it, in whole seconds, and at least one: `0s` would make a branch
/// that is expired as it is made (the API refuses a past expire_time for the same reason).
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s} is shorter than a second: the branch would be expired as it is made"
        ));
    }
    Ok(d)
}

fn ttl(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn state(b: &Branch) -> String {
    let s = b.status.clone().unwrap_or_default();
    s.current_state.unwrap_or_else(|| "?".into())
}

fn short(name: Option<&str>) -> String {
    name.and_then(|n| n.rsplit('/').next())
        .unwrap_or("-")
        .to_string()
}

fn describe(b: &Branch) -> String {
    let s = b.status.clone().unwrap_or_default();
    let mut out = format!(
        "{} ({})\n  state      {}\n  source     {}{}\n  protected  {}\n  expires    {}\n  size       {} bytes\n  created    {}",
        b.branch_id.as_deref().unwrap_or("?"),
        b.name.as_deref().unwrap_or("?"),
        state(b),
        short(s.source_branch.as_deref().or(s.source_snapshot.as_deref())),
        s.source_branch_lsn
            .map(|l| format!(" at lsn {l}"))
            .unwrap_or_default(),
        s.is_protected.unwrap_or(false),
        s.expire_time.as_deref().unwrap_or("never"),
        s.logical_size_bytes.unwrap_or(0),
        b.create_time.as_deref().unwrap_or("?"),
    );
    if let Some(t) = s.delete_time {
        out += &format!(
            "\n  deleted    {t} (purged at {})",
            s.purge_time.as_deref().unwrap_or("?")
        );
    }
    out
}

pub fn run(dd: &Path, json: bool, api: &Branches, cmd: BranchCmd) -> Result<()> {
    match cmd {
        BranchCmd::Create {
            name,
            from,
            at,
            snapshot,
            ttl: life,
            expire_time,
            protected,
        } => {
            let t = Instant::now();
            if snapshot {
                if protected {
                    bail!("snapshots cannot be protected; they are never written or reset");
                }
                let at = at.as_deref().map(at_field);
                let at = at.as_ref().map(|(k, v)| {
                    (
                        if *k == "lsn" {
                            "source_branch_lsn"
                        } else {
                            "source_branch_time"
                        },
                        v.as_str(),
                    )
                });
                // A snapshot names its source; the default branch is the project's.
                let from = match from {
                    Some(f) => f,
                    None => api.default_branch()?,
                };
                let s = api.create_snapshot(&name, &from, at)?;
                print(json, &s, |s| {
                    format!(
                        "created snapshot '{name}' of '{from}' at lsn {} in {:.2} ms",
                        s.spec
                            .as_ref()
                            .and_then(|x| x.source_branch_lsn.clone())
                            .unwrap_or("?".into()),
                        t.elapsed().as_secs_f64() * 1000.0
                    )
                });
                return Ok(());
            }
            let mut spec = BranchSpec {
                // Absent: the server's default branch.
                source_branch: from.as_deref().map(|f| api.branch_name(f)),
                is_protected: protected.then_some(true),
                ttl: life.map(ttl),
                // Nothing given: no expiry, unless the local daemon enforces a policy (its
                // feature ttl applies when the request names no expiry).
                no_expiry: (life.is_none() && expire_time.is_none() && !api.policy_declared())
                    .then_some(true),
                expire_time,
                ..Default::default()
            };
            // `--from` a snapshot: the API names that source differently.
            if let Some(f) = from.as_deref() {
                let is_snapshot = api
                    .list_snapshots()
                    .unwrap_or_default()
                    .iter()
                    .any(|s| s.snapshot_id.as_deref() == Some(f));
                if is_snapshot {
                    spec.source_branch = None;
                    spec.source_snapshot = Some(api.snapshot_name(f));
                }
            }
            match at.as_deref().map(at_field) {
                Some(("lsn", v)) => spec.source_branch_lsn = Some(v),
                Some((_, v)) => spec.source_branch_time = Some(v),
                None => {}
            }
            let (b, elapsed_us) = api.create_timed(&name, spec)?;
            // The Branch, plus the daemon's own time for the creation (benchmarks read it).
            let mut v = serde_json::to_value(&b)?;
            if let Some(us) = elapsed_us {
                v["elapsed_us"] = us.into();
            }
            print(json, &v, |_| {
                let s = b.status.clone().unwrap_or_default();
                format!(
                    "created branch '{name}' from '{}' at lsn {} in {:.2} ms",
                    short(s.source_branch.as_deref()),
                    s.source_branch_lsn.unwrap_or("?".into()),
                    t.elapsed().as_secs_f64() * 1000.0
                )
            });
        }
        BranchCmd::List { show_deleted } => {
            let branches = api.list(show_deleted)?;
            let snapshots = api.list_snapshots().unwrap_or_default();
            let v = serde_json::json!({ "branches": branches, "snapshots": snapshots });
            print(json, &v, |_| {
                let mut out = format!(
                    "{:<24} {:<9} {:<16} {:<10} {:<21} {}",
                    "NAME", "STATE", "SOURCE", "PROTECTED", "EXPIRES", "CREATED"
                );
                for b in &branches {
                    let s = b.status.clone().unwrap_or_default();
                    out += &format!(
                        "\n{:<24} {:<9} {:<16} {:<10} {:<21} {}",
                        b.branch_id.as_deref().unwrap_or("?"),
                        state(b),
                        short(s.source_branch.as_deref().or(s.source_snapshot.as_deref())),
                        if s.is_protected == Some(true) {
                            "yes"
                        } else {
                            "-"
                        },
                        s.expire_time.as_deref().unwrap_or("-"),
                        b.create_time.as_deref().unwrap_or("?")
                    );
                }
                for s in &snapshots {
                    let st = s.status.clone().unwrap_or_default();
                    out += &format!(
                        "\n{:<24} {:<9} {:<16} {:<10} {:<21} {}",
                        s.snapshot_id.as_deref().unwrap_or("?"),
                        "SNAPSHOT",
                        short(st.source_branch.as_deref()),
                        "-",
                        st.expire_time.as_deref().unwrap_or("-"),
                        s.create_time.as_deref().unwrap_or("?")
                    );
                }
                out
            });
        }
        BranchCmd::Get { name } => {
            let b = api.get(&name)?;
            print(json, &b, describe);
        }
        BranchCmd::Delete { name, purge } => {
            match api.delete(&name, purge) {
                Ok(()) => {}
                // Snapshots share the namespace; delete one by name too.
                Err(e)
                    if is_not_found(&e)
                        && api
                            .list_snapshots()?
                            .iter()
                            .any(|s| s.snapshot_id.as_deref() == Some(name.as_str())) =>
                {
                    api.delete_snapshot(&name)?
                }
                Err(e) => return Err(e),
            }
            let v = serde_json::json!({ "deleted": name, "purged": purge });
            print(json, &v, |_| {
                if purge {
                    format!("deleted branch '{name}'")
                } else {
                    format!(
                        "deleted branch '{name}' (`lakelet branch undelete {name}` brings it back; \
                         --purge frees the name now)"
                    )
                }
            });
        }
        BranchCmd::OwnSchema { name, database } => {
            let v: serde_json::Value = crate::api::client::Client::connect(dd)?.post(
                &format!("/branches/{}/schema-owner", crate::api::client::seg(&name)),
                &serde_json::json!({ "database": database }),
            )?;
            print(json, &v, |v| {
                format!(
                    "'{name}' (database {database}): {} objects handed to lakelet_app",
                    v["objects"]
                )
            });
        }
        BranchCmd::Share {
            name,
            with,
            read_only,
            ttl,
        } => {
            let v: serde_json::Value = crate::api::client::Client::connect(dd)?.post(
                &format!("/branches/{}/shares", crate::api::client::seg(&name)),
                &serde_json::json!({ "principal": with, "read_only": read_only, "ttl": ttl }),
            )?;
            print(json, &v, |_| {
                format!(
                    "'{name}' is shared with {with} ({}{})",
                    if read_only {
                        "read only"
                    } else {
                        "read and write"
                    },
                    ttl.as_deref()
                        .map(|t| format!(", for {t}"))
                        .unwrap_or_default()
                )
            });
        }
        BranchCmd::Unshare { name, with } => {
            let v: serde_json::Value =
                crate::api::client::Client::connect(dd)?.delete(&format!(
                    "/branches/{}/shares/{}",
                    crate::api::client::seg(&name),
                    crate::api::client::seg(&with)
                ))?;
            print(json, &v, |_| {
                format!("'{name}' is no longer shared with {with}")
            });
        }
        BranchCmd::Undelete { name } => {
            let b = api.undelete(&name)?;
            print(json, &b, |_| format!("undeleted branch '{name}'"));
        }
        BranchCmd::Protect { name } => protect(json, api, &name, true)?,
        BranchCmd::Unprotect { name } => protect(json, api, &name, false)?,
        BranchCmd::Expire {
            name,
            ttl: life,
            at,
            never,
        } => {
            if life.is_none() && at.is_none() && !never {
                bail!("give --ttl DURATION, --at TIME or --never");
            }
            let (spec, mask) = if let Some(d) = life {
                (
                    BranchSpec {
                        ttl: Some(ttl(d)),
                        ..Default::default()
                    },
                    "spec.ttl",
                )
            } else if let Some(t) = at {
                (
                    BranchSpec {
                        expire_time: Some(t),
                        ..Default::default()
                    },
                    "spec.expire_time",
                )
            } else {
                (
                    BranchSpec {
                        no_expiry: Some(true),
                        ..Default::default()
                    },
                    "spec.no_expiry",
                )
            };
            let b = api.update(&name, spec, &[mask])?;
            print(json, &b, |b| {
                let s = b.status.clone().unwrap_or_default();
                format!(
                    "'{name}' expires {}",
                    s.expire_time
                        .map(|t| format!("at {t}"))
                        .unwrap_or("never".into())
                )
            });
        }
        BranchCmd::Reset { name } => {
            let b = api.reset(&name)?;
            print(json, &b, |b| {
                let s = b.status.clone().unwrap_or_default();
                format!(
                    "reset '{name}' to the head of '{}' (lsn {})",
                    short(s.source_branch.as_deref()),
                    s.source_branch_lsn.unwrap_or("?".into())
                )
            });
        }
        BranchCmd::Restore { name, from, at } => {
            let mut req = RestoreRequest {
                source_branch: from.as_deref().map(|f| api.branch_name(f)),
                ..Default::default()
            };
            match at.as_deref().map(at_field) {
                Some(("lsn", v)) => req.source_branch_lsn = Some(v),
                Some((_, v)) => req.source_branch_time = Some(v),
                None => {}
            }
            let b = api.restore(&name, req)?;
            print(json, &b, |b| {
                let s = b.status.clone().unwrap_or_default();
                format!(
                    "'{name}' now starts from '{}' at lsn {}",
                    short(s.source_branch.as_deref()),
                    s.source_branch_lsn.unwrap_or("?".into())
                )
            });
        }
        BranchCmd::Usage { name } => {
            let u = api.usage(&name)?;
            print(json, &u, |u| {
                format!(
                    "{name}: owns {} ({} versions), shares {} with ancestors, logical size {} in {} files",
                    super::mib(u.own_bytes),
                    u.own_versions,
                    super::mib(u.shared_bytes),
                    super::mib(u.logical_size_bytes),
                    u.files
                )
            });
        }
        BranchCmd::Start { name } => {
            let e: Endpoint = local(dd)?.post(
                &format!("/branches/{}/start", seg(&name)),
                &serde_json::json!({}),
            )?;
            print(json, &e, |e| {
                format!(
                    "compute of '{}' running (pid {}), socket {}",
                    e.branch,
                    e.pid,
                    e.socket_dir.display()
                )
            });
        }
        BranchCmd::Stop { name } => {
            let v: serde_json::Value = local(dd)?.post(
                &format!("/branches/{}/stop", seg(&name)),
                &serde_json::json!({}),
            )?;
            print(json, &v, |v| {
                if v["was_running"].as_bool() == Some(true) {
                    format!("stopped the compute of '{name}'")
                } else {
                    format!("the compute of '{name}' was not running")
                }
            });
        }
        BranchCmd::Retained { name } => {
            let r: serde_json::Value =
                local(dd)?.get(&format!("/branches/{}/retained", seg(&name)))?;
            print(json, &r, |r| {
                let mut out = String::new();
                if let Some(f) = r["fine_from"].as_u64() {
                    out += &format!("every lsn from {f} to {}\n", r["last_lsn"]);
                }
                for p in r["points"].as_array().into_iter().flatten() {
                    out += &format!(
                        "lsn {:<10} {:<14} {}\n",
                        p["lsn"],
                        p["kind"].as_str().unwrap_or(""),
                        p["time"].as_str().unwrap_or("")
                    );
                }
                out.trim_end().to_string()
            });
        }
        BranchCmd::RestorePoint { name } => {
            let v: serde_json::Value = local(dd)?.post(
                &format!("/branches/{}/restore-point", seg(&name)),
                &serde_json::json!({}),
            )?;
            print(json, &v, |v| {
                format!("restore point of '{name}' at lsn {}", v["lsn"])
            });
        }
    }
    Ok(())
}

/// The daemon's own API, for what Lakebase has no counterpart of.
fn local(dd: &Path) -> Result<Client> {
    Client::connect(dd)
}

fn protect(json: bool, api: &Branches, name: &str, on: bool) -> Result<()> {
    let spec = BranchSpec {
        is_protected: Some(on),
        ..Default::default()
    };
    let b = api.update(name, spec, &["spec.is_protected"])?;
    print(json, &b, |_| {
        format!(
            "branch '{name}' is {}protected",
            if on { "" } else { "no longer " }
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::at_field;

    /// `--at` goes to the API as an lsn (decimal or `X/Y`) or a time; the daemon parses and
    /// refuses bad values (tests/roundtrip.rs checks the messages).
    #[test]
    fn at_is_an_lsn_or_a_time() {
        assert_eq!(at_field("42"), ("lsn", "42".to_string()));
        assert_eq!(at_field("0/2A"), ("lsn", "0/2A".to_string()));
        assert_eq!(
            at_field("2026-11-21T10:32:00Z"),
            ("time", "2026-11-21T10:32:00Z".to_string())
        );
        assert_eq!(at_field("last tuesday").0, "time");
    }
}
