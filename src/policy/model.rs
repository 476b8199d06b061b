//! The policy as the daemon uses it, and the one function that decides: [`Policy::decide`].
//!
//! `decide` is pure: it sees the policy, who acts, and the facts about the branches involved
//! (gathered by the governor from the store). Everything that enforces (the API handlers, the
//! proxy) goes through it, so a rule cannot hold in one entry point and not another.
//!
//! Rules that hold whatever the file says, because DESIGN.md makes them part of the product:
//! agents never branch from, connect to or promote production; a protected tier is never
//! deleted, reset or restored; a role in `masking.roles` never connects to a branch with raw
//! data; a merge or promotion moves exactly one link up the tier chain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub parent: Option<String>,
    /// Holds production data: agents never touch it or branches of it.
    pub production: bool,
    /// Holds data masked roles must not see (declared, or inherited from the parent unless
    /// the tier is masked when created).
    pub raw: bool,
    /// Created from its parent with the masking rules applied.
    pub mask: bool,
    /// Never deleted, reset or restored, whatever the branch's own flag says.
    pub protected: bool,
}

#[derive(Debug, Clone)]
pub struct Features {
    /// The tier features fork from when no source is given.
    pub from: String,
    /// The expiry a feature gets when it is created without one.
    pub ttl: Option<Duration>,
    /// Glob patterns (`*`, and `{principal}` for the creator's name) a feature's name must
    /// match; empty means any name.
    pub names: Vec<String>,
}

/// Which branches a role's right covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sel {
    All,
    Tiers,
    Features,
    /// Features (and snapshots) the principal created.
    Own,
    Tier(String),
}

impl Sel {
    pub fn parse(s: &str) -> Sel {
        match s {
            "*" => Sel::All,
            "tiers" => Sel::Tiers,
            "features" => Sel::Features,
            "own" => Sel::Own,
            t => Sel::Tier(t.to_string()),
        }
    }

