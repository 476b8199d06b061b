//! The governor: the daemon's one place where identity, policy, masking and audit meet.
//!
//! The API and the proxy resolve who is acting (`actor_*`), gather the facts about the
//! branches involved (`facts`), and call `permit`, which decides with the active policy and
//! audits a refusal before returning it. What it allows comes back as a `Permit`, the only way
//! to act: `finish(result)` spends it and writes the action's one audit row with its real
//! outcome, and a permit dropped unfinished (an early return, a cancelled request, a panic)
//! still writes it, as abandoned. Nothing else decides, so there is no route around a rule,
//! and no allowed action leaves no row.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{bail, Context, Result};

use super::audit::{AuditLog, Entry};
use super::file;
use super::model::{Action, Actor, Decision, Facts, Policy, OWNER};
use super::principals::Principals;
use super::stamp::{MaskState, Stamp};
use crate::compute::Computes;
use crate::lifecycle::{Branches, Lifecycle};

/// A refused action: the rule that refused it, and why. The API answers 403
/// PERMISSION_DENIED, the proxy 42501, the CLI exits non-zero with the message.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub rule: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by policy rule {}: {}", self.rule, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// An allowed action waiting for its outcome (module doc). Only `Governor::permit` makes one.
#[must_use = "finish the permit with the action's outcome: that writes its audit row"]
pub struct Permit {
    pending: Option<Pending>,
    /// What was decided: the rule, and what the action may do (access, masking).
    pub decision: Decision,
}

struct Pending {
    gov: Arc<Governor>,
    who: Actor,
    via: String,
    action: String,
    target: String,
    args: serde_json::Value,
}

impl Permit {
    /// Adds `key` to the audit row's arguments (what the decision settled, say).
    pub fn note(&mut self, key: &str, value: serde_json::Value) {
        if let Some(p) = self.pending.as_mut() {
            if !p.args.is_object() {
                p.args = serde_json::json!({});
            }
            p.args[key] = value;
        }
    }

    /// Spends the permit: the audit row records `r`'s outcome, and `r` is passed on.
    pub fn finish<T, E: std::fmt::Display>(mut self, r: Result<T, E>) -> Result<T, E> {
        let outcome = r.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e:#}"));
        let p = self.pending.take().expect("a permit is finished once");
        p.write_decided(&self.decision, &outcome);
        r
    }
}

impl Pending {
    fn write_decided(self, d: &Decision, result: &Result<()>) {
        debug_assert!(d.allowed, "a permit holds an allowed decision");
        self.gov.record(
            &self.who,
            &self.via,
            &self.action,
            &self.target,
            self.args,
            d,
            result,
        );
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            let r = Err(anyhow::anyhow!(
                "abandoned: the action ended before its outcome was known"
            ));
            p.write_decided(&self.decision, &r);
        }
    }
}

pub struct Governor {
    policy: RwLock<Arc<Policy>>,
    /// The file `lakelet policy apply` re-reads (what `lakelet up` was given).
    source: Mutex<Option<PathBuf>>,
    active_path: PathBuf,
    pub principals: Principals,
    pub audit: AuditLog,
    computes: Arc<Computes>,
    /// Masking's marks go into the branch's lifecycle record, under its lock.
    branches: Arc<Branches>,
    mask_key: String,
    /// (branch, postmaster pid, database) where lakelet_owner/reader are known to exist.
    roles_ready: Mutex<HashSet<(String, u32, String)>>,
    system: super::system::SystemDb,
}

/// The name used in messages for a policy file.
fn shown(p: &Path) -> String {
    p.display().to_string()
}

