//! Each branch's storage over time, for the dashboard's plot: a point only when a figure
//! changed, at most `KEEP` per branch. A branch is walked again only if it wrote since its
//! last walk (`Store::usage`), so a sample costs one walk per written branch per interval
//! and keeps the list's figures that fresh. In memory: a restart starts the plot again, which is what a morning glance needs
//! and keeps 10,000 idle branches at one point each.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::storage::Store;

pub const KEEP: usize = 288;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: i64,
    pub own_bytes: u64,
    pub shared_bytes: u64,
    pub logical_size: u64,
}

#[derive(Default)]
pub struct History {
    by_branch: Mutex<HashMap<String, VecDeque<Sample>>>,
    /// Points ever added: the dashboard's version moves with it.
    points: std::sync::atomic::AtomicU64,
}

impl History {
    /// Takes one sample of every branch; forgets branches that are gone.
    pub fn sample(&self, store: &Store) {
        let t = store.now().div_euclid(1_000_000_000);
        let names: Vec<String> = store.branches().into_iter().map(|b| b.name).collect();
        let now: Vec<(String, crate::storage::Usage)> = names
            .iter()
            .filter_map(|n| Some((n.clone(), store.usage(n).ok()?)))
            .collect();
        let live: std::collections::HashSet<&String> = names.iter().collect();
        let mut m = self.by_branch.lock().unwrap();
        m.retain(|n, _| live.contains(n));
        for (n, u) in now {
            let s = Sample {
                t,
                own_bytes: u.own_bytes,
                shared_bytes: u.shared_bytes,
                logical_size: u.logical_size,
            };
            let q = m.entry(n).or_default();
            let same = q.back().is_some_and(|l| {
                (l.own_bytes, l.shared_bytes, l.logical_size)
                    == (s.own_bytes, s.shared_bytes, s.logical_size)
            });
            if !same {
                if q.len() == KEEP {
                    q.pop_front();
                }
                q.push_back(s);
                self.points
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    pub fn points(&self) -> u64 {
        self.points.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn of(&self, branch: &str) -> Vec<Sample> {
        self.by_branch
            .lock()
            .unwrap()
            .get(branch)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}
