//! The audit trail: DATA/audit.jsonl, one JSON record per line, appended and fsynced before the
//! action's answer leaves the daemon.
//!
//! Append-only by construction: the file is opened with O_APPEND and never rewritten. A crash
//! mid-append leaves at most a partial last line, which readers skip (it was never
//! acknowledged), and the next append starts on a fresh line. Sequence numbers are dense from 1,
//! so a gap would show a lost record.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub principal: String,
    pub role: String,
    /// The entry point: api, cli, proxy or daemon (the daemon's own acts, like expiry).
    pub via: String,
    pub action: String,
    pub target: String,
    #[serde(default)]
    pub args: serde_json::Value,
    /// "allowed" or "refused".
    pub decision: String,
    pub rule: String,
    pub reason: String,
    /// "ok", "error: …", or empty for a refusal.
    pub result: String,
}

/// What a caller fills in; the log adds seq and time.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub principal: String,
    pub role: String,
    pub via: String,
    pub action: String,
    pub target: String,
    pub args: serde_json::Value,
    pub allowed: bool,
    pub rule: String,
    pub reason: String,
    pub result: String,
}

pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: std::fs::File,
    next_seq: u64,
    /// The file ended without a newline (a torn append): start the next record on a new line.
    torn: bool,
}

/// Which records to read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Records at or after this time (RFC 3339), or in the last duration ("1h").
    pub since: Option<String>,
    pub after_seq: Option<u64>,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub decision: Option<String>,
    pub limit: Option<usize>,
}

impl AuditLog {
    pub fn open(data_dir: &Path) -> Result<AuditLog> {
        let path = data_dir.join("audit.jsonl");
        let (records, torn) = read_all(&path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        Ok(AuditLog {
            path,
            inner: Mutex::new(Inner {
                file,
                next_seq: records.last().map_or(1, |r| r.seq + 1),
                torn,
            }),
        })
    }

    /// The sequence number the next record will get (so: how many were written, plus one).
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().unwrap().next_seq
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record durably and returns it.
    pub fn append(&self, e: Entry) -> Result<Record> {
        let mut inner = self.inner.lock().unwrap();
        let rec = Record {
            seq: inner.next_seq,
            time: crate::storage::format_time(crate::util::now_nanos()),
            principal: e.principal,
            role: e.role,
            via: e.via,
            action: e.action,
            target: e.target,
            args: e.args,
            decision: if e.allowed { "allowed" } else { "refused" }.into(),
            rule: e.rule,
            reason: e.reason,
            result: e.result,
        };
        let mut line = Vec::with_capacity(256);
        if inner.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &rec)?;
        line.push(b'\n');
        inner
            .file
            .write_all(&line)
            .and_then(|_| inner.file.sync_data())
            .with_context(|| format!("appending to the audit log {}", self.path.display()))?;
        inner.torn = false;
        inner.next_seq += 1;
        Ok(rec)
    }

    /// Records matching `f`, oldest first.
    pub fn read(&self, f: &Filter) -> Result<Vec<Record>> {
        let since = match f.since.as_deref() {
            None => None,
            Some(s) => Some(parse_since(s)?),
        };
        let (all, _) = {
            let _g = self.inner.lock().unwrap();
            read_all(&self.path)?
        };
        let mut out: Vec<Record> = all
            .into_iter()
            .filter(|r| f.after_seq.is_none_or(|s| r.seq > s))
            .filter(|r| {
                since.is_none_or(|t| crate::storage::parse_time(&r.time).is_ok_and(|rt| rt >= t))
            })
            .filter(|r| f.principal.as_ref().is_none_or(|p| &r.principal == p))
            .filter(|r| {
                f.action
                    .as_ref()
                    .is_none_or(|a| r.action == *a || r.action.starts_with(&format!("{a}.")))
            })
            .filter(|r| f.decision.as_ref().is_none_or(|d| &r.decision == d))
            .collect();
        if let Some(n) = f.limit {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
        Ok(out)
    }
}

/// `since` as a time: RFC 3339, or a duration back from now ("90m", "2d").
pub fn parse_since(s: &str) -> Result<i64> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(crate::util::now_nanos() - d.as_nanos() as i64);
    }
    crate::storage::parse_time(s).map_err(|_| {
        anyhow::anyhow!("--since {s:?}: expected a time (2026-11-21T10:00:00Z) or a duration (1h)")
    })
}

/// Every whole record, and whether the file ends in a torn line.
fn read_all(path: &Path) -> Result<(Vec<Record>, bool)> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], false)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = vec![];
    let mut torn = false;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(r) => {
                torn = false;
                out.push(r)
            }
            Err(e) => {
                // Only an unacknowledged, torn append can be partial; say so, keep reading.
                tracing::warn!(
                    "skipping an unreadable audit line in {}: {e}",
                    path.display()
                );
                torn = true;
            }
        }
    }
    // `split` cannot tell whether the last line had its newline; look.
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.len() > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(path)?;
            f.seek(SeekFrom::End(-1))?;
            let mut last = [0u8; 1];
            f.read_exact(&mut last)?;
            torn = last[0] != b'\n';
        }
    }
    Ok((out, torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str, allowed: bool) -> Entry {
        Entry {
            principal: p.into(),
            role: "agent".into(),
            via: "api".into(),
            action: "branch.create".into(),
            target: "x".into(),
            allowed,
            ..Default::default()
        }
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(entry("a", true)).unwrap();
        log.append(entry("b", false)).unwrap();
        drop(log);
        // A crash mid-append: half a record, no newline.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("audit.jsonl"))
            .unwrap();
        f.write_all(b"{\"seq\":3,\"ti").unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let r = log.append(entry("c", true)).unwrap();
        assert_eq!(r.seq, 3, "the torn record was never acknowledged");
        let all = log.read(&Filter::default()).unwrap();
        assert_eq!(
            all.iter().map(|r| r.principal.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let refused = log
            .read(&Filter {
                decision: Some("refused".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(
            log.read(&Filter {
                limit: Some(1),
                ..Default::default()
            })
            .unwrap()[0]
                .principal,
            "c"
        );
        assert!(
            log.read(&Filter {
                since: Some("1h".into()),
                ..Default::default()
            })
            .unwrap()
            .len()
                == 3
        );
    }
}
