//! The Branches API client: one client, two targets. Against the local daemon it speaks the
//! daemon's Lakebase-shaped routes; against a Lakebase workspace the same requests go to
//! `DATABRICKS_HOST` with `DATABRICKS_TOKEN`. What Lakebase cannot do directly is done the
//! way it allows (reset = delete and fork again from the same source).
//!
//! The CLI, and later the migration runner and the SCM engine, use only this, so they run
//! unchanged against either target.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;

use super::types::{
    Branch, BranchSpec, BranchUsage, DatabaseCredential, Endpoint, ListBranchesResponse,
    ListEndpointsResponse, ListSnapshotsResponse, Operation, RestoreRequest, Snapshot,
};
use crate::api::client::{seg, ApiFailure, Client};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The lakelet daemon of the data directory.
    Local,
    /// A Databricks workspace (DATABRICKS_HOST, DATABRICKS_TOKEN).
    Lakebase,
}

pub struct Branches {
    http: Client,
    pub kind: TargetKind,
    pub project: String,
    /// How long to wait for a Lakebase operation.
    pub op_timeout: Duration,
}

impl Branches {
    /// The local daemon of `data_dir`; its project id comes from the daemon.
    pub fn local(data_dir: &Path) -> Result<Branches> {
        let c = Client::connect(data_dir)?;
        let base = format!("http://{}/api/2.0/postgres", c.daemon().api);
        let http = c.with_base(&base);
        let project = http
            .daemon()
            .project
            .clone()
            .unwrap_or_else(|| "local".into());
        Ok(Branches {
            http,
            kind: TargetKind::Local,
            project,
            op_timeout: Duration::from_secs(3600),
        })
    }

    /// A Lakebase workspace at `host` (https://…), project `project`.
    pub fn lakebase(host: &str, token: &str, project: &str) -> Result<Branches> {
        if host.is_empty() || token.is_empty() {
            bail!("the Lakebase target needs DATABRICKS_HOST and DATABRICKS_TOKEN");
        }
        let host = if host.contains("://") {
            host.to_string()
        } else {
            format!("https://{host}")
        };
        Ok(Branches {
            http: Client::remote(
                &format!("{}/api/2.0/postgres", host.trim_end_matches('/')),
                token,
            ),
            kind: TargetKind::Lakebase,
            project: project.to_string(),
            op_timeout: Duration::from_secs(600),
        })
    }

    /// The same server outside `/api/2.0/postgres` (e.g. SCIM for the current user).
    pub fn workspace(&self) -> Client {
        let base = self
            .http
            .base()
            .trim_end_matches("/api/2.0/postgres")
            .to_string();
        self.http.with_base(&base)
    }

    /// The project's default branch (its id).
    pub fn default_branch(&self) -> Result<String> {
        let p: super::types::Project = self
            .http
            .get(&format!("/projects/{}", seg(&self.project)))?;
        let name = p
            .status
            .and_then(|s| s.default_branch)
            .ok_or_else(|| anyhow!("project '{}' reports no default branch", self.project))?;
        Ok(name.rsplit('/').next().unwrap_or(&name).to_string())
    }

    pub fn branch_name(&self, id: &str) -> String {
        format!("projects/{}/branches/{id}", self.project)
    }

    pub fn snapshot_name(&self, id: &str) -> String {
        format!("projects/{}/snapshots/{id}", self.project)
    }

    fn branches_path(&self) -> String {
        format!("/projects/{}/branches", seg(&self.project))
    }

    fn branch_path(&self, id: &str) -> String {
        format!("{}/{}", self.branches_path(), seg(id))
    }

    /// Waits for `op` to finish, polling as Lakebase's SDKs do; its response as `T`.
    fn wait<T: DeserializeOwned>(&self, op: Operation, what: &str) -> Result<T> {
        Ok(self.wait_op(op, what)?.0)
    }

