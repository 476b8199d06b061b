//! The pools' bookkeeping: which pools exist, what each holds ready, who holds which branch,
//! and the figures `lakelet test stats` shows. Everything here is plain data under one
//! `std::sync::Mutex`, taken for a few map edits and never held across an await; the work
//! (creating, starting, deleting branches) happens in mod.rs and fill.rs with the lock
//! released.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::Notify;

use crate::policy::Actor;

/// A pool belongs to one template and one principal: a branch made for one principal carries
/// its owner stamp and its masking, so it cannot be handed to another.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(super) struct Key {
    pub template: String,
    pub principal: String,
}

pub(super) struct Pool {
    /// Who the pool's branches are made for (and as).
    pub actor: Actor,
    /// How many branches to keep ready; 0 for the pool-less entry a checkout without a
    /// declared pool makes (it only counts).
    pub size: usize,
    /// The most the ready computes may take together (proportional set size), if bounded.
    pub budget: Option<u64>,
    /// Declared outside any run (`lakelet test pool`): kept until drained explicitly.
    pub standing: bool,
    /// The runs that declared it; the last one to end drains it (unless standing).
    pub runs: BTreeSet<String>,
    /// Branches forked from the template, their computes started, oldest first.
    pub ready: VecDeque<String>,
    /// Branches being made right now.
    pub filling: usize,
    /// Set when the pool is drained: its filler stops after the branch it is making.
    pub closing: bool,
    /// Wakes the filler: a checkout took a branch, the size changed, or the pool closes.
    pub wake: Arc<Notify>,
    pub filler: Option<tokio::task::JoinHandle<()>>,
    /// When the ready computes' memory was last measured.
    pub measured_at: Option<std::time::Instant>,
    pub stats: Stats,
}

impl Pool {
    pub fn new(actor: Actor) -> Pool {
        Pool {
            actor,
            size: 0,
            budget: None,
            standing: false,
            runs: BTreeSet::new(),
            ready: VecDeque::new(),
            filling: 0,
            closing: false,
            wake: Arc::new(Notify::new()),
            filler: None,
            measured_at: None,
            stats: Stats::default(),
        }
    }

    /// Whether the filler should make another branch now (memory aside).
    pub fn short(&self) -> bool {
        !self.closing && self.ready.len() + self.filling < self.size
    }
}

/// A branch handed out by checkout and not yet released.
pub(super) struct Lease {
    pub key: Key,
    pub run: Option<String>,
    pub label: Option<String>,
    pub since: SystemTime,
}

/// How many waits a pool remembers for its percentiles.
const WAITS_KEPT: usize = 10_000;

#[derive(Debug, Default, Clone, Serialize)]
pub(super) struct Stats {
    pub checkouts: u64,
    pub hits: u64,
    pub misses: u64,
    pub releases: u64,
    /// Branches the filler made.
    pub filled: u64,
    pub fill_errors: u64,
    pub last_error: Option<String>,
    /// The filler held back because the ready computes reached the budget.
    pub budget_limited: bool,
    /// The ready computes' proportional set size when last measured.
    pub pss_bytes: Option<u64>,
    #[serde(skip)]
    pub waits_ms: VecDeque<f64>,
}

impl Stats {
    pub fn waited(&mut self, ms: f64, hit: bool) {
        self.checkouts += 1;
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        if self.waits_ms.len() == WAITS_KEPT {
            self.waits_ms.pop_front();
        }
        self.waits_ms.push_back(ms);
    }