impl Governor {
    /// Opens the principals, the audit log and the active policy (DATA/policy.toml, the last
    /// one applied). `source`, when given, is applied over it (and audited if it changed).
    pub fn open(
        data_dir: &Path,
        branches: Arc<Branches>,
        source: Option<&Path>,
    ) -> Result<Governor> {
        let computes = branches.computes().clone();
        let active_path = data_dir.join("policy.toml");
        let root = computes.settings().root_branch.clone();
        let policy = match std::fs::read_to_string(&active_path) {
            Ok(text) => file::parse(&shown(&active_path), &text)
                .map_err(|e| anyhow::anyhow!("the active policy is invalid: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Policy::open(&root),
            Err(e) => return Err(e).with_context(|| format!("reading {}", active_path.display())),
        };
        let key_path = data_dir.join("masking-key");
        let mask_key = match std::fs::read_to_string(&key_path) {
            Ok(k) if k.trim().len() >= 32 => k.trim().to_string(),
            _ => {
                let k = crate::util::hex(&crate::util::random_bytes::<32>());
                crate::util::write_atomically(&key_path, k.as_bytes(), 0o600)?;
                k
            }
        };
        let g = Governor {
            policy: RwLock::new(Arc::new(policy)),
            source: Mutex::new(source.map(Path::to_path_buf)),
            active_path,
            principals: Principals::open(data_dir)?,
            audit: AuditLog::open(data_dir)?,
            system: super::system::SystemDb::new(data_dir, computes.clone()),
            computes,
            branches,
            mask_key,
            roles_ready: Default::default(),
        };
        if source.is_some() {
            let owner = g.owner();
            g.apply_policy(&owner, "daemon", None)?;
        }
        g.check_root()?;
        Ok(g)
    }

    fn check_root(&self) -> Result<()> {
        let p = self.policy();
        let root = &self.computes.settings().root_branch;
        if p.declared && &p.root != root {
            bail!(
                "lakelet.toml's root tier is '{}' but this daemon's root branch is '{root}'; \
                 rename the tier to '{root}' (the root tier is the branch `lakelet up` created)",
                p.root
            );
        }
        Ok(())
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().unwrap().clone()
    }

    pub fn owner(&self) -> Actor {
        Actor {
            principal: OWNER.into(),
            role: "platform".into(),
        }
    }

    /// Re-reads the policy file and makes it active if it is valid; audited either way.
    ///
    /// `given`: a file's name and text sent by the caller (`lakelet policy apply` in a project
    /// sends its lakelet.toml), applied instead of re-reading the file `lakelet up` named; so
    /// a daemon started without one can take a policy without a restart.
    pub fn apply_policy(
        &self,
        who: &Actor,
        via: &str,
        given: Option<(String, String)>,
    ) -> Result<Arc<Policy>> {
        let d = self.decide(
            who,
            &Action::Admin {
                what: "apply the policy",
            },
        );
        self.enforce_decided(
            who,
            via,
            "policy.apply",
            "lakelet.toml",
            serde_json::json!({}),
            &d,
        )?;
        let (src, text) = match given {
            Some((name, text)) => (PathBuf::from(name), Ok(text)),
            None => {
                let Some(src) = self.source.lock().unwrap().clone() else {
                    bail!(
                        "this daemon was started without a lakelet.toml and none was sent; run \
                         `lakelet policy apply` in the project that holds it"
                    );
                };
                let text = std::fs::read_to_string(&src)
                    .with_context(|| format!("reading {}", src.display()));
                (src, text)
            }
        };
        let old = self.policy();
        let result = (|| -> Result<Arc<Policy>> {
            let text = text?;
            let p = if file::declares_policy(&text) {
                file::parse(&shown(&src), &text).map_err(anyhow::Error::from)?
            } else {
                Policy::open(&self.computes.settings().root_branch)
            };
            if p.declared && p.root != self.computes.settings().root_branch {
                bail!(
                    "{}: the root tier is '{}' but this daemon's root branch is '{}'",
                    src.display(),
                    p.root,
                    self.computes.settings().root_branch
                );
            }
            if p.declared {
                crate::util::write_atomically(&self.active_path, text.as_bytes(), 0o644)?;
            } else {
                let _ = std::fs::remove_file(&self.active_path);
            }
            Ok(Arc::new(p))
        })();
        let changed = result.as_ref().map(|p| p.sha256 != old.sha256);
        // An unchanged file at start is not news; anything else is.
        if via != "daemon" || !matches!(changed, Ok(false)) {
            self.record(
                who,
                via,
                "policy.apply",
                &shown(&src),
                serde_json::json!({
                    "from": old.sha256,
                    "to": result.as_ref().map(|p| p.sha256.clone()).unwrap_or_default(),
                }),
                &d,
                &result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
        }
        let p = result?;
        *self.policy.write().unwrap() = p.clone();
        Ok(p)
    }

    /// The principal behind an API bearer token: the owner's token, or a principal's secret.
    pub fn actor_for_secret(&self, secret: &str, owner_token: &str) -> Option<Actor> {
        if ct_eq(secret.as_bytes(), owner_token.as_bytes()) {
            return Some(self.owner());
        }
        let (name, _) = self.principals.by_secret(secret)?;
        self.actor(&name)
    }

    /// The principal named `name` (the proxy's user), with its role now.
    pub fn actor(&self, name: &str) -> Option<Actor> {
        if name == crate::proxy::LOCAL_USER || name == OWNER {
            return Some(self.owner());
        }
        let e = self.principals.get(name)?;
        let role = self
            .policy()
            .principals
            .get(name)
            .cloned()
            .unwrap_or(e.role);
        Some(Actor {
            principal: name.into(),
            role,
        })
    }

    /// What the policy needs to know about branch `name`.
    pub fn facts(&self, name: &str) -> Result<Facts> {
        let info = self.computes.store().branch(name)?;
        let st = Stamp::of(&Lifecycle::decode(&info.annotations));
        let now = self.computes.store().now();
        let mut f = self.policy().facts(
            name,
            info.snapshot,
            st.owner,
            st.source_tier,
            st.masking.is_some(),
        );
        f.shared = st
            .shares
            .into_iter()
            .filter(|s| s.until.is_none_or(|t| t > now))
            .collect();
        Ok(f)
    }

    pub fn decide(&self, who: &Actor, action: &Action) -> Decision {
        self.policy().decide(who, action)
    }

    fn enforce_decided(
        &self,
        who: &Actor,
        via: &str,
        action: &str,
        target: &str,
        args: serde_json::Value,
        d: &Decision,
    ) -> Result<()> {
        if d.allowed {
            return Ok(());
        }
        self.record(who, via, action, target, args, d, &Ok(()));
        Err(Refusal {
            rule: d.rule.clone(),
            reason: d.reason.clone(),
        }
        .into())
    }

    /// Decides; a refusal is audited and returned as an error, an allowance as the permit to
    /// act (audited by its `finish`).
    pub fn permit(
        self: &Arc<Self>,
        who: &Actor,
        via: &str,
        action: &Action,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Permit> {
        self.permit_named(who, via, action.name(), action, target, args)
    }

    /// `permit`, audited under `name` (an action with its own name: `credential.create` is
    /// decided as a connection).
    pub fn permit_named(
        self: &Arc<Self>,
        who: &Actor,
        via: &str,
        name: &str,
        action: &Action,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Permit> {
        let d = self.decide(who, action);
        if !d.allowed {
            let refused = self.enforce_decided(who, via, name, target, args, &d);
            return Err(refused.expect_err("a refused decision is an error"));
        }
        Ok(Permit {
            pending: Some(Pending {
                gov: self.clone(),
                who: who.clone(),
                via: via.into(),
                action: name.into(),
                target: target.into(),
                args,
            }),
            decision: d,
        })
    }

    /// Appends the audit record of a decision (and, if allowed, its result). An audit that
    /// cannot be written is logged loudly; the action has already happened.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        who: &Actor,
        via: &str,
        action: &str,
        target: &str,
        args: serde_json::Value,
        d: &Decision,
        result: &Result<()>,
    ) {
        let e = Entry {
            principal: who.principal.clone(),
            role: who.role.clone(),
            via: via.into(),
            action: action.into(),
            target: target.into(),
            args,
            allowed: d.allowed,
            rule: d.rule.clone(),
            reason: d.reason.clone(),
            result: match (d.allowed, result) {
                (false, _) => String::new(),
                (true, Ok(())) => "ok".into(),
                (true, Err(e)) => format!("error: {e:#}"),
            },
        };
        if let Err(e) = self.audit.append(e) {
            tracing::error!("the audit log could not be written: {e:#}");
        }
    }

    /// The lifecycle fields policy sets on a new branch made by `who` from `from`.
    pub fn stamp(&self, l: &mut Lifecycle, who: &Actor, from: &Facts, d: &Decision) {
        let st = Stamp {
            owner: Some(who.principal.clone()),
            source_tier: from.source_tier.clone(),
            masking: (d.mask || from.masked).then_some(MaskState {
                done: !d.mask,
                at: None,
            }),
            shares: vec![],
        };
        st.put(l);
    }

    /// Applies the masking rules to `name` (whose lifecycle says masking is pending) and marks
    /// it done. Nobody can connect before that: the proxy refuses a pending branch.
    pub async fn mask(&self, name: &str) -> Result<super::mask::Report> {
        let ep = self.computes.ensure_running(name).await?;
        let rules = self.policy().masking.columns.clone();
        let report = super::mask::apply(&ep.socket_dir, &rules, &self.mask_key)
            .await
            .with_context(|| format!("masking branch '{name}'"))?;
        let now = self.computes.store().now();
        self.update_stamp(name, move |st| {
            st.masking = Some(MaskState {
                done: true,
                at: Some(now),
            })
        })
        .await?;
        tracing::info!(
            branch = name,
            tables = report.tables.len(),
            rows = report.rows,
            "masked"
        );
        Ok(report)
    }

    /// Marks `name` as masking-pending before its data is replaced (reset, restore), so the
    /// proxy lets nobody in until `mask` has run again.
    pub async fn hold_for_masking(&self, name: &str) -> Result<()> {
        self.update_stamp(name, |st| {
            st.masking = Some(MaskState {
                done: false,
                at: None,
            })
        })
        .await
    }

    /// Lets `share.principal` into `name` (replacing an earlier share with it), or out again
    /// (`share` None for `principal`), in the branch's record under its lock.
    pub async fn set_share(
        &self,
        name: &str,
        principal: &str,
        share: Option<super::Share>,
    ) -> Result<()> {
        let principal = principal.to_string();
        self.update_stamp(name, move |st| {
            st.shares.retain(|s| s.principal != principal);
            st.shares.extend(share);
        })
        .await
    }

    /// Changes the policy's marks on `name`, in its lifecycle record under its lock.
    async fn update_stamp(
        &self,
        name: &str,
        f: impl FnOnce(&mut Stamp) + Send + 'static,
    ) -> Result<()> {
        self.branches
            .update(name, move |l| {
                let mut st = Stamp::of(l);
                f(&mut st);
                st.put(l);
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Whether `name`'s masking has not finished (the proxy refuses it then).
    pub fn masking_pending(&self, name: &str) -> bool {
        self.branches
            .lifecycle(name)
            .is_ok_and(|l| Stamp::of(&l).masking.is_some_and(|m| !m.done))
    }

    /// The `lakelet` database (audit, branches, usage, the proxy's `sessions` as given),
    /// started and brought up to date.
    pub async fn system_endpoint(
        &self,
        sessions: serde_json::Value,
    ) -> Result<crate::compute::Endpoint> {
        self.system.endpoint(self, sessions).await
    }

    /// Stops what the governor runs (the system database).
    pub async fn shutdown(&self) {
        self.system.stop().await;
    }

    /// Hands what a superuser owns in database `db` of the compute to `lakelet_app`.
    pub async fn hand_schema(&self, ep: &crate::compute::Endpoint, db: &str) -> Result<u64> {
        let n = super::pgroles::hand_to_app(&ep.socket_dir, db).await?;
        self.roles_ready
            .lock()
            .unwrap()
            .insert((ep.branch.clone(), ep.pid, db.to_string()));
        Ok(n)
    }

    /// Makes sure the non-superuser roles exist on the compute before a session uses them.
    pub async fn ensure_roles(&self, ep: &crate::compute::Endpoint, db: &str) -> Result<()> {
        let key = (ep.branch.clone(), ep.pid, db.to_string());
        if self.roles_ready.lock().unwrap().contains(&key) {
            return Ok(());
        }
        super::pgroles::ensure_roles(&ep.socket_dir, db).await?;
        self.roles_ready.lock().unwrap().insert(key);
        Ok(())
    }
}

pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
