//! Errors of the page store. Every variant names the thing it is about and, where the
//! caller can do something, says what.

use std::fmt;

use super::ids::{Lsn, TimelineId};

#[derive(Debug)]
pub enum Error {
    /// A stored record failed its crc32 or could not be decoded. Never returned as data.
    Corrupt {
        what: String,
        detail: String,
    },
    /// RocksDB itself failed (I/O, its own checksums, lock held by another process…).
    Db {
        context: String,
        source: rocksdb::Error,
    },
    BranchNotFound(String),
    BranchExists(String),
    InvalidBranchName {
        name: String,
        reason: &'static str,
    },
    TimelineNotFound(TimelineId),
    /// The requested lsn is not retained on that timeline; `nearest` is the closest one that is.
    LsnNotRetained {
        branch: String,
        lsn: Lsn,
        nearest: Option<Lsn>,
    },
    /// No retained state of the branch is at or before the requested time.
    TimeNotRetained {
        branch: String,
        time: String,
        earliest: Option<String>,
    },
    /// `lsn` lies in the future of the store.
    LsnInFuture {
        lsn: Lsn,
        last: Lsn,
    },
    /// The branch has no parent to reset to.
    NoParent(String),
    /// A POSIX-style error from a namespace operation (the fs layer maps it to an errno).
    Fs {
        errno: Errno,
        what: String,
    },
    ReadOnly(String),
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// The namespace errors the fs layer turns into errnos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    Invalid,
}

impl Errno {
    pub fn describe(self) -> &'static str {
        match self {
            Errno::NotFound => "no such file or directory",
            Errno::Exists => "already exists",
            Errno::NotDir => "not a directory",
            Errno::IsDir => "is a directory",
            Errno::NotEmpty => "directory not empty",
            Errno::Invalid => "invalid argument",
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            Errno::NotFound => 2,  // ENOENT
            Errno::Exists => 17,   // EEXIST
            Errno::NotDir => 20,   // ENOTDIR
            Errno::IsDir => 21,    // EISDIR
            Errno::NotEmpty => 39, // ENOTEMPTY
            Errno::Invalid => 22,  // EINVAL
        }
    }
}

impl Error {
    pub(crate) fn fs(errno: Errno, what: impl Into<String>) -> Error {
        Error::Fs {
            errno,
            what: what.into(),
        }
    }
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(rocksdb::Error) -> Error {
        let context = context.into();
        move |source| Error::Db { context, source }
    }
    /// A failed read of `what`: RocksDB's own checksum failures are corruption of that object.
    pub(crate) fn from_db_read(what: String, source: rocksdb::Error) -> Error {
        if source.kind() == rocksdb::ErrorKind::Corruption {
            Error::Corrupt {
                what,
                detail: source.to_string(),
            }
        } else {
            Error::Db {
                context: format!("reading {what}"),
                source,
            }
        }
    }

    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Fs { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corrupt { what, detail } => write!(
                f,
                "corrupt record: {what}: {detail}; the stored bytes were not returned. \
                 Restore this branch from a snapshot or re-create it from its parent"
            ),
            Error::Db { context, source } => write!(f, "{context}: {source}"),
            Error::BranchNotFound(b) => {
                write!(f, "branch '{b}' does not exist (see `lakelet branch list`)")
            }
            Error::BranchExists(b) => write!(
                f,
                "branch '{b}' already exists; pick another name or delete it first"
            ),
            Error::InvalidBranchName { name, reason } => {
                // A name of any length may come from a client: echo a bounded prefix.
                let name = crate::util::quoted_bounded(name);
                write!(f, "invalid branch name {name}: {reason}")
            }
            Error::TimelineNotFound(t) => write!(f, "timeline {t} does not exist"),
            Error::LsnNotRetained {
                branch,
                lsn,
                nearest,
            } => {
                write!(f, "lsn {lsn} of branch '{branch}' is not retained")?;
                match nearest {
                    Some(n) => write!(f, "; the nearest retained lsn is {n}"),
                    None => write!(f, "; the branch retains no earlier state"),
                }
            }
            Error::TimeNotRetained {
                branch,
                time,
                earliest,
            } => {
                write!(f, "branch '{branch}' retains no state at or before {time}")?;
                if let Some(e) = earliest {
                    write!(f, "; the earliest retained state is at {e}")?;
                }
                Ok(())
            }
            Error::LsnInFuture { lsn, last } => {
                write!(
                    f,
                    "lsn {lsn} has not been written yet (the last lsn is {last})"
                )
            }
            Error::NoParent(b) => write!(f, "branch '{b}' has no parent branch to reset to"),
            Error::Fs { errno, what } => write!(f, "{what}: {}", errno.describe()),
            Error::ReadOnly(what) => write!(f, "{what} is read-only"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Db { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {

    use crate::storage::branch;

    /// A client's name of any length is echoed back bounded (issue 23: a 10,000-character name
    /// came back whole).
    #[test]
    fn an_invalid_name_is_echoed_bounded() {
        let long = "é".repeat(10_000);
        let e = branch::validate_name(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "{} bytes: {e}", e.len());
        assert!(e.contains("(10000 characters)"), "{e}");
        let short = branch::validate_name("-x").unwrap_err().to_string();
        assert!(short.contains("\"-x\""), "{short}");
    }
}
