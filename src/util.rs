//! Small helpers shared by layers that must not depend on each other.

use std::path::Path;

use anyhow::{Context, Result};

/// `N` bytes from the system's CSPRNG (ring's `SystemRandom`: getrandom(2)). Ids, tokens,
/// passwords and cancel keys all come from here.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system CSPRNG failed");
    b
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` with `mode` so that a reader sees the old file or the new one,
/// never a part, and the new one survives a crash once this returns: a temporary file, fsync,
/// rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    // The rename is durable only once the directory is: without this a crash can bring back
    // the old file (or none) after the call returned.
    sync_path(
        path.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// fsyncs a file or a directory by path (a directory: the names in it, e.g. after a rename).
pub fn sync_path(p: &Path) -> Result<()> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", p.display()))
}

/// Makes sure `dir` is a directory only its owner (this user) can enter: created 0700 if it is
/// missing, refused if it exists open to the group or to others, or belongs to someone else.
/// A data directory holds the page store, the audit log and Postgres's logs (row values), so a
/// mode a local user could read through is an error, not a warning; nothing widens or narrows
/// an existing directory's mode behind its owner's back.
pub fn private_dir(dir: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !dir.exists() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {what} {}", dir.display())),
        }
    }
    let m = std::fs::metadata(dir).with_context(|| format!("reading {what} {}", dir.display()))?;
    anyhow::ensure!(m.is_dir(), "{what} {} is not a directory", dir.display());
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(
        m.uid() == me,
        "{what} {} belongs to uid {}, not to you (uid {me}); run lakelet as its owner",
        dir.display(),
        m.uid()
    );
    let mode = m.mode() & 0o7777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{what} {} is open to other users (mode {mode:04o}): it holds the page store, the audit \
         log and Postgres's logs; `chmod 700 {}` and run again",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Wall-clock nanoseconds since the Unix epoch (the store's time unit).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A name for a throwaway branch forked from `source`: `PREFIX-<source, sanitised>-<6 hex>`.
/// Feature-name globs commonly allow `{principal}-*`, so callers put a principal first.
pub fn throwaway_name(prefix: &str, source: &str) -> String {
    let mut stem: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    stem.truncate(40);
    format!(
        "{prefix}-{}-{}",
        stem.trim_matches('-'),
        hex(&random_bytes::<3>())
    )
}

/// An lsn as Postgres writes one (`16/B374D848`: high and low 32 bits in hex). Postgres's own
/// WAL positions and the page store's lsns are written in this form.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// A client's string as an error message quotes it: whole up to 64 characters, else its first
/// 40 and its length, so a 10,000-character name is not echoed back whole.
pub fn quoted_bounded(s: &str) -> String {
    let n = s.chars().count();
    if n > 64 {
        let head: String = s.chars().take(40).collect();
        format!("{:?} ({n} characters)", format!("{head}…"))
    } else {
        format!("{s:?}")
    }
}

/// Fault injection for tests: in debug builds, sleeps at the named point when
/// `LAKELET_FAULT_PAUSE` lists it (`point=millis,point=millis`), widening a window a test
/// wants to hit (a read before a lock, say). Release builds compile it away.
pub async fn fault_pause(point: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Ok(spec) = std::env::var("LAKELET_FAULT_PAUSE") else {
        return;
    };
    let ms = spec.split(',').find_map(|p| {
        let (name, ms) = p.split_once('=')?;
        (name.trim() == point).then(|| ms.trim().parse::<u64>().ok())?
    });
    if let Some(ms) = ms {
        tracing::warn!(point, ms, "fault injection: pausing");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// A draft-07 validator for a JSON Schema shipped in the binary (formats checked). Panics on a
/// schema that is not one: that is a build defect, caught by the first test that loads it.
pub fn draft7(schema: &str) -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(schema).expect("the shipped schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the shipped schema is a valid draft-07 schema")
}

/// Every way `v` breaks the schema, as `path: message` lines (empty when it conforms).
pub fn violations(schema: &jsonschema::Validator, v: &serde_json::Value) -> Vec<String> {
    schema
        .iter_errors(v)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() {
                "(top level)".into()
            } else {
                at
            };
            format!("{at}: {e}")
        })
        .collect()
}

/// The largest char boundary of `s` at or below `max` (str::floor_char_boundary is newer than
/// the crate's minimum Rust).
pub fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_creates_0700_and_refuses_open_ones() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/data");
        private_dir(&d, "the data directory").unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = private_dir(&d, "the data directory")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("open to other users (mode 0750)") && e.contains("chmod 700"),
            "{e}"
        );
        // Refused, never silently narrowed.
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
    }

    /// The new content replaces the old whole, with the mode asked for, and no temporary file
    /// is left. (That the directory sync makes the rename durable needs a power cut to show.)
    #[test]
    fn write_atomically_replaces_whole_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomically(&p, b"old", 0o600).unwrap();
        write_atomically(&p, b"new!", 0o640).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new!");
        assert!(!p.with_extension("tmp").exists());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
