//! The SCM gate engine: every feature moves through scaffold-complete → feature-claimed →
//! pr-ready → ci-green → merged, one command per transition, each checking all of its
//! preconditions before it changes anything (a refused gate leaves the state file, git and
//! every branch as they were), and each audited.
//!
//! Like migrate and diff, this layer knows connection strings and the Branches API client
//! only; the CLI hands it an [`Env`] that knows how to reach the local daemon or Lakebase.
//!
//! - `state.rs`: the App Dev Kit v1 state file and its schema
//! - `git.rs`: the git operations the gates need; `forge.rs`: local pull requests and CI runs
//! - `gates.rs`: claim, prepare-pr, wait-ci, merge, abandon (the transitions)
//! - `pipeline.rs`: what CI runs (`lakelet ci pr|cleanup-orphans`), also locally;
//!   `merge.rs`: `lakelet ci merge`, the checks every merge makes, and the handoff
//! - `tiers.rs`: migrations applied to a tier behind a snapshot, promotion and rollback
//! - `care.rs`: doctor and recover-orphans; `scaffold.rs`: `lakelet init`

pub mod care;
pub mod forge;
pub mod gates;
pub mod git;
pub mod merge;
pub mod pipeline;
pub mod scaffold;
pub mod state;
pub mod tiers;

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::api::lakebase::client::Branches;
use crate::migrate::script::{self, Script};
use crate::migrate::Settings;
use crate::policy::Policy;

/// The project as lakelet.toml declares it.
pub struct Project {
    /// The repository root (where lakelet.toml is).
    pub dir: PathBuf,
    pub id: String,
    /// Tiers and the entry tier features fork from.
    pub policy: Policy,
    pub migrations: PathBuf,
    pub settings: Settings,
    /// `[ci] test`: the project's test command, run with DATABASE_URL set.
    pub test_command: Option<String>,
    /// `[ci] lint`: whether lint findings fail a PR's run.
    pub lint: LintLevel,
    /// `[ci] snapshot_ttl`: how long a merge's pre-migration snapshot is kept.
    pub merge_snapshot_ttl: std::time::Duration,
    /// `[ci] approvals`: how many approvals of its head a PR needs before it is merged.
    pub approvals: usize,
    /// An extra precondition of prepare-pr, given by the CLI when a layer above opts in (the
    /// TDD layer, as "tdd"); scm knows only its name and the problems it returns.
    pub pr_check: Option<Check>,
}

/// A named precondition from above: the problems it finds in the project (empty: passes).
pub struct Check {
    pub name: &'static str,
    pub run: Box<CheckFn>,
}

/// Given the project directory, every problem found.
pub type CheckFn = dyn Fn(&std::path::Path) -> Result<Vec<String>>;

/// What lint findings on a PR's migrations do to its CI run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    /// An unacknowledged finding fails the run.
    #[default]
    Error,
    /// Findings are reported; the run stays green.
    Warn,
}

impl Project {
    pub fn scripts(&self) -> Result<Vec<Script>> {
        if !self.migrations.is_dir() {
            return Ok(vec![]);
        }
        script::load(&self.migrations)
    }

    /// The tier features fork from (lakelet.toml `[features] from`).
    pub fn entry_tier(&self) -> &str {
        &self.policy.features.from
    }

    pub fn is_tier(&self, name: &str) -> bool {
        self.policy.tiers.contains_key(name)
    }

    pub fn parent_tier(&self, tier: &str) -> Option<&str> {
        self.policy.tiers.get(tier)?.parent.as_deref()
    }

    /// The App Dev Kit's `tier_topology`: how many tiers from production down to the one
    /// features fork from (1 production, 2 + staging, 3 + a third). The kit knows no more.
    pub fn tier_topology(&self) -> Result<u8> {
        let mut n = 1;
        let mut t = self.entry_tier();
        while let Some(p) = self.parent_tier(t) {
            n += 1;
            t = p;
        }
        if n > 3 {
            bail!(
                "features fork from '{}', {n} tiers below the root; the App Dev Kit's state \
                 format (tier_topology 1–3) cannot describe it. Point [features] from at a \
                 tier at most three deep",
                self.entry_tier()
            );
        }
        Ok(n)
    }
}