    /// `wait`, also returning the finished operation's metadata.
    fn wait_op<T: DeserializeOwned>(
        &self,
        mut op: Operation,
        what: &str,
    ) -> Result<(T, Option<serde_json::Value>)> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        let mut told = false;
        while !op.done {
            if start.elapsed() > self.op_timeout {
                bail!(
                    "{what}: operation {} not done after {:?}",
                    op.name,
                    self.op_timeout
                );
            }
            if !told && start.elapsed() > Duration::from_secs(2) {
                eprintln!("waiting for {what} (operation {})…", op.name);
                told = true;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
            op = self.http.get(&format!("/{}", op.name))?;
        }
        if let Some(e) = op.error {
            bail!(ApiFailure {
                status: 0,
                code: e.error_code,
                message: format!("{what} failed: {}", e.message),
            });
        }
        let v = op.response.unwrap_or(serde_json::json!({}));
        let t = serde_json::from_value(v)
            .with_context(|| format!("{what}: unexpected operation response"))?;
        Ok((t, op.metadata))
    }

    /// Whether the local daemon enforces a declared policy, whose feature ttl applies to a
    /// branch created without an expiry (never on Lakebase).
    pub fn policy_declared(&self) -> bool {
        if self.kind != TargetKind::Local {
            return false;
        }
        let v: Result<serde_json::Value> = self
            .http
            .with_base(&self.http.base().replace("/api/2.0/postgres", "/lakelet/v1"))
            .get("/policy");
        v.is_ok_and(|v| v["declared"] == true)
    }

    pub fn create(&self, id: &str, spec: BranchSpec) -> Result<Branch> {
        Ok(self.create_timed(id, spec)?.0)
    }

    /// `create`, with the server's own time for it when the server reports one (the daemon
    /// does, in the operation's metadata; Lakebase does not).
    pub fn create_timed(&self, id: &str, spec: BranchSpec) -> Result<(Branch, Option<u64>)> {
        let body = Branch {
            spec: Some(spec),
            ..Default::default()
        };
        let op: Operation = self.http.post(
            &format!("{}?branch_id={}", self.branches_path(), seg(id)),
            &body,
        )?;
        let (b, meta) = self.wait_op(op, &format!("creating branch '{id}'"))?;
        Ok((b, meta.and_then(|m| m["elapsed_us"].as_u64())))
    }

    pub fn get(&self, id: &str) -> Result<Branch> {
        self.http.get(&self.branch_path(id))
    }