    fn covers(&self, who: &str, b: &Facts) -> bool {
        match self {
            Sel::All => true,
            Sel::Tiers => b.tier,
            Sel::Features => !b.tier,
            Sel::Own => !b.tier && b.owner.as_deref() == Some(who),
            Sel::Tier(t) => b.tier && &b.name == t,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub create_from: Vec<Sel>,
    pub connect: Vec<Sel>,
    /// Write access (and so migrations) over the proxy.
    pub migrate: Vec<Sel>,
    /// Where this role's sessions hold the application schema's ownership (alter, drop,
    /// truncate outside a migration). Elsewhere its writes are DML and its own objects.
    pub drop: Vec<Sel>,
    pub reset: Vec<Sel>,
    pub delete: Vec<Sel>,
    pub promote: bool,
    pub protect: bool,
    /// Principals and the policy itself; gc, import and shutdown.
    pub admin: bool,
    pub audit: bool,
    /// Connects to computes as the Postgres superuser (else as lakelet_owner/lakelet_reader).
    pub superuser: bool,
    pub agent: bool,
    pub masked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskMethod {
    /// A keyed SHA-256, hex: equal inputs stay equal, so joins on the column still work.
    Hash,
    /// The keyed hash as the local part, the domain kept.
    Email,
    Null,
    Partial {
        keep_first: u32,
        keep_last: u32,
    },
    Fixed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRule {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub method: MaskMethod,
}

#[derive(Debug, Clone, Default)]
pub struct Masking {
    pub roles: BTreeSet<String>,
    pub columns: Vec<MaskRule>,
}

/// A validated policy. `declared == false` is the open policy of a daemon without one: the
/// owner may do anything and there are no other principals.
#[derive(Debug, Clone)]
pub struct Policy {
    pub declared: bool,
    /// The first 128 bits of the file's SHA-256, hex: what the audit records on a change.
    pub sha256: String,
    pub root: String,
    pub tiers: BTreeMap<String, Tier>,
    pub features: Features,
    pub roles: BTreeMap<String, Role>,
    /// Principals declared in the file, with their role (overrides `principal add`).
    pub principals: BTreeMap<String, String>,
    pub masking: Masking,
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub principal: String,
    pub role: String,
}

/// The principal name of the daemon's owner (its API token, the proxy's `postgres` user).
pub const OWNER: &str = "owner";

/// What the decision needs to know about one branch.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub name: String,
    /// Declared as a tier.
    pub tier: bool,
    pub snapshot: bool,
    pub owner: Option<String>,
    /// The tier this branch's data came from (itself for a tier).
    pub source_tier: Option<String>,
    /// Holds production data (a production tier, or an unmasked branch of one).
    pub production: bool,
    /// Holds raw (unmasked) data that masked roles must not see.
    pub raw: bool,
    pub masked: bool,
    /// The principals its owner let in (`lakelet branch share`), live ones only.
    pub shared: Vec<Share>,
}

/// One principal let into a branch by its owner, until a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    pub principal: String,
    /// Write access (lakelet_owner); otherwise read (lakelet_reader).
    pub write: bool,
    /// When it ends (store nanos); never if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Action<'a> {
    /// A new branch `name` (a snapshot if `snapshot`) from `from`, at its head or (`past`) at
    /// an earlier point.
    Create {
        name: &'a str,
        from: &'a Facts,
        snapshot: bool,
        past: bool,
    },
    Connect {
        branch: &'a Facts,
    },
    /// A connection with a promotion grant (a one-hour write token the promote route issued
    /// for this branch): decided again at connection, for a policy may have changed since.
    ConnectGranted {
        branch: &'a Facts,
    },
    Delete {
        branch: &'a Facts,
    },
    /// Reset to the parent, or restore to a point in time (of itself or `from`).
    Reset {
        branch: &'a Facts,
        from: Option<&'a Facts>,
    },
    /// Protection or expiry.
    Update {
        branch: &'a Facts,
        protect: Option<bool>,
    },
    /// Merge (a feature into its tier) or promotion (a tier into its parent).
    Promote {
        from: &'a Facts,
        to: &'a Facts,
    },
    /// Repointing a tier at one of its own snapshots (undoing a merge or promotion).
    Rollback {
        tier: &'a Facts,
        snapshot: &'a Facts,
    },
    /// Principals, the policy, gc, import, shutdown.
    Admin {
        what: &'a str,
    },
    ReadAudit,
    /// Letting principal `with` into `branch` (or out again): its owner's (or an admin's) to
    /// give, never a tier's or production's.
    Share {
        branch: &'a Facts,
        with: &'a str,
    },
    /// A workflow event the CLI reports after running a gate (`scm.merge`, `ci.pr`, …): held
    /// to the reporter's own rights, so a report is never more than its caller may do.
    Report {
        event: &'a str,
    },
}

/// Whether `event` is one the SCM engine reports (Some), and whether it moves changes into a
/// tier.
pub fn workflow_event_moves(event: &str) -> Option<bool> {
    WORKFLOW_EVENTS
        .iter()
        .find(|(e, _)| *e == event)
        .map(|(_, moves)| *moves)
}

/// The workflow events the SCM engine reports, and whether each moves changes into a tier
/// (and so needs the right to merge or promote).
pub const WORKFLOW_EVENTS: &[(&str, bool)] = &[
    ("scm.claim", false),
    ("scm.prepare-pr", false),
    ("scm.wait-ci", false),
    ("scm.merge", true),
    // A merge another principal made, recorded in the feature's state by its author.
    ("scm.record-merge", false),
    ("scm.abandon", false),
    ("scm.recover-orphans", false),
    ("ci.pr", false),
    ("ci.merge", true),
    ("ci.cleanup", false),
    ("pr.approve", false),
    ("promote.apply", true),
    // An A/B design decision: the chosen design's branch kept, the others soft-deleted.
    ("experiment.decide", false),
];

impl Action<'_> {
    /// The audit's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { snapshot: true, .. } => "snapshot.create",
            Action::Create { .. } => "branch.create",
            Action::Connect { .. } | Action::ConnectGranted { .. } => "connect",
            Action::Delete { .. } => "branch.delete",
            Action::Reset { from: None, .. } => "branch.reset",
            Action::Reset { .. } => "branch.restore",
            Action::Update { .. } => "branch.update",
            Action::Promote { from, .. } if !from.tier => "merge",
            Action::Promote { .. } => "promote",
            Action::Rollback { .. } => "rollback",
            Action::Admin { .. } => "admin",
            Action::ReadAudit => "audit.read",
            Action::Report { .. } => "workflow-event",
            Action::Share { .. } => "branch.share",
        }
    }
}