/// One audited workflow event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `scm.claim`, `ci.pr`, `promote.apply`, …
    pub action: String,
    pub target: String,
    pub args: serde_json::Value,
    /// Empty when it happened; otherwise why it was refused or failed.
    pub refused: String,
}

/// How the engine reaches the world: given by the CLI per target.
pub struct Env<'a> {
    pub api: &'a Branches,
    /// A connection string for a branch (database `postgres`), as the acting principal.
    pub connect: &'a dyn Fn(&str) -> Result<String>,
    /// A connection string that writes to tier `to`, granted (and checked against the tier
    /// chain by the daemon) for moving `from`'s changes into it.
    pub grant: &'a dyn Fn(&str, &str) -> Result<String>,
    /// Repoints a tier at a snapshot (checked and audited by the daemon; refused when the
    /// tier took writes since, unless told to discard them).
    pub rollback: &'a dyn Fn(&tiers::Rollback) -> Result<crate::api::rollback::RolledBack>,
    pub audit: &'a dyn Fn(&Event),
    /// Whether `child` still hangs off `parent`'s current timeline: false once `parent` was
    /// repointed (rolled back, reset, restored) after `child` was forked. None where the target
    /// does not say (Lakebase).
    pub on_timeline: &'a dyn Fn(&str, &str) -> Result<Option<bool>>,
    /// Who acts: the prefix of the feature branches this principal creates.
    pub principal: String,
}

impl Env<'_> {
    pub fn record(&self, action: &str, target: &str, args: serde_json::Value, r: &Result<()>) {
        (self.audit)(&Event {
            action: action.into(),
            target: target.into(),
            args,
            refused: match r {
                Ok(()) => String::new(),
                Err(e) => format!("{e:#}"),
            },
        });
    }

    /// The database branch that pairs with feature `id`: the principal's prefix keeps it
    /// inside the common `{principal}-*` feature-name rule.
    pub fn feature_branch(&self, id: &str) -> String {
        format!("{}-{id}", self.principal)
    }

    /// The workflow's branch primitive: a database branch `name` forked from `source` with a
    /// TTL (so a target that fills in none still expires it). Claim makes the feature branch
    /// with it, and the TDD layer its cycle branches; the caller records it in the forge's
    /// ledger (`Forge::made`) so cleanups touch only what the workflow made.
    pub fn fork(
        &self,
        name: &str,
        source: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<crate::api::lakebase::types::Branch> {
        self.api.create(
            name,
            crate::api::lakebase::types::BranchSpec {
                source_branch: Some(self.api.branch_name(source)),
                ttl: ttl.map(|t| format!("{}s", t.as_secs().max(1))),
                ..Default::default()
            },
        )
    }

    /// Whether `name` is a branch; Err only when the API cannot answer.
    pub fn exists(&self, name: &str) -> Result<bool> {
        match self.api.get(name) {
            Ok(b) => Ok(b.status.and_then(|s| s.current_state).as_deref() != Some("DELETED")),
            Err(e) if crate::api::client::is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Everything a gate needs.
pub struct Ctx<'a> {
    pub project: &'a Project,
    pub env: &'a Env<'a>,
    pub git: &'a git::Git,
    pub forge: &'a forge::Forge,
}

/// Gathers every failed precondition of a gate, so one refusal names them all.
#[derive(Default)]
pub struct Preconditions {
    failed: Vec<String>,
}

impl Preconditions {
    pub fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.failed.push(why());
        }
    }

    pub fn fail(&mut self, why: impl Into<String>) {
        self.failed.push(why.into());
    }

    /// Err listing every failed precondition; the gate then changes nothing.
    pub fn verdict(self, gate: &str) -> Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        bail!(
            "{gate} refused; nothing was changed:\n  - {}",
            self.failed.join("\n  - ")
        )
    }
}
