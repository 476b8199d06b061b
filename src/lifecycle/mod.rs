//! lifecycle: what happens to a branch's name over its life — creation with its lifecycle
//! record, protection and expiry, soft delete, undelete and purge, reset, restore and a tier's
//! rollback — beside compute, which keeps the processes only.
//!
//! **Every change is a read-modify-write of the branch record under the branch's lock**
//! (`Computes::locked`, the slot lock every start and stop also takes), and every decision
//! about it is made on what is read *under* that lock. A copy read before the lock is used to
//! fail fast at most, never written back: that is how a protect racing a delete was once erased
//! and the just-protected branch deleted, and how an expiry cleared at the last moment was
//! still carried out.
//!
//! `record.rs` is the record (protection, expiry, deletion, provenance; other layers' keys are
//! kept as they are). Compute knows nothing of it: this layer tells compute, once, that a
//! deleted branch may not start (`Computes::refuse_start_when`).

mod record;

use std::sync::Arc;

use anyhow::{Context, Result};

pub use record::{new_uid, Lifecycle};

use crate::compute::{BranchLock, Computes, Conflict, Refused};
use crate::storage::{self, At, BranchInfo};

/// The lifecycle operations of every branch of one daemon.
pub struct Branches {
    computes: Arc<Computes>,
}