    pub fn list(&self, show_deleted: bool) -> Result<Vec<Branch>> {
        let mut out = vec![];
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("{}?page_size=100", self.branches_path());
            if show_deleted {
                path += "&show_deleted=true";
            }
            if let Some(t) = &token {
                path += &format!("&page_token={}", seg(t));
            }
            let page: ListBranchesResponse = self.http.get(&path)?;
            out.extend(page.branches);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub fn delete(&self, id: &str, purge: bool) -> Result<()> {
        let op: Operation = self.http.delete(&format!(
            "{}{}",
            self.branch_path(id),
            if purge { "?purge=true" } else { "" }
        ))?;
        let _: serde_json::Value = self.wait(op, &format!("deleting branch '{id}'"))?;
        Ok(())
    }

    pub fn undelete(&self, id: &str) -> Result<Branch> {
        let op: Operation = self.http.post(
            &format!("{}/undelete", self.branch_path(id)),
            &serde_json::json!({}),
        )?;
        self.wait(op, &format!("undeleting branch '{id}'"))
    }

    /// PATCH with an update mask, e.g. `["spec.is_protected"]`.
    pub fn update(&self, id: &str, spec: BranchSpec, mask: &[&str]) -> Result<Branch> {
        let body = Branch {
            name: Some(self.branch_name(id)),
            spec: Some(spec),
            ..Default::default()
        };
        let op: Operation = self.http.patch(
            &format!(
                "{}?update_mask={}",
                self.branch_path(id),
                seg(&mask.join(","))
            ),
            &body,
        )?;
        self.wait(op, &format!("updating branch '{id}'"))
    }

    /// Moves `id` to its source's current state. The daemon does it in place; Lakebase has
    /// no reset, so there the branch is deleted and forked again from the same source with the
    /// same protection and expiry (its uid changes; protected branches are refused first).
    pub fn reset(&self, id: &str) -> Result<Branch> {
        if self.kind == TargetKind::Local {
            let op: Operation = self.http.post(
                &format!("{}/reset", self.branch_path(id)),
                &serde_json::json!({}),
            )?;
            return self.wait(op, &format!("resetting branch '{id}'"));
        }
        let b = self.get(id)?;
        let status = b.status.unwrap_or_default();
        if status.is_protected == Some(true) {
            bail!("branch '{id}' is protected and cannot be reset; unprotect it first");
        }
        if status.default == Some(true) {
            bail!("branch '{id}' is the project's default branch: it has no source to reset to");
        }
        let source = status
            .source_branch
            .ok_or_else(|| anyhow!("branch '{id}' has no source branch to reset to"))?;
        let spec = BranchSpec {
            source_branch: Some(source),
            expire_time: status.expire_time.clone(),
            no_expiry: status.expire_time.is_none().then_some(true),
            ..Default::default()
        };
        self.delete(id, true)?;
        self.create(id, spec)
            .with_context(|| format!("branch '{id}' was deleted for the reset but not created again; create it with `lakelet branch create {id}`"))
    }

    /// Moves `id` to `source` as of an lsn or time (lakelet only: Lakebase restores by
    /// creating a new branch from a point in time).
    pub fn restore(&self, id: &str, req: RestoreRequest) -> Result<Branch> {
        if self.kind == TargetKind::Lakebase {
            bail!(
                "Lakebase cannot move a branch in place; create a new branch with \
                 `lakelet branch create NEW --from {id} --at TIME`"
            );
        }
        let op: Operation = self
            .http
            .post(&format!("{}/restore", self.branch_path(id)), &req)?;
        self.wait(op, &format!("restoring branch '{id}'"))
    }

    pub fn usage(&self, id: &str) -> Result<BranchUsage> {
        if self.kind == TargetKind::Lakebase {
            bail!("usage is a lakelet extra; Lakebase reports status.logical_size_bytes (`lakelet branch get {id}`)");
        }
        self.http.get(&format!("{}/usage", self.branch_path(id)))
    }

    /// The branch's read-write endpoint (the first one listed).
    pub fn endpoint(&self, id: &str) -> Result<Endpoint> {
        let l: ListEndpointsResponse = self
            .http
            .get(&format!("{}/endpoints", self.branch_path(id)))?;
        l.endpoints
            .into_iter()
            .find(|e| {
                e.status
                    .as_ref()
                    .and_then(|s| s.endpoint_type.as_deref())
                    .is_none_or(|t| t == "ENDPOINT_TYPE_READ_WRITE")
            })
            .ok_or_else(|| anyhow!("branch '{id}' has no read-write endpoint; create one first"))
    }

    /// A short-lived password for `endpoint` (a resource name).
    pub fn credential(&self, endpoint: &str) -> Result<DatabaseCredential> {
        self.http
            .post("/credentials", &serde_json::json!({ "endpoint": endpoint }))
    }

    pub fn create_snapshot(
        &self,
        id: &str,
        source: &str,
        at: Option<(&str, &str)>,
    ) -> Result<Snapshot> {
        let mut spec = serde_json::json!({ "source_branch": self.branch_name(source) });
        if let Some((k, v)) = at {
            spec[k] = serde_json::Value::String(v.to_string());
        }
        self.post_snapshot(id, spec)
    }

    /// `create_snapshot` of `source`'s head that expires after `ttl` (`3600s`).
    pub fn create_snapshot_with_ttl(&self, id: &str, source: &str, ttl: &str) -> Result<Snapshot> {
        let spec = serde_json::json!({ "source_branch": self.branch_name(source), "ttl": ttl });
        self.post_snapshot(id, spec)
    }

    fn post_snapshot(&self, id: &str, spec: serde_json::Value) -> Result<Snapshot> {
        let op: Operation = self.http.post(
            &format!(
                "/projects/{}/snapshots?snapshot_id={}",
                seg(&self.project),
                seg(id)
            ),
            &serde_json::json!({ "spec": spec }),
        )?;
        self.wait(op, &format!("creating snapshot '{id}'"))
    }

    pub fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut out = vec![];
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/projects/{}/snapshots?page_size=1000", seg(&self.project));
            if let Some(t) = &token {
                path += &format!("&page_token={}", seg(t));
            }
            let l: ListSnapshotsResponse = self.http.get(&path)?;
            out.extend(l.snapshots);
            match l.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        let op: Operation = self.http.delete(&format!(
            "/projects/{}/snapshots/{}",
            seg(&self.project),
            seg(id)
        ))?;
        let _: serde_json::Value = self.wait(op, &format!("deleting snapshot '{id}'"))?;
        Ok(())
    }
}
