//! Changing a tier: the pending migrations applied behind a pre-migration snapshot (merge,
//! promotion), and rollback by repointing the tier at that snapshot.
//!
//! A tier is never migrated without a snapshot first: the snapshot costs one metadata record,
//! and it turns "the migration failed halfway on staging" into one repoint.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{Env, Preconditions, Project};
use crate::migrate::db::Db;
use crate::migrate::history::Applied;
use crate::migrate::run::{MigrateReport, Runner};
use crate::migrate::script::{Kind, Script, Version};

#[derive(Debug, Clone, Serialize)]
pub struct TierChange {
    pub tier: String,
    /// The branch whose changes moved in (a feature, `ci-pr-N`, or the tier below).
    pub from: String,
    pub snapshot: String,
    /// The snapshot is still there (always on failure; on success when asked to keep it).
    pub snapshot_kept: bool,
    pub migrate: MigrateReport,
    pub ok: bool,
    /// After a failure the tier was repointed at the snapshot.
    pub rolled_back: bool,
}

/// A snapshot id for `tier` before `why` (`merge-pr-7`, `promote`), unique to the second.
pub fn snapshot_name(tier: &str, why: &str) -> String {
    let stamp: String = super::state::now()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let mut n = format!("{tier}-pre-{why}-{stamp}");
    n.truncate(63);
    n
}

/// The snapshot taken when the change behind pre-migration snapshot `pre` finished: what a
/// rollback to `pre` compares the tier with to find writes made since.
pub fn after_name(pre: &str) -> String {
    let mut n = pre.replacen("-pre-", "-post-", 1);
    n.truncate(63);
    n
}

/// A rollback request, as the daemon's `/rollbacks` takes it.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub tier: String,
    pub snapshot: String,
    pub since: Option<String>,
    pub discard_writes_since: bool,
}

/// `lakelet rollback`: `tier` back to `to` (default: its newest pre-migration snapshot),
/// refused by the daemon when the tier took writes after the change (compared with the
/// snapshot taken when the change finished, where there is one) unless `discard`.
pub fn rollback(
    env: &Env,
    tier: &str,
    to: Option<&str>,
    discard: bool,
) -> Result<crate::api::rollback::RolledBack> {
    let snapshot = match to {
        Some(s) => s.to_string(),
        None => latest_snapshot(env, tier)?,
    };
    let after = after_name(&snapshot);
    let since = env
        .api
        .list_snapshots()?
        .into_iter()
        .any(|s| s.snapshot_id.as_deref() == Some(after.as_str()))
        .then_some(after);
    (env.rollback)(&Rollback {
        tier: tier.into(),
        snapshot,
        since,
        discard_writes_since: discard,
    })
}

/// What happens around a tier's migration.
pub struct Guard {
    /// Apply up to this version only (promotion: what the tier below verified).
    pub target: Option<Version>,
    /// Keep the snapshot after a success (promotion keeps it for `lakelet rollback`).
    pub keep_on_success: bool,
    /// Repoint the tier at the snapshot when a migration fails (the `scm merge` gate, which
    /// must change nothing when it fails).
    pub undo_on_failure: bool,
    /// The snapshot expires this long after it is taken (none: it is kept until deleted).
    pub snapshot_ttl: Option<std::time::Duration>,
    /// A connection string the caller was already granted for this move (else one is asked
    /// for here).
    pub granted: Option<String>,
}

/// Snapshots `tier`, then applies the project's pending migrations over a connection granted
/// for moving `from` into it. On failure the snapshot is always kept.
pub fn migrate_behind_snapshot(
    p: &Project,
    env: &Env,
    from: &str,
    tier: &str,
    why: &str,
    guard: Guard,
) -> Result<TierChange> {
    let Guard {
        target,
        keep_on_success,
        undo_on_failure,
        snapshot_ttl,
        granted,
    } = guard;
    let scripts = p.scripts()?;
    // The grant first: a refused promotion must not leave a snapshot behind.
    let url = match granted {
        Some(u) => u,
        None => (env.grant)(from, tier)?,
    };
    let snap = snapshot_name(tier, why);
    eprintln!("snapshot '{snap}' of '{tier}' before migrating it…");
    let ttl = snapshot_ttl.map(|t| format!("{}s", t.as_secs().max(1)));
    env.api
        .create_snapshot(&snap, tier, ttl.as_deref().map(|t| ("ttl", t)))
        .with_context(|| format!("taking the pre-migration snapshot of '{tier}'"))?;
    let mut settings = p.settings.clone();
    settings.target = target;
    let run = (|| -> Result<MigrateReport> {
        let db = Db::connect(&url)?;
        let settings = settings.with_builtins(&db)?;
        Runner::new(&db, &settings, &scripts)?.migrate(false)
    })();
    let migrate = match run {
        Ok(r) => r,
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "migrating '{tier}' failed before any migration ran; the snapshot '{snap}' \
                     is kept (`lakelet rollback {tier} --to {snap}` if the tier changed)"
                )
            })
        }
    };
    let ok = migrate.failed.is_none();
    let mut rolled_back = false;
    if !ok && undo_on_failure {
        // The gate's own undo, right after its own failed migration.
        let undo = Rollback {
            tier: tier.into(),
            snapshot: snap.clone(),
            since: None,
            discard_writes_since: true,
        };
        (env.rollback)(&undo).with_context(|| {
            format!("the migration failed and repointing '{tier}' at '{snap}' failed too")
        })?;
        rolled_back = true;
    }
    let snapshot_kept = !ok || keep_on_success;
    if ok && keep_on_success {
        // The state the change left: a later rollback to `snap` compares the tier with it, to
        // find (and refuse to drop silently) what was written after the change.
        let after = after_name(&snap);
        if let Err(e) = env
            .api
            .create_snapshot(&after, tier, ttl.as_deref().map(|t| ("ttl", t)))
        {
            eprintln!("the snapshot '{after}' after the change was not taken: {e:#}");
        }
    }
    if !snapshot_kept {
        if let Err(e) = env.api.delete_snapshot(&snap) {
            eprintln!("the migration succeeded; deleting the snapshot '{snap}' failed: {e:#}");
        }
    }
    Ok(TierChange {
        tier: tier.into(),
        from: from.into(),
        snapshot: snap,
        snapshot_kept,
        migrate,
        ok,
        rolled_back,
    })
}