/// What `expire_due` did to one branch.
pub type Expired = (String, &'static str);

impl Branches {
    pub fn new(computes: Arc<Computes>) -> Branches {
        computes.refuse_start_when(Box::new(|info: &BranchInfo| {
            Lifecycle::decode(&info.annotations)
                .is_deleted()
                .then(|| {
                    format!(
                        "branch '{0}' is deleted; undelete it (`lakelet branch undelete {0}`) to connect",
                        info.name
                    )
                })
        }));
        Branches { computes }
    }

    pub fn computes(&self) -> &Arc<Computes> {
        &self.computes
    }

    /// The lifecycle of `name` as it is now (a read: to decide a change, use `update`).
    pub fn lifecycle(&self, name: &str) -> Result<Lifecycle> {
        Ok(Lifecycle::decode(
            &self.computes.store().branch(name)?.annotations,
        ))
    }

    /// Creates branch (or snapshot) `name` from `from` as of `at`, with its lifecycle in the
    /// same record. A deleted source is refused like a missing one.
    pub async fn create(
        &self,
        name: &str,
        from: &str,
        at: At,
        snapshot: bool,
        lifecycle: &Lifecycle,
    ) -> Result<BranchInfo> {
        let store = self.computes.store();
        let src = store.branch(from)?;
        if Lifecycle::decode(&src.annotations).is_deleted() {
            return Err(Refused(format!(
                "the source branch '{from}' is deleted; undelete it first"
            ))
            .into());
        }
        if let Ok(b) = store.branch(name) {
            if let Some(t) = Lifecycle::decode(&b.annotations).deleted_at {
                return Err(Conflict(format!(
                    "branch '{name}' already exists, deleted at {}: undelete it \
                     (`lakelet branch undelete {name}`), or purge it \
                     (`lakelet branch delete {name} --purge`) to reuse the name",
                    storage::format_time(t)
                ))
                .into());
            }
        }
        if at == At::Head {
            self.computes.checkpoint_if_running(from).await;
        }
        let mut l = lifecycle.clone();
        if l.uid.is_empty() {
            l.uid = new_uid(if snapshot { "snap" } else { "br" });
        }
        let info = store.create_annotated(name, from, at, snapshot, &l.encode())?;
        if let Err(e) = self.computes.seed_wal(name, from, at) {
            // Refused whole: the name goes again, nothing else was written.
            let _ = store.delete_branch(name);
            return Err(e.context(format!("copying the WAL of '{from}' for '{name}'")));
        }
        store.sync()?;
        Ok(info)
    }

    /// Changes the lifecycle of `name` (protection, expiry, another layer's keys): `f` gets the
    /// record as read under the branch's lock, and may refuse.
    pub async fn update(
        &self,
        name: &str,
        f: impl FnOnce(&mut Lifecycle) -> Result<()> + Send + 'static,
    ) -> Result<BranchInfo> {
        self.computes
            .locked(name, move |lk| {
                Box::pin(async move {
                    let store = lk.store();
                    let mut l = Lifecycle::decode(&store.branch(lk.name())?.annotations);
                    f(&mut l)?;
                    l.updated_at = Some(store.now());
                    let info = store.annotate(lk.name(), &l.encode())?;
                    store.sync()?;
                    Ok(info)
                })
            })
            .await
    }

    /// Brings a soft-deleted branch back.
    pub async fn undelete(&self, name: &str) -> Result<BranchInfo> {
        let n = name.to_string();
        let now = self.computes.store().now();
        self.update(name, move |l| {
            if !l.is_deleted() {
                return Err(Refused(format!("branch '{n}' is not deleted")).into());
            }
            l.deleted_at = None;
            l.purge_at = None;
            // An expiry already past would delete it again at once.
            if l.expire_at.is_some_and(|t| t <= now) {
                l.expire_at = None;
            }
            Ok(())
        })
        .await
    }

    /// Moves `name` to a new timeline: reset to its parent's head, or restore from `from` at
    /// `at`. A running compute is stopped first and started again on the new timeline.
    pub async fn repoint(&self, name: &str, restore: Option<(&str, At)>) -> Result<BranchInfo> {
        let restore = restore.map(|(f, at)| (f.to_string(), at));
        self.repoint_as(name, restore, false).await
    }

    /// Repoints a tier at one of its snapshots: a restore that protection does not stop,
    /// because undoing a merge or promotion is what a tier's snapshot is for (the policy
    /// decided who may; see `Action::Rollback`).
    pub async fn rollback(&self, tier: &str, snapshot: &str) -> Result<BranchInfo> {
        self.repoint_as(tier, Some((snapshot.to_string(), At::Head)), true)
            .await
    }

    async fn repoint_as(
        &self,
        name: &str,
        restore: Option<(String, At)>,
        protected_ok: bool,
    ) -> Result<BranchInfo> {
        let store = self.computes.store();
        let info = store.branch(name)?;
        let action = if restore.is_some() {
            "restored"
        } else {
            "reset"
        };
        let refusal = move |name: &str, l: &Lifecycle| {
            if protected_ok && l.deleted_at.is_none() {
                None
            } else {
                l.refuse(name, action)
            }
        };
        // To fail fast only; decided again under the lock below.
        if let Some(why) = refusal(name, &Lifecycle::decode(&info.annotations)) {
            return Err(Refused(why).into());
        }
        let parent = match &restore {
            Some((from, at)) => (*at == At::Head).then(|| from.clone()),
            None => Some(info.parent.clone().ok_or_else(|| {
                Refused(format!(
                    "'{name}' is a root branch: it has no parent to reset to"
                ))
            })?),
        };
        if let Some(p) = parent.as_deref().filter(|p| *p != name) {
            self.computes.checkpoint_if_running(p).await;
        }
        let computes = self.computes.clone();
        self.computes
            .locked(name, move |mut lk| {
                Box::pin(async move {
                    let name = lk.name().to_string();
                    let store = lk.store().clone();
                    let l = Lifecycle::decode(&store.branch(&name)?.annotations);
                    if let Some(why) = refusal(&name, &l) {
                        return Err(Refused(why).into());
                    }
                    let was_running = lk.stop().await;
                    let info = match &restore {
                        Some((from, at)) => store.restore_branch(&name, from, *at)?,
                        None => store.reset_branch(&name)?,
                    };
                    let (from, at) = match restore {
                        Some((from, at)) => (from, at),
                        None => (info.parent.clone().unwrap_or_default(), At::Head),
                    };
                    computes
                        .seed_wal(&name, &from, at)
                        .with_context(|| format!("copying the WAL of '{from}' for '{name}'"))?;
                    store.sync()?;
                    if was_running {
                        lk.start().await?;
                    }
                    Ok(info)
                })
            })
            .await
    }

    /// Deletes `name`: soft (stops its compute, keeps its data until `purge_at`, undeletable)
    /// unless `purge`, which removes the name at once. A soft-deleted branch can be purged.
    pub async fn delete(&self, name: &str, purge: bool) -> Result<()> {
        self.delete_if(name, purge, false, |_| None).await
    }

    /// A soft delete of a branch whose data nobody waits for (a released test database): its
    /// compute stops without a shutdown checkpoint. Undeleted, it starts by crash recovery.
    pub async fn discard(&self, name: &str) -> Result<()> {
        self.delete_if(name, false, true, |_| None).await
    }

    /// `delete`, unless `unless` (asked under the lock, of the record as it is then) says why
    /// not: what the reaper decided on an older read may no longer hold.
    async fn delete_if(
        &self,
        name: &str,
        purge: bool,
        immediately: bool,
        unless: impl FnOnce(&Lifecycle) -> Option<String> + Send + 'static,
    ) -> Result<()> {
        if name == self.computes.settings().root_branch {
            return Err(Refused(format!(
                "'{name}' is the default branch and cannot be deleted"
            ))
            .into());
        }
        crate::util::fault_pause("delete.before_lock").await;
        let computes = self.computes.clone();
        self.computes
            .locked(name, move |lk| {
                Box::pin(async move { delete_locked(lk, purge, immediately, unless).await })
            })
            .await?;
        if purge {
            computes.forget(name);
        }
        Ok(())
    }

    /// One pass of expiry: soft-deletes branches past their expire time and purges deleted
    /// ones past their purge time, each decided again under the branch's lock. Returns what it
    /// did, for the audit and the tests.
    pub async fn expire_due(&self) -> Vec<Expired> {
        let store = self.computes.store();
        let now = store.now();
        let mut done = vec![];
        for b in store.branches() {
            let l = Lifecycle::decode(&b.annotations);
            let purge = l.purgeable(now);
            if !purge && !l.expired(now) {
                continue;
            }
            let what = if purge { "purged" } else { "expired" };
            let still_due = move |l: &Lifecycle| {
                let due = if purge {
                    l.purgeable(now)
                } else {
                    l.expired(now)
                };
                (!due).then(|| "no longer due".to_string())
            };
            match self.delete_if(&b.name, purge, false, still_due).await {
                Ok(()) => {
                    tracing::info!(branch = b.name, "{what}");
                    done.push((b.name, what));
                }
                // E.g. a parent whose children live on: it waits for them, quietly.
                Err(e) if e.is::<Refused>() => tracing::debug!(branch = b.name, "expiry: {e:#}"),
                Err(e) => tracing::warn!(branch = b.name, "expiry: {e:#}"),
            }
        }
        done
    }
}

/// The delete itself, with the branch's lock held: read, decide, act, write.
async fn delete_locked(
    mut lk: BranchLock<'_>,
    purge: bool,
    immediately: bool,
    unless: impl FnOnce(&Lifecycle) -> Option<String>,
) -> Result<()> {
    let name = lk.name().to_string();
    let store = lk.store().clone();
    let mut l = Lifecycle::decode(&store.branch(&name)?.annotations);
    if let Some(why) = unless(&l) {
        return Err(Refused(format!("branch '{name}': {why}")).into());
    }
    if l.protected || (!purge && l.is_deleted()) {
        return Err(Refused(l.refuse(&name, "deleted").unwrap()).into());
    }
    // Children reset to their parent and name it as their source: a parent goes after them.
    // Snapshots of it may stay (they keep its pages, not its name), and a snapshot may go
    // before the branches made from it (they never reset to a snapshot's change).
    let is_snapshot = store.branch(&name)?.snapshot;
    let children: Vec<String> = store
        .branches()
        .into_iter()
        .filter(|b| b.parent.as_deref() == Some(name.as_str()) && !b.snapshot)
        .map(|b| b.name)
        .collect();
    if !children.is_empty() && !is_snapshot {
        return Err(Refused(format!(
            "branch '{name}' has child branches ({}); delete them first",
            children.join(", ")
        ))
        .into());
    }
    if immediately {
        lk.stop_immediately().await;
    } else {
        lk.stop().await;
    }
    if purge {
        store.delete_branch(&name)?;
    } else {
        let now = store.now();
        l.deleted_at = Some(now);
        l.purge_at = Some(now + store.retention_window().as_nanos() as i64);
        l.updated_at = Some(now);
        store.annotate(&name, &l.encode())?;
    }
    store.sync()?;
    Ok(())
}
