//! Connection counters per branch, for `lakelet status` (and later /metrics).
//!
//! Counters are plain atomics bumped at the edges of a session (accepted, authenticated, routed,
//! ended), never per message: the copy loop stays free of bookkeeping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

#[derive(Default)]
pub struct BranchCounters {
    active: AtomicU64,
    total: AtomicU64,
    /// Sessions that had to wait for the compute to start (wake from zero).
    cold_starts: AtomicU64,
    auth_failures: AtomicU64,
    /// Refused after authentication: unknown branch, compute failed, timeout.
    errors: AtomicU64,
    bytes_from_clients: AtomicU64,
    bytes_to_clients: AtomicU64,
}

/// A snapshot of one branch's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionStats {
    pub active: u64,
    pub total: u64,
    pub cold_starts: u64,
    pub auth_failures: u64,
    pub errors: u64,
    pub bytes_from_clients: u64,
    pub bytes_to_clients: u64,
}

/// Counters not tied to a branch: connections that never named one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProxyStats {
    pub accepted: u64,
    pub cancel_requests: u64,
    /// Closed during the startup phase: garbage, timeouts, disconnects.
    pub bad_startups: u64,
    pub tls_sessions: u64,
    /// Plain sessions are relayed in the kernel (sockmap), not copied by the daemon.
    #[serde(default)]
    pub kernel_relay: bool,
    /// Sessions the kernel relayed (the rest were copied by the daemon).
    #[serde(default)]
    pub kernel_sessions: u64,
}

#[derive(Default)]
pub struct Metrics {
    branches: Mutex<BTreeMap<String, Arc<BranchCounters>>>,
    pub accepted: AtomicU64,
    pub cancel_requests: AtomicU64,
    pub bad_startups: AtomicU64,
    pub tls_sessions: AtomicU64,
    pub kernel_relay: AtomicBool,
    pub kernel_sessions: AtomicU64,
}

impl Metrics {
    pub fn branch(&self, name: &str) -> Arc<BranchCounters> {
        self.branches
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    pub fn snapshot(&self, name: &str) -> ConnectionStats {
        match self.branches.lock().unwrap().get(name) {
            Some(c) => c.snapshot(),
            None => ConnectionStats::default(),
        }
    }

    pub fn totals(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.accepted.load(Relaxed),
            cancel_requests: self.cancel_requests.load(Relaxed),
            bad_startups: self.bad_startups.load(Relaxed),
            tls_sessions: self.tls_sessions.load(Relaxed),
            kernel_relay: self.kernel_relay.load(Relaxed),
            kernel_sessions: self.kernel_sessions.load(Relaxed),
        }
    }

    /// Active sessions on `name` right now.
    pub fn active(&self, name: &str) -> u64 {
        self.branches
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.active.load(Relaxed))
    }

    /// Forgets a deleted branch, so a new branch of the same name starts from zero.
    pub fn forget(&self, name: &str) {
        self.branches.lock().unwrap().remove(name);
    }
}

impl BranchCounters {
    fn snapshot(&self) -> ConnectionStats {
        ConnectionStats {
            active: self.active.load(Relaxed),
            total: self.total.load(Relaxed),
            cold_starts: self.cold_starts.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            errors: self.errors.load(Relaxed),
            bytes_from_clients: self.bytes_from_clients.load(Relaxed),
            bytes_to_clients: self.bytes_to_clients.load(Relaxed),
        }
    }

    pub fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Relaxed);
    }

    pub fn failed(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub fn cold_start(&self) {
        self.cold_starts.fetch_add(1, Relaxed);
    }

    /// Counts a session as active until the guard drops.
    pub fn session(self: &Arc<Self>) -> SessionGuard {
        self.total.fetch_add(1, Relaxed);
        self.active.fetch_add(1, Relaxed);
        SessionGuard(self.clone())
    }

    pub fn transferred(&self, from_client: u64, to_client: u64) {
        self.bytes_from_clients.fetch_add(from_client, Relaxed);
        self.bytes_to_clients.fetch_add(to_client, Relaxed);
    }
}

pub struct SessionGuard(Arc<BranchCounters>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}
