//! api: the daemon's control API over HTTP on 127.0.0.1, with a bearer token.
//!
//! Today it serves lakelet's own resources under `/lakelet/v1` (branches, computes, imports as
//! long-running operations). Its shapes follow the Lakebase `postgres` v1 API where they
//! overlap (errors as `{error_code, message}`, long work as operations `{name, done, error,
//! response}`), so the Lakebase-shaped routes grow beside these without a second server.
//!
//! `server.rs` is the daemon, `client.rs` what the CLI uses. Both share the types below.

pub mod client;
pub mod daemon;
pub mod dashboard;
mod forge;
pub mod governance;
mod http;
mod import;
mod internal;
pub mod lakebase;
mod metrics;
pub mod records;
pub mod rollback;
pub mod testpool;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compute::pg::PgInstall;
use crate::compute::ComputeStatus;
use crate::proxy::{ConnectionStats, ProxyStats};
use crate::storage::{BranchInfo, Usage};

/// Written (atomically) to DATA/daemon.json once the daemon is ready; removed on clean exit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    /// `host:port` of the HTTP API.
    pub api: String,
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    pub started_at: String,
    pub version: String,
    /// `host:port` of the Postgres proxy.
    #[serde(default)]
    pub proxy: Option<String>,
    /// How the proxy authenticates ("scram", "password", "trust").
    #[serde(default)]
    pub auth: Option<String>,
    /// The proxy's TLS certificate (for `sslrootcert=`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The project id of the Lakebase-shaped API.
    #[serde(default)]
    pub project: Option<String>,
}

pub fn info_path(data_dir: &Path) -> PathBuf {
    data_dir.join("daemon.json")
}

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("api-token")
}

/// A branch with its compute and, when asked, its storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchView {
    #[serde(flatten)]
    pub info: BranchInfoView,
    pub compute: ComputeStatus,
    /// The proxy's sessions on this branch.
    #[serde(default)]
    pub connections: ConnectionStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// `BranchInfo` in a form that also deserializes (the storage type only serializes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchInfoView {
    pub name: String,
    pub timeline: String,
    pub parent: Option<String>,
    pub parent_timeline: Option<String>,
    pub branch_lsn: Option<u64>,
    pub start_lsn: u64,
    pub created_at: String,
    pub snapshot: bool,
}

impl From<BranchInfo> for BranchInfoView {
    fn from(b: BranchInfo) -> Self {
        BranchInfoView {
            name: b.name,
            timeline: b.timeline,
            parent: b.parent,
            parent_timeline: b.parent_timeline,
            branch_lsn: b.branch_lsn,
            start_lsn: b.start_lsn,
            created_at: b.created_at,
            snapshot: b.snapshot,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub daemon: DaemonInfo,
    pub postgres: Vec<PgInstall>,
    pub compute_user: String,
    pub idle_stop_seconds: u64,
    pub last_lsn: u64,
    #[serde(default)]
    pub proxy: ProxyStats,
    pub branches: Vec<BranchView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The root branch to create.
    pub branch: String,
    /// A stopped cluster's data directory…
    pub pgdata: Option<PathBuf>,
    /// …or a live server to copy.
    pub url: Option<String>,
}

/// Progress of a long-running operation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub step: String,
    pub bytes: u64,
    pub total_bytes: Option<u64>,
    pub files: u64,
}

/// A long-running operation, in the Lakebase shape plus `progress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub name: String,
    pub done: bool,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

/// Errors as Databricks APIs return them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error_code: String,
    pub message: String,
}
