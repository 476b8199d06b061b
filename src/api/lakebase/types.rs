//! The resources of the Lakebase `postgres` v1 API, as JSON: the daemon serves them and the
//! CLI's client reads them from the daemon or from a Lakebase workspace.
//!
//! Field names, nesting (`spec` is what the caller asks for, `status` what the server observed)
//! and encodings (times as RFC 3339, durations as `"604800s"`, int64 as numbers or strings)
//! follow the Databricks SDK's `postgres` service. Every field is optional on the wire, so
//! these types read what a newer Lakebase sends; the daemon checks request bodies for unknown
//! fields separately (`validate.rs`), before they reach these types.

use serde::{Deserialize, Serialize};

/// int64 fields: protobuf JSON may send them as strings.
mod int64 {
    use serde::{Deserialize, Deserializer};

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            Num(u64),
            Str(String),
        }
        Ok(match Option::<N>::deserialize(d)? {
            None => None,
            Some(N::Num(n)) => Some(n),
            Some(N::Str(s)) => Some(s.parse().map_err(serde::de::Error::custom)?),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Branch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<BranchSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<BranchStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BranchSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_protected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_expiry: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BranchStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<String>,
    /// INIT, READY, RESETTING, IMPORTING, ARCHIVED, DELETED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_change_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_protected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_time: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int64::de"
    )]
    pub logical_size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ListBranchesResponse {
    pub branches: Vec<Branch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<EndpointSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EndpointStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_suspension: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_min_cu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_max_cu: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<String>,
    /// INIT, ACTIVE, IDLE, DEGRADED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<EndpointHosts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_min_cu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_max_cu: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointHosts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// lakelet's extension: the proxy's port (Lakebase always listens on 5432).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ListEndpointsResponse {
    pub endpoints: Vec<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<SnapshotSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SnapshotStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_expiry: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_expiry: Option<bool>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int64::de"
    )]
    pub full_size_bytes: Option<u64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int64::de"
    )]
    pub diff_size_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ListSnapshotsResponse {
    pub snapshots: Vec<Snapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<ProjectSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ProjectStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_retention_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_version: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_retention_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_version: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int64::de"
    )]
    pub synthetic_storage_size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ListProjectsResponse {
    pub projects: Vec<Project>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A long-running operation. lakelet's branch operations are O(1), so the daemon's are done
/// when returned; a Lakebase workspace's may not be, and the client polls them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub name: String,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::api::ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialRequest {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseCredential {
    pub token: String,
    pub expire_time: String,
}

/// lakelet's extra: `POST …/branches/{b}/restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_branch_time: Option<String>,
}

/// lakelet's extra: `GET …/branches/{b}/usage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BranchUsage {
    pub name: String,
    pub own_bytes: u64,
    pub own_versions: u64,
    pub shared_bytes: u64,
    pub logical_size_bytes: u64,
    pub files: u64,
    /// The branch's WAL kept beside the store (its pg_wal and archive, on local disk).
    #[serde(default)]
    pub wal_bytes: u64,
}
