//! The store's identifiers: timelines, lsns, inodes.

use std::fmt;
use std::str::FromStr;

/// The page store's own write sequence number. Global across timelines: every commit gets the
/// next one, so a prefix of lsns is a crash-consistent state of the whole store.
pub type Lsn = u64;

/// An inode number in the versioned namespace. Allocated from one global counter, so an inode
/// created on one timeline never collides with one created on another.
pub type Ino = u64;

/// Identity of the page data of a regular file. A file keeps its data id across renames; a
/// truncation to zero gives it a fresh one, which makes dropping a whole file O(1).
pub type DataId = u64;

/// The root directory of every timeline.
pub const ROOT_INO: Ino = 1;

/// Page size: Postgres' default BLCKSZ.
pub const PAGE_SIZE: usize = 8192;

/// Immutable 128-bit identity of a timeline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimelineId(pub u128);

impl TimelineId {
    /// A fresh random id (from the kernel's CSPRNG, so ids from separate stores never collide).
    pub fn generate() -> TimelineId {
        TimelineId(u128::from_be_bytes(crate::util::random_bytes()))
    }
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for TimelineId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(format!("timeline id '{s}' must be 32 hex digits"));
        }
        u128::from_str_radix(s, 16)
            .map(TimelineId)
            .map_err(|e| format!("timeline id '{s}': {e}"))
    }
}

/// Nanoseconds since the Unix epoch.
pub type Nanos = i64;

/// Formats nanoseconds since the epoch as RFC 3339 (UTC, second precision).
pub fn format_time(ns: Nanos) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses RFC 3339 (`2026-11-21T10:32:00Z`) into nanoseconds since the epoch.
pub fn parse_time(s: &str) -> Result<Nanos, String> {
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("'{s}' is not an RFC 3339 time (like 2026-11-21T10:32:00Z): {e}"))?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("'{s}' is before 1970"))?;
    Nanos::try_from(d.as_nanos()).map_err(|_| format!("'{s}' is after 2262, too far to represent"))
}
