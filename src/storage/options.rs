//! How the store is tuned (durability, retention) and where it gets the time from.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ids::Nanos;

/// How hard `sync` works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `sync` fsyncs RocksDB's write-ahead log: everything written before it survives a power loss.
    Fsync,
    /// `sync` makes no physical fsync. Every commit still reaches the operating system before it
    /// returns, so a killed or crashed *process* loses nothing; a power loss or kernel crash may
    /// lose the most recent commits (never a torn one: RocksDB recovers a prefix of its log).
    /// For CI runners and throwaway laptops, where the machine outlives the data.
    ProcessCrash,
}

/// Tunables of the store. `Default` is what `lakelet up` uses.
#[derive(Debug, Clone)]
pub struct Options {
    pub durability: Durability,
    /// How long restore points (and the states they hold) are kept. Default 7 days.
    pub retention_window: Duration,
    /// A timeline that commits gets an automatic restore point at most this often. Default 5 min.
    pub restore_point_interval: Duration,
    /// Every lsn newer than this is retained (any of them can be a branch point). Default 60 s.
    pub fine_window: Duration,
    /// RocksDB block cache. Default 256 MiB.
    pub cache_bytes: usize,
    /// Compress the page column family's deeper levels (LZ4). Default on. (Each page is also
    /// compressed on its own when written, whatever this says: see `codec::PageRec::encode`.)
    pub compress: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Fsync,
            retention_window: Duration::from_secs(7 * 24 * 3600),
            restore_point_interval: Duration::from_secs(300),
            fine_window: Duration::from_secs(60),
            cache_bytes: 256 << 20,
            compress: true,
        }
    }
}

/// The source of wall-clock time; tests substitute a manual one.
pub trait Clock: Send + Sync {
    fn now(&self) -> Nanos;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as Nanos)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
pub struct ManualClock(pub AtomicI64);

impl ManualClock {
    pub fn new(start: Nanos) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(start)))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.0.load(Ordering::SeqCst)
    }
}
