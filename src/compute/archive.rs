//! How much archived WAL a timeline keeps: exactly what a point-in-time cut can still need.
//!
//! Under TPC-B a compute archives several MB of WAL a second; kept for the whole retention
//! window that would be hundreds of GB a day. But a cut at a retained point P (a restore point,
//! a branch point, the start) needs only the WAL from the redo point of P's `pg_control` up to
//! P's time: P's pages are already past everything before that redo point, and the cut's WAL ends
//! at P's time (wal.rs). A cut anywhere in the fine window needs the WAL from the redo point of
//! the window's oldest state on. So the archive keeps, per retained point, the segments from the
//! one holding its redo point through the first one finished after its time, plus everything
//! from the fine window's redo point on, and nothing else. History then costs a checkpoint
//! interval of WAL per restore point, like the pages it keeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;

use super::wal::{redo_at, Segment, WalDirs};
use crate::storage::{self, Store, TimelineId};

/// Removes the archived segments of branch `name` (timeline `tl`) that no retained point can
/// need. Returns how many went.
pub fn prune(wal: &WalDirs, store: &Store, name: &str, tl: TimelineId) -> Result<usize> {
    let dir = wal.archive(tl);
    // Segments by name (= by WAL position), with the time each was archived.
    let mut segs: BTreeMap<String, (Segment, std::time::SystemTime, PathBuf)> = BTreeMap::new();
    let mut size = 0u64;
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(seg) = Segment::parse(&n) else {
            continue;
        };
        let Ok(m) = e.metadata() else { continue };
        size = size.max(m.len());
        segs.insert(n, (seg, m.modified().unwrap_or(UNIX_EPOCH), e.path()));
    }
    if segs.is_empty() {
        return Ok(0);
    }
    let size = size.max(1 << 20);
    let list: Vec<_> = segs.values().collect();
    let mut keep = vec![false; list.len()];
    let first_at_or_after = |pos: u64| list.iter().position(|(s, _, _)| s.start(size) + size > pos);
    let retained = store.retained(name)?;
    // The fine window: everything from its oldest state's redo point on.
    if let Some(from) = retained.fine_from {
        match redo_at(store, tl, Some(from))? {
            Some(r) => {
                if let Some(i) = first_at_or_after(r) {
                    keep[i..].iter_mut().for_each(|k| *k = true);
                }
            }
            None => return Ok(0),
        }
    }
    for p in &retained.points {
        let Some(r) = redo_at(store, tl, Some(p.lsn))? else {
            // No cluster at that point yet (before initdb finished): nothing to keep for it.
            continue;
        };
        let Some(i) = first_at_or_after(r) else {
            continue;
        };
        // Through the first segment archived after the point's time (it holds that time).
        let t = p
            .time
            .as_deref()
            .and_then(|t| storage::parse_time(t).ok())
            .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64) + Duration::from_secs(1));
        let end = match t {
            Some(t) => (i..list.len())
                .find(|&j| list[j].1 >= t)
                .unwrap_or(list.len() - 1),
            None => list.len() - 1,
        };
        keep[i..=end].iter_mut().for_each(|k| *k = true);
    }
    let mut n = 0;
    for (k, (_, _, path)) in keep.iter().zip(&list) {
        if !k {
            std::fs::remove_file(path)?;
            n += 1;
        }
    }
    Ok(n)
}