/// The migration history of `branch` (empty when it has no history table).
pub(super) fn history(env: &Env, p: &Project, branch: &str) -> Result<Vec<Applied>> {
    let db = Db::connect(&(env.connect)(branch)?)?;
    Runner::new(&db, &p.settings, &[])?.history()
}

/// `lakelet promote FROM`: the migrations FROM has verified (applied successfully, same
/// checksum) and its parent has not, applied to the parent behind a kept snapshot.
pub fn promote(p: &Project, env: &Env, from: &str, to: Option<&str>) -> Result<TierChange> {
    let mut pre = Preconditions::default();
    pre.check(p.is_tier(from), || {
        format!("'{from}' is not a tier in lakelet.toml; promotion moves a tier's verified migrations one tier up")
    });
    let parent = p.parent_tier(from).map(str::to_string);
    pre.check(!p.is_tier(from) || parent.is_some(), || {
        format!("'{from}' is the root tier; there is nothing above it to promote into")
    });
    if let (Some(to), Some(parent)) = (to, &parent) {
        pre.check(to == parent, || {
            format!("'{from}' promotes into its parent '{parent}' only, not '{to}'")
        });
    }
    pre.verdict("promote")?;
    let to = parent.expect("checked");
    let scripts = p.scripts()?;
    let verified = history(env, p, from)?;
    // The target's history as the promoter may read it: directly, or (CI, which may not
    // connect to production) over the grant the promotion itself needs.
    let mut granted = None;
    let db = match (env.connect)(&to).and_then(|u| Db::connect(&u)) {
        Ok(db) => db,
        Err(_) => {
            let url = (env.grant)(from, &to)?;
            let db = Db::connect(&url)?;
            granted = Some(url);
            db
        }
    };
    let runner = Runner::new(&db, &p.settings, &scripts)?;
    let on_target = runner.history()?;
    let pending: Vec<&Script> = runner.plan(&on_target).pending();
    let mut pre = Preconditions::default();
    let mut top: Option<Version> = None;
    for s in pending.iter().filter(|s| s.kind == Kind::Versioned) {
        let v = s.version.clone().expect("versioned");
        let ok = verified
            .iter()
            .any(|a| a.success && a.version() == Some(v.clone()) && a.checksum == Some(s.checksum));
        pre.check(ok, || {
            format!(
                "{} has not been verified on '{from}' (not applied there, or applied with \
                 another checksum); merge it into '{from}' first",
                s.script
            )
        });
        top = top.max(Some(v));
    }
    if top.is_none() {
        pre.fail(format!(
            "'{to}' already has every migration '{from}' verified; nothing to promote"
        ));
    }
    pre.verdict("promote")?;
    drop(runner);
    let guard = Guard {
        target: top,
        keep_on_success: true,
        undo_on_failure: false,
        snapshot_ttl: None,
        granted,
    };
    let c = migrate_behind_snapshot(p, env, from, &to, "promote", guard)?;
    if !c.ok {
        bail!(
            "promoting '{from}' into '{to}' failed: {}\nthe snapshot '{}' is kept: `lakelet \
             rollback {to} --to {}` puts '{to}' back as it was",
            c.migrate
                .failed
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default(),
            c.snapshot,
            c.snapshot
        );
    }
    Ok(c)
}

/// The newest pre-migration snapshot of `tier` (what `lakelet rollback TIER` goes back to).
pub fn latest_snapshot(env: &Env, tier: &str) -> Result<String> {
    let prefix = format!("{tier}-pre-");
    let mut snaps: Vec<(String, String)> = env
        .api
        .list_snapshots()?
        .into_iter()
        .filter_map(|s| {
            let id = s.snapshot_id?;
            id.starts_with(&prefix)
                .then(|| (s.create_time.unwrap_or_default(), id))
        })
        .collect();
    snaps.sort();
    snaps.pop().map(|(_, id)| id).with_context(|| {
        format!("'{tier}' has no pre-migration snapshot (named '{prefix}…') to roll back to")
    })
}
