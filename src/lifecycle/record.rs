//! A branch's lifecycle beyond its timeline: protection, expiry, soft deletion, and where it
//! came from as the caller asked for it.
//!
//! Stored as the branch record's annotations (JSON), so it changes atomically with the name:
//! a branch is never created without its protection or expiry, and a reset keeps them. This
//! layer enforces it (mod.rs), so the API, the CLI and the proxy cannot disagree: a protected
//! branch is not deleted or reset, a deleted branch has no compute and takes no connection.

use serde::{Deserialize, Serialize};

use crate::storage::{format_time, Nanos};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lifecycle {
    /// Never deleted, reset, restored or expired while set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// When the daemon deletes the branch (soft: it can be undeleted until `purge_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<Nanos>,
    /// Set while the branch is soft-deleted: no compute, no connections, name reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Nanos>,
    /// When a soft-deleted branch is purged for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<Nanos>,
    /// The snapshot this branch was created from, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<String>,
    /// The source time the caller asked for (the branch point is the retained state at or
    /// before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_time: Option<Nanos>,
    /// A stable id that survives resets (the timeline id changes with each).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Nanos>,
    /// What other layers keep on the branch (the policy's owner, source tier and masking
    /// state): kept as they are, across resets and restores, and read by none of compute.
    #[serde(flatten)]
    pub others: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Lifecycle {
    /// Reads annotations; a record written before lifecycles existed (empty) has the default.
    /// Annotations are only ever written by `encode`, so unreadable ones mean corruption: the
    /// branch is then treated as protected, the safe side for every check made here.
    pub fn decode(annotations: &str) -> Lifecycle {
        if annotations.is_empty() {
            return Lifecycle::default();
        }
        serde_json::from_str(annotations).unwrap_or_else(|e| {
            tracing::error!("unreadable branch annotations {annotations:?}: {e}");
            Lifecycle {
                protected: true,
                ..Lifecycle::default()
            }
        })
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a lifecycle serializes")
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Due for expiry at `now`: past its expire time, not protected, not already deleted.
    pub fn expired(&self, now: Nanos) -> bool {
        !self.protected && !self.is_deleted() && self.expire_at.is_some_and(|t| t <= now)
    }

    /// Due for purge at `now`: soft-deleted and past its purge time.
    pub fn purgeable(&self, now: Nanos) -> bool {
        self.is_deleted() && self.purge_at.is_some_and(|t| t <= now)
    }

    /// Why `name` may not be changed by `action` ("deleted", "reset", …), if it may not.
    pub fn refuse(&self, name: &str, action: &str) -> Option<String> {
        if self.protected {
            return Some(format!(
                "branch '{name}' is protected and cannot be {action}; unprotect it first \
                 (PATCH spec.is_protected=false, or `lakelet branch unprotect {name}`)"
            ));
        }
        if let Some(t) = self.deleted_at {
            return Some(format!(
                "branch '{name}' was deleted at {} and cannot be {action}; undelete it first \
                 (`lakelet branch undelete {name}`)",
                format_time(t)
            ));
        }
        None
    }
}

/// A new uid in Lakebase's style: `br-` and 16 hex digits.
pub fn new_uid(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        crate::util::hex(&crate::util::random_bytes::<8>())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another layer's annotations survive a decode/encode by compute untouched.
    #[test]
    fn other_layers_annotations_are_kept() {
        let text = r#"{"protected":true,"owner":"bot","masking":{"done":false}}"#;
        let mut l = Lifecycle::decode(text);
        assert!(l.protected);
        l.protected = false;
        let back: serde_json::Value = serde_json::from_str(&l.encode()).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"owner": "bot", "masking": {"done": false}})
        );
    }

    #[test]
    fn round_trips_and_old_records_read_as_default() {
        let l = Lifecycle {
            protected: true,
            expire_at: Some(5),
            uid: "br-1".into(),
            ..Default::default()
        };
        assert_eq!(Lifecycle::decode(&l.encode()), l);
        assert_eq!(Lifecycle::decode(""), Lifecycle::default());
        assert!(Lifecycle::decode("{not json").protected);
    }

    #[test]
    fn protection_beats_expiry_and_deletion_blocks_changes() {
        let mut l = Lifecycle {
            expire_at: Some(10),
            ..Default::default()
        };
        assert!(!l.expired(9) && l.expired(10));
        l.protected = true;
        assert!(!l.expired(11));
        assert!(l.refuse("b", "reset").unwrap().contains("protected"));
        l.protected = false;
        l.deleted_at = Some(11);
        l.purge_at = Some(20);
        assert!(!l.expired(12), "a deleted branch does not expire again");
        assert!(l.refuse("b", "reset").unwrap().contains("undelete"));
        assert!(!l.purgeable(19) && l.purgeable(20));
    }
}