/// How a connection reaches the compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The Postgres superuser.
    Superuser,
    /// `lakelet_owner`: reads and writes every table and holds the application schema's
    /// ownership (`lakelet_app`): alters, drops, truncates anything in it. Not a superuser.
    Write,
    /// `lakelet_writer`: reads and writes every table's rows, creates (and drops) its own
    /// objects; what the application schema owns it may not alter, drop or truncate, except
    /// through a migration (the runner's `SET ROLE lakelet_app`).
    Dml,
    /// `lakelet_agent`: as `Dml`, but never drops anything: a DROP, in a migration or not, is
    /// refused with SQLSTATE 42501 (event triggers on the compute).
    DmlNoDrop,
    /// `lakelet_reader`: pg_read_all_data only.
    Read,
}

impl Access {
    /// The Postgres role a session with this access runs as (the superuser aside).
    pub fn pg_role(self) -> Option<&'static str> {
        match self {
            Access::Superuser => None,
            Access::Write => Some("lakelet_owner"),
            Access::Dml => Some("lakelet_writer"),
            Access::DmlNoDrop => Some("lakelet_agent"),
            Access::Read => Some("lakelet_reader"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided: a field of lakelet.toml (`roles.agent.create_from`) or a
    /// built-in rule (`agents-never-production`).
    pub rule: String,
    pub reason: String,
    /// For connections: how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// For creations: the new branch gets the masking rules before anyone connects.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask: bool,
}

impl Decision {
    /// A refusal by a built-in rule outside the policy file (e.g. `admission`: the facts a
    /// decision needs could not be read, so nothing is allowed).
    pub fn refused(rule: &str, reason: impl Into<String>) -> Decision {
        refuse(rule, reason)
    }

    /// What the daemon does on its own schedule (a branch's expiry): no principal asked, the
    /// branch's lifecycle did.
    pub fn scheduled(reason: impl Into<String>) -> Decision {
        allow("lifecycle", reason)
    }
}

fn allow(rule: impl Into<String>, reason: impl Into<String>) -> Decision {
    Decision {
        allowed: true,
        rule: rule.into(),
        reason: reason.into(),
        access: None,
        mask: false,
    }
}

fn refuse(rule: impl Into<String>, reason: impl Into<String>) -> Decision {
    Decision {
        allowed: false,
        ..allow(rule, reason)
    }
}

/// Moving changes into a tier (merge, promotion) or back out of it (rollback): roles with the
/// promote right, never agents.
fn may_move(role: &Role, r: &str, what: &str) -> Option<Decision> {
    if role.agent {
        return Some(refuse(
            "agents-never-promote",
            format!("role {r} is an agent role, and agents never {what}"),
        ));
    }
    if !role.promote {
        return Some(refuse(
            format!("roles.{r}.promote"),
            format!("role {r} may not {what}"),
        ));
    }
    None
}

/// Whether `name` matches the glob `pat` (`*` any run of characters, `{principal}` the
/// creator's name).
pub fn glob(pat: &str, name: &str, principal: &str) -> bool {
    let pat = pat.replace("{principal}", principal);
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl Policy {
    /// The policy of a daemon without a declared one: only the owner, who may do anything.
    pub fn open(root: &str) -> Policy {
        let all = vec![Sel::All];
        let platform = Role {
            name: "platform".into(),
            create_from: all.clone(),
            connect: all.clone(),
            migrate: all.clone(),
            drop: all.clone(),
            reset: all.clone(),
            delete: all,
            promote: true,
            protect: true,
            admin: true,
            audit: true,
            superuser: true,
            agent: false,
            masked: false,
        };
        Policy {
            declared: false,
            sha256: String::new(),
            root: root.into(),
            tiers: BTreeMap::new(),
            features: Features {
                from: root.into(),
                ttl: None,
                names: vec![],
            },
            roles: [("platform".to_string(), platform)].into(),
            principals: BTreeMap::new(),
            masking: Masking::default(),
        }
    }

    /// The facts of a tier or feature from what the branch record says.
    pub fn facts(
        &self,
        name: &str,
        snapshot: bool,
        owner: Option<String>,
        source_tier: Option<String>,
        masked: bool,
    ) -> Facts {
        let tier = self.tiers.get(name).filter(|_| !snapshot);
        let source_tier = if tier.is_some() {
            Some(name.to_string())
        } else {
            source_tier
        };
        let src = source_tier.as_deref().and_then(|t| self.tiers.get(t));
        // A branch whose origin is unknown (made before the policy) is taken to hold what
        // the root tier holds: the safe side.
        let src = src.or_else(|| self.tiers.get(&self.root));
        let (production, raw) = match (tier, src) {
            (Some(t), _) => (t.production, t.raw),
            (None, Some(s)) => (s.production && !masked, s.raw && !masked),
            (None, None) => (false, false),
        };
        Facts {
            name: name.into(),
            tier: tier.is_some(),
            snapshot,
            owner,
            source_tier,
            production,
            raw,
            masked,
            shared: vec![],
        }
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Decides whether `who` may do `action`.
    pub fn decide(&self, who: &Actor, action: &Action) -> Decision {
        let Some(role) = self.roles.get(&who.role) else {
            return refuse(
                format!("principals.{}.role", who.principal),
                format!(
                    "principal {} has role \"{}\", which lakelet.toml does not declare",
                    who.principal, who.role
                ),
            );
        };
        let r = &role.name;
        let p = who.principal.as_str();
        let covered = |sels: &[Sel], b: &Facts| sels.iter().any(|s| s.covers(p, b));
        let agent_prod = |b: &Facts, verb: &str| {
            (role.agent && b.production).then(|| {
                refuse(
                    "agents-never-production",
                    format!(
                        "role {r} is an agent role, and agents never {verb} production ('{}' holds production data)",
                        b.name
                    ),
                )
            })
        };
        let protected_tier = |b: &Facts, verb: &str| {
            let t = self.tiers.get(&b.name).filter(|t| b.tier && t.protected)?;
            Some(refuse(
                format!("tiers.{}.protected", t.name),
                format!("tier '{}' is protected: it is never {verb}", t.name),
            ))
        };
        match action {
            Action::Create {
                name,
                from,
                snapshot,
                past,
            } => {
                if let Some(d) = agent_prod(from, "branch from") {
                    return d;
                }
                // A past state of a masked branch may predate its masking: a branch of it is
                // masked again; a snapshot, never written, cannot be.
                let remask = from.masked && *past;
                if remask && *snapshot {
                    return refuse(
                        "masking.roles",
                        format!(
                            "'{}' is masked; a snapshot of it is taken at its current state only",
                            from.name
                        ),
                    );
                }
                if let Some(t) = self.tiers.get(*name).filter(|_| !snapshot) {
                    if !role.admin {
                        return refuse(
                            format!("roles.{r}.admin"),
                            format!("'{name}' is a tier; only an admin role creates tiers"),
                        );
                    }
                    if t.parent.as_deref() != Some(from.name.as_str()) || !from.tier {
                        return refuse(
                            format!("tiers.{name}.parent"),
                            match &t.parent {
                                Some(p) => format!(
                                    "tier '{name}' forks from its parent tier '{p}', not '{}'",
                                    from.name
                                ),
                                None => format!(
                                    "'{name}' is the root tier; it is not forked from anything"
                                ),
                            },
                        );
                    }
                    let mut d = allow(
                        format!("tiers.{name}.parent"),
                        format!("tier '{name}' from its parent '{}'", from.name),
                    );
                    d.mask = (t.mask && from.raw) || remask;
                    return d;
                }
                // A restore point of a tier, by a role that may move changes into it: a merge
                // or promotion never runs without one. A snapshot is never written, and who
                // reaches it is the connect rules' to say.
                if *snapshot && from.tier && role.promote && !role.agent && !role.masked {
                    return allow(
                        format!("roles.{r}.promote"),
                        format!(
                            "a restore point of tier '{}' before changes move in",
                            from.name
                        ),
                    );
                }
                // Tiers by create_from; a feature or snapshot also by being one the role may
                // connect to (forking it shows nothing a connection would not).
                let visible =
                    !from.tier && (covered(&role.connect, from) || covered(&role.migrate, from));
                if !covered(&role.create_from, from) && !visible {
                    return refuse(
                        format!("roles.{r}.create_from"),
                        format!("role {r} may not create branches from '{}'", from.name),
                    );
                }
                let mask = role.masked && from.raw;
                if mask && *snapshot {
                    return refuse(
                        "masking.roles",
                        format!(
                            "'{}' holds raw data and role {r} only gets masked copies; a snapshot is never written, so it cannot be masked: create a branch",
                            from.name
                        ),
                    );
                }
                if !snapshot
                    && !self.features.names.is_empty()
                    && !self.features.names.iter().any(|g| glob(g, name, p))
                {
                    return refuse(
                        "features.name",
                        format!(
                            "feature name '{name}' matches none of {}",
                            self.features
                                .names
                                .iter()
                                .map(|g| format!("\"{}\"", g.replace("{principal}", p)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                let mut d = allow(
                    format!("roles.{r}.create_from"),
                    format!("role {r} creates from '{}'", from.name),
                );
                if mask {
                    d.rule = "masking.roles".into();
                    d.reason = format!("role {r} gets a masked copy of '{}'", from.name);
                } else if remask {
                    d.rule = "masking.roles".into();
                    d.reason = format!(
                        "a past state of masked '{}' is masked again in the new branch",
                        from.name
                    );
                }
                d.mask = mask || remask;
                d
            }
            Action::Connect { branch } => {
                if let Some(d) = agent_prod(branch, "connect to") {
                    return d;
                }
                if role.masked && branch.raw {
                    return refuse(
                        "masking.roles",
                        format!(
                            "'{}' holds raw data and role {r} only sees masked branches",
                            branch.name
                        ),
                    );
                }
                let (access, rule) = if covered(&role.migrate, branch) {
                    let a = if role.superuser && !branch.masked {
                        Access::Superuser
                    } else if covered(&role.drop, branch) {
                        Access::Write
                    } else if role.agent {
                        Access::DmlNoDrop
                    } else {
                        Access::Dml
                    };
                    (a, "migrate")
                } else if covered(&role.connect, branch) {
                    (Access::Read, "connect")
                } else if let Some(sh) = branch.shared.iter().find(|s| s.principal == p) {
                    // A teammate's write is to the rows: the schema stays the owner's.
                    let a = match (sh.write, role.agent) {
                        (false, _) => Access::Read,
                        (true, true) => Access::DmlNoDrop,
                        (true, false) => Access::Dml,
                    };
                    let mut d = allow(
                        "shares",
                        format!("'{}' is shared with {p} by its owner", branch.name),
                    );
                    d.access = Some(a);
                    return d;
                } else {
                    return refuse(
                        format!("roles.{r}.connect"),
                        format!("role {r} may not connect to '{}'", branch.name),
                    );
                };
                let mut d = allow(
                    format!("roles.{r}.{rule}"),
                    format!("{access:?}").to_lowercase(),
                );
                d.access = Some(access);
                d
            }
            Action::ConnectGranted { branch } => {
                if let Some(d) = may_move(role, r, "merge or promote") {
                    return d;
                }
                let mut d = allow(
                    "promotion-chain",
                    format!("a promotion grant for '{}'", branch.name),
                );
                d.access = Some(if role.superuser && !branch.masked {
                    Access::Superuser
                } else {
                    Access::Write
                });
                d
            }
            Action::Delete { branch } => {
                if let Some(d) =
                    protected_tier(branch, "deleted").or_else(|| agent_prod(branch, "delete"))
                {
                    return d;
                }
                if covered(&role.delete, branch) {
                    allow(format!("roles.{r}.delete"), "")
                } else {
                    refuse(
                        format!("roles.{r}.delete"),
                        format!("role {r} may not delete '{}'", branch.name),
                    )
                }
            }
            Action::Reset { branch, from } => {
                let verb = if from.is_some() { "restored" } else { "reset" };
                if let Some(d) =
                    protected_tier(branch, verb).or_else(|| agent_prod(branch, "reset"))
                {
                    return d;
                }
                if !covered(&role.reset, branch) {
                    return refuse(
                        format!("roles.{r}.reset"),
                        format!("role {r} may not reset or restore '{}'", branch.name),
                    );
                }
                let mut d = allow(format!("roles.{r}.reset"), "");
                if let Some(f) = from.filter(|f| f.name != branch.name) {
                    // The branch takes another branch's data: the rules of creating from it.
                    let c = self.decide(
                        who,
                        &Action::Create {
                            name: &branch.name,
                            from: f,
                            snapshot: false,
                            past: false,
                        },
                    );
                    if !c.allowed && c.rule != "features.name" {
                        return c;
                    }
                    d.mask = role.masked && f.raw;
                }
                // A masked branch is masked again whatever state it moves to.
                d.mask |= branch.masked;
                d
            }
            Action::Update { branch, protect } => {
                if let (Some(false), Some(d)) = (protect, protected_tier(branch, "unprotected")) {
                    return d;
                }
                if protect.is_some()
                    && !(role.protect || role.admin)
                    && !(Sel::Own.covers(p, branch))
                {
                    return refuse(
                        format!("roles.{r}.protect"),
                        format!(
                            "role {r} may not change the protection of '{}'",
                            branch.name
                        ),
                    );
                }
                if covered(&role.delete, branch) || role.protect || role.admin {
                    allow(format!("roles.{r}.delete"), "")
                } else {
                    refuse(format!("roles.{r}.delete"), format!("role {r} may not change the expiry of '{}' (it needs the delete right)", branch.name))
                }
            }
            Action::Promote { from, to } => {
                if let Some(d) = may_move(role, r, "merge or promote") {
                    return d;
                }
                if !to.tier {
                    return refuse(
                        "promotion-chain",
                        format!(
                            "'{}' is not a tier; changes move up the tier chain only",
                            to.name
                        ),
                    );
                }
                if from.tier {
                    let parent = self.tiers.get(&from.name).and_then(|t| t.parent.clone());
                    if parent.as_deref() != Some(to.name.as_str()) {
                        return refuse(
                            "promotion-chain",
                            match parent {
                                Some(pa) => format!("tier '{}' promotes to its parent '{pa}' only; '{}' skips a link of the chain", from.name, to.name),
                                None => format!("'{}' is the root tier; there is nothing above it", from.name),
                            },
                        );
                    }
                    allow(
                        "promotion-chain",
                        format!("'{}' promotes to its parent '{}'", from.name, to.name),
                    )
                } else {
                    if from.source_tier.as_deref() != Some(to.name.as_str()) {
                        return refuse(
                            "promotion-chain",
                            format!(
                                "'{}' was forked from {} and merges there only; '{}' skips a link of the chain",
                                from.name,
                                from.source_tier.as_deref().map_or("no known tier".into(), |t| format!("'{t}'")),
                                to.name
                            ),
                        );
                    }
                    allow(
                        "promotion-chain",
                        format!("'{}' merges into its tier '{}'", from.name, to.name),
                    )
                }
            }
            Action::Rollback { tier, snapshot } => {
                // Whoever may move changes into a tier may take them back out; nobody else.
                if let Some(d) = may_move(role, r, "roll back a tier") {
                    return d;
                }
                if !tier.tier || !snapshot.snapshot {
                    return refuse(
                        "rollback",
                        format!(
                            "rollback repoints a tier at one of its snapshots; '{}' is {}a tier and '{}' is {}a snapshot",
                            tier.name,
                            if tier.tier { "" } else { "not " },
                            snapshot.name,
                            if snapshot.snapshot { "" } else { "not " }
                        ),
                    );
                }
                allow(
                    format!("roles.{r}.promote"),
                    format!("'{}' back to its snapshot '{}'", tier.name, snapshot.name),
                )
            }
            Action::Admin { what } => {
                if role.admin {
                    allow(format!("roles.{r}.admin"), "")
                } else {
                    refuse(
                        format!("roles.{r}.admin"),
                        format!("role {r} may not {what}"),
                    )
                }
            }
            Action::Share { branch, with } => {
                if let Some(d) = agent_prod(branch, "share") {
                    return d;
                }
                if branch.tier || branch.production {
                    return refuse(
                        "shares",
                        format!(
                            "'{}' is a tier or holds production data: who reaches it is lakelet.toml's to say, not a share's",
                            branch.name
                        ),
                    );
                }
                if *with == p {
                    return refuse("shares", format!("{p} already reaches what it owns"));
                }
                if branch.owner.as_deref() == Some(p) || role.admin {
                    allow(
                        "shares",
                        format!("the owner of '{}' shares it with {with}", branch.name),
                    )
                } else {
                    refuse(
                        "shares",
                        format!(
                            "only the owner of '{}' ({}) or an admin role shares it",
                            branch.name,
                            branch.owner.as_deref().unwrap_or("unknown")
                        ),
                    )
                }
            }
            Action::Report { event } => {
                let Some(moves) = workflow_event_moves(event) else {
                    return refuse(
                        "workflow-events",
                        format!(
                            "{} is not a workflow event lakelet's gates report",
                            crate::util::quoted_bounded(event)
                        ),
                    );
                };
                if moves {
                    if let Some(d) = may_move(role, r, "merge or promote") {
                        return d;
                    }
                }
                allow(
                    "workflow-events",
                    format!("{event}, reported by a principal whose role may do it"),
                )
            }
            Action::ReadAudit => {
                if role.audit {
                    allow(format!("roles.{r}.audit"), "")
                } else {
                    refuse(
                        format!("roles.{r}.audit"),
                        format!("role {r} may not read the audit"),
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        super::super::file::parse("lakelet.toml", super::super::file::tests::GOOD).unwrap()
    }

    fn who(p: &str, r: &str) -> Actor {
        Actor {
            principal: p.into(),
            role: r.into(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob("{principal}-*", "alice-x", "alice"));
        assert!(!glob("{principal}-*", "bob-x", "alice"));
        assert!(glob("ci-pr-*", "ci-pr-42", "x"));
        assert!(glob("a*b*c", "axxbyyc", "x") && !glob("a*b*c", "axxc", "x"));
        assert!(glob("exact", "exact", "x") && !glob("exact", "exactly", "x"));
    }

    #[test]
    fn agents_never_touch_production_whatever_the_shape() {
        let p = policy();
        let bot = who("bot", "agent");
        let main = p.facts("main", false, None, None, false);
        let feat_of_main = p.facts("x", false, Some("bot".into()), Some("main".into()), false);
        let snap_of_main = p.facts(
            "s",
            true,
            Some("platform".into()),
            Some("main".into()),
            false,
        );
        for from in [&main, &feat_of_main, &snap_of_main] {
            let d = p.decide(
                &bot,
                &Action::Create {
                    name: "bot-1",
                    from,
                    snapshot: false,
                    past: false,
                },
            );
            assert!(!d.allowed && d.rule == "agents-never-production", "{d:?}");
            let d = p.decide(&bot, &Action::Connect { branch: from });
            assert!(!d.allowed, "{d:?}");
        }
        let staging = p.facts("staging", false, None, None, false);
        let d = p.decide(
            &bot,
            &Action::Promote {
                from: &staging,
                to: &main,
            },
        );
        assert!(!d.allowed && d.rule == "agents-never-promote");
    }

    /// Where a role may migrate, its sessions write; only a role that may drop there holds
    /// the schema's ownership, and an agent's write never drops.
    #[test]
    fn write_access_comes_in_three_kinds() {
        let p = super::super::file::parse(
            "lakelet.toml",
            "[tiers.main]\n[tiers.staging]\nparent = \"main\"\n\
             [roles.platform]\nmigrate = [\"*\"]\npromote = true\nadmin = true\nsuperuser = false\n\
             [roles.developer]\nmigrate = [\"own\"]\n\
             [roles.lead]\nmigrate = [\"own\"]\ndrop = [\"own\"]\n\
             [roles.agent]\nmigrate = [\"own\"]\n",
        )
        .unwrap();
        let access = |principal: &str, role: &str| {
            let b = p.facts(
                &format!("{principal}-1"),
                false,
                Some(principal.into()),
                Some("staging".into()),
                false,
            );
            p.decide(&who(principal, role), &Action::Connect { branch: &b })
                .access
        };
        assert_eq!(access("pat", "platform"), Some(Access::Write));
        assert_eq!(access("dev", "developer"), Some(Access::Dml));
        assert_eq!(access("lee", "lead"), Some(Access::Write));
        assert_eq!(access("bot", "agent"), Some(Access::DmlNoDrop));
        assert_eq!(Access::DmlNoDrop.pg_role(), Some("lakelet_agent"));
    }

    #[test]
    fn promotion_moves_one_link() {
        let p = policy();
        let plat = who(OWNER, "platform");
        let [main, staging, qa] =
            ["main", "staging", "qa"].map(|t| p.facts(t, false, None, None, false));
        assert!(
            p.decide(
                &plat,
                &Action::Promote {
                    from: &qa,
                    to: &staging
                }
            )
            .allowed
        );
        let d = p.decide(
            &plat,
            &Action::Promote {
                from: &qa,
                to: &main,
            },
        );
        assert!(!d.allowed && d.reason.contains("skips a link"), "{d:?}");
        let f = p.facts("f", false, Some("x".into()), Some("qa".into()), false);
        assert!(
            p.decide(&plat, &Action::Promote { from: &f, to: &qa })
                .allowed
        );
        assert!(
            !p.decide(
                &plat,
                &Action::Promote {
                    from: &f,
                    to: &staging
                }
            )
            .allowed
        );
        assert!(
            !p.decide(&plat, &Action::Delete { branch: &staging })
                .allowed
        );
        assert!(
            !p.decide(
                &plat,
                &Action::Reset {
                    branch: &main,
                    from: None
                }
            )
            .allowed
        );
    }

    #[test]
    fn a_tier_rolls_back_to_a_snapshot_for_promoters_only() {
        let p = policy();
        let staging = p.facts("staging", false, None, None, false);
        let snap = p.facts(
            "staging-pre-promote-1",
            true,
            None,
            Some("staging".into()),
            false,
        );
        let f = p.facts(
            "f",
            false,
            Some("alice".into()),
            Some("staging".into()),
            false,
        );
        let rollback = |t, s| Action::Rollback {
            tier: t,
            snapshot: s,
        };
        let d = p.decide(&who(OWNER, "platform"), &rollback(&staging, &snap));
        assert!(d.allowed, "{d:?}");
        let d = p.decide(&who("alice", "developer"), &rollback(&staging, &snap));
        assert!(!d.allowed && d.rule == "roles.developer.promote", "{d:?}");
        let d = p.decide(&who("bot", "agent"), &rollback(&staging, &snap));
        assert!(!d.allowed && d.rule == "agents-never-promote", "{d:?}");
        for (t, s) in [(&f, &snap), (&staging, &f)] {
            let d = p.decide(&who(OWNER, "platform"), &rollback(t, s));
            assert!(!d.allowed && d.rule == "rollback", "{d:?}");
        }
    }

    #[test]
    fn masked_roles_get_masked_copies_and_never_raw_connections() {
        let p = policy();
        let alice = who("alice", "developer");
        let main = p.facts("main", false, None, None, false);
        let d = p.decide(
            &alice,
            &Action::Create {
                name: "alice-1",
                from: &main,
                snapshot: false,
                past: false,
            },
        );
        assert!(d.allowed && d.mask, "{d:?}");
        let d = p.decide(
            &alice,
            &Action::Create {
                name: "bob-1",
                from: &main,
                snapshot: false,
                past: false,
            },
        );
        assert!(!d.allowed && d.rule == "features.name", "{d:?}");
        let d = p.decide(
            &alice,
            &Action::Create {
                name: "alice-s",
                from: &main,
                snapshot: true,
                past: false,
            },
        );
        assert!(!d.allowed && d.rule == "masking.roles");
        let raw_own = p.facts(
            "alice-raw",
            false,
            Some("alice".into()),
            Some("main".into()),
            false,
        );
        assert!(
            !p.decide(&alice, &Action::Connect { branch: &raw_own })
                .allowed
        );
        let masked = p.facts(
            "alice-1",
            false,
            Some("alice".into()),
            Some("main".into()),
            true,
        );
        let d = p.decide(&alice, &Action::Connect { branch: &masked });
        // Her own branch: rows and her own objects; the schema through migrations.
        assert_eq!(d.access, Some(Access::Dml), "{d:?}");
        let d = p.decide(
            &alice,
            &Action::Create {
                name: "alice-2",
                from: &masked,
                snapshot: false,
                past: false,
            },
        );
        assert!(
            d.allowed && !d.mask,
            "a child of a masked branch is already masked: {d:?}"
        );
    }
}
