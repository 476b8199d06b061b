//! The branch tree as the dashboard pages it: every branch once, parents before children
//! (depth-first, siblings by name), with what a platform engineer scans for — tier,
//! protection, expiry, compute, storage — and each branch's TTL standing.
//!
//! Nothing here walks a branch's files: storage is the last walk the store kept
//! (`Store::usage_kept`), so a page of 1,000 branches costs map lookups, not I/O.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::super::daemon::Daemon;
use crate::lifecycle::Lifecycle;
use crate::policy::{Action, Actor};
use crate::storage::{BranchInfo, Nanos};

/// A branch expiring within this is "expiring" (24 h).
pub const EXPIRING_WITHIN: Nanos = 24 * 3600 * 1_000_000_000;

/// One row of the tree.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Row {
    pub name: String,
    pub parent: Option<String>,
    /// Distance from its root among the rows the caller may see.
    pub depth: usize,
    pub children: usize,
    /// Declared as a tier in the policy.
    pub tier: bool,
    pub snapshot: bool,
    pub protected: bool,
    pub deleted: bool,
    pub owner: Option<String>,
    pub created_at: String,
    pub expire_time: Option<String>,
    /// ok, expiring, expired, orphan (its parent is gone or deleted), or no-expiry (a
    /// non-tier branch that never expires: sprawl to watch).
    pub ttl: String,
    pub compute: String,
    pub started_at: Option<String>,
    pub idle_seconds: Option<u64>,
    pub own_bytes: Option<u64>,
    pub shared_bytes: Option<u64>,
    pub logical_size: Option<u64>,
}

/// Whom a row is for: the owner and admins see every branch; anyone else the branches the
/// policy lets them connect to, and their own.
pub fn visible(d: &Daemon, who: &Actor, info: &BranchInfo) -> bool {
    let Ok(f) = d.gov.facts(&info.name) else {
        return false;
    };
    f.owner.as_deref() == Some(who.principal.as_str())
        || d.gov.decide(who, &Action::Connect { branch: &f }).allowed
}

/// The TTL standing of a branch at `now`.
pub fn ttl_state(
    info: &BranchInfo,
    l: &Lifecycle,
    tier: bool,
    parent_ok: bool,
    now: Nanos,
) -> &'static str {
    match l.expire_at {
        Some(t) if t <= now => "expired",
        Some(t) if t - now <= EXPIRING_WITHIN => "expiring",
        _ if info.parent.is_some() && !parent_ok => "orphan",
        Some(_) => "ok",
        None if tier || info.snapshot || info.parent.is_none() => "ok",
        None => "no-expiry",
    }
}

/// Every branch the caller may see (deleted ones only if asked), in tree order.
pub async fn tree(d: &Daemon, who: &Actor, show_deleted: bool) -> Vec<Row> {
    let store = d.computes.store();
    let now = store.now();
    let policy = d.gov.policy();
    let all = store.branches();
    let live: HashSet<&str> = all
        .iter()
        .filter(|b| !Lifecycle::decode(&b.annotations).is_deleted())
        .map(|b| b.name.as_str())
        .collect();
    let shown: Vec<&BranchInfo> = all
        .iter()
        .filter(|b| show_deleted || live.contains(b.name.as_str()))
        .filter(|b| visible(d, who, b))
        .collect();
    let names: HashSet<&str> = shown.iter().map(|b| b.name.as_str()).collect();
    // Children by parent among the shown; a branch whose parent is not shown is a root.
    let mut kids: BTreeMap<Option<&str>, Vec<&BranchInfo>> = BTreeMap::new();
    for b in &shown {
        let p = b.parent.as_deref().filter(|p| names.contains(p));
        kids.entry(p).or_default().push(b);
    }
    for v in kids.values_mut() {
        v.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut order: Vec<(&BranchInfo, usize)> = Vec::with_capacity(shown.len());
    let mut stack: Vec<(&BranchInfo, usize)> = kids
        .get(&None)
        .map(|v| v.iter().rev().map(|b| (*b, 0)).collect())
        .unwrap_or_default();
    while let Some((b, depth)) = stack.pop() {
        order.push((b, depth));
        if let Some(v) = kids.get(&Some(b.name.as_str())) {
            stack.extend(v.iter().rev().map(|c| (*c, depth + 1)));
        }
    }
    let mut rows = Vec::with_capacity(order.len());
    for (b, depth) in order {
        let l = Lifecycle::decode(&b.annotations);
        let tier = policy.tiers.contains_key(&b.name);
        let parent_ok = b.parent.as_deref().is_some_and(|p| live.contains(p));
        let c = d.computes.status(&b.name).await;
        let u = store.usage_kept(&b.name);
        let owner = crate::policy::stamp::Stamp::of(&l).owner;
        rows.push(Row {
            name: b.name.clone(),
            parent: b.parent.clone(),
            depth,
            children: kids.get(&Some(b.name.as_str())).map_or(0, Vec::len),
            tier,
            snapshot: b.snapshot,
            protected: l.protected || policy.tiers.get(&b.name).is_some_and(|t| t.protected),
            deleted: l.is_deleted(),
            owner,
            created_at: b.created_at.clone(),
            expire_time: l.expire_at.map(crate::storage::format_time),
            ttl: ttl_state(b, &l, tier, parent_ok, now).into(),
            compute: c.state,
            started_at: c.started_at,
            idle_seconds: c.idle_seconds,
            own_bytes: u.map(|u| u.own_bytes),
            shared_bytes: u.map(|u| u.shared_bytes),
            logical_size: u.map(|u| u.logical_size),
        });
    }
    rows
}