    pub fn waits(&self) -> Waits {
        let mut w: Vec<f64> = self.waits_ms.iter().copied().collect();
        w.sort_by(f64::total_cmp);
        let at = |q: f64| -> Option<f64> {
            if w.is_empty() {
                return None;
            }
            let i = ((w.len() as f64 * q).ceil() as usize).clamp(1, w.len()) - 1;
            Some((w[i] * 100.0).round() / 100.0)
        };
        Waits {
            p50: at(0.50),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Waits {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Default)]
pub(super) struct Inner {
    pub pools: HashMap<Key, Pool>,
    /// Branch name → who holds it.
    pub leases: HashMap<String, Lease>,
    /// Releases still deleting in the background, per run ("" for checkouts outside a run).
    pub releasing: HashMap<String, usize>,
    /// Checkouts under way, per run.
    pub checking_out: HashMap<String, usize>,
}

/// The daemon's pools. Lock order: taken alone, never across an await.
#[derive(Default)]
pub struct Pools {
    pub(super) inner: std::sync::Mutex<Inner>,
    /// Signalled whenever a checkout or a background release finishes (the end of a run
    /// waits for its own).
    pub(super) settled: Notify,
}

type Counter = fn(&mut Inner) -> &mut HashMap<String, usize>;

impl Pools {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain counters: carry on with them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One piece of work of `run` counted by `which` is done.
    pub(super) fn settle(&self, run: &str, which: Counter) {
        let mut g = self.lock();
        let m = which(&mut g);
        if let Some(n) = m.get_mut(run) {
            *n -= 1;
            if *n == 0 {
                m.remove(run);
            }
        }
        drop(g);
        self.settled.notify_waiters();
    }

    /// Waits until `run` has no work counted by `which`.
    pub(super) async fn wait_settled(&self, run: &str, which: Counter) {
        loop {
            let waiting = self.settled.notified();
            if !which(&mut self.lock()).contains_key(run) {
                return;
            }
            // Also a poll, in case a notification fell between the look and the wait.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), waiting).await;
        }
    }
}

/// One pool as `GET /test/stats` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PoolView {
    pub template: String,
    pub principal: String,
    pub size: usize,
    pub ready: usize,
    pub filling: usize,
    pub standing: bool,
    pub runs: Vec<String>,
    pub checkouts: u64,
    pub hits: u64,
    pub misses: u64,
    pub releases: u64,
    pub filled: u64,
    pub fill_errors: u64,
    pub last_error: Option<String>,
    pub wait_ms: Waits,
    pub pss_bytes: Option<u64>,
    pub budget_bytes: Option<u64>,
    pub budget_limited: bool,
}

impl PoolView {
    pub(super) fn of(k: &Key, p: &Pool) -> PoolView {
        PoolView {
            template: k.template.clone(),
            principal: k.principal.clone(),
            size: p.size,
            ready: p.ready.len(),
            filling: p.filling,
            standing: p.standing,
            runs: p.runs.iter().cloned().collect(),
            checkouts: p.stats.checkouts,
            hits: p.stats.hits,
            misses: p.stats.misses,
            releases: p.stats.releases,
            filled: p.stats.filled,
            fill_errors: p.stats.fill_errors,
            last_error: p.stats.last_error.clone(),
            wait_ms: p.stats.waits(),
            pss_bytes: p.stats.pss_bytes,
            budget_bytes: p.budget,
            budget_limited: p.stats.budget_limited,
        }
    }
}

/// The proportional set size of a postmaster and its children: shared buffers counted once
/// across the processes that map them, unlike RSS.
pub(super) fn pss_of_tree(postmaster: u32) -> u64 {
    let mut pids = vec![postmaster as i32];
    pids.extend(crate::compute::postgres::children_of(postmaster));
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Stats::default();
        assert_eq!(s.waits().p50, None);
        for i in 1..=100 {
            s.waited(i as f64, i % 2 == 0);
        }
        let w = s.waits();
        assert_eq!((w.p50, w.p95, w.max), (Some(50.0), Some(95.0), Some(100.0)));
        assert_eq!((s.checkouts, s.hits, s.misses), (100, 50, 50));
    }

    #[test]
    fn waits_are_bounded() {
        let mut s = Stats::default();
        for i in 0..(WAITS_KEPT + 10) {
            s.waited(i as f64, true);
        }
        assert_eq!(s.waits_ms.len(), WAITS_KEPT);
        assert_eq!(s.waits().max, Some((WAITS_KEPT + 9) as f64));
    }

    #[test]
    fn pss_of_this_process_is_counted() {
        // Our own pid has no postgres children, but its own Pss is there.
        assert!(pss_of_tree(std::process::id()) > 0);
    }
}
