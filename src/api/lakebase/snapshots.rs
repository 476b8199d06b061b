//! Snapshots as Lakebase has them: immutable points in a branch's history that outlive the
//! branch. Here a snapshot is a lakelet snapshot, a branch that is never written (so it costs
//! one metadata record, and keeps its pages from GC).

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::{Extension, Json};

use super::branches::source_point;
use super::types::{ListSnapshotsResponse, Operation, Snapshot, SnapshotSpec, SnapshotStatus};
use super::validate::{self, timestamp};
use super::{bad, body, branch_page, lifecycle_of, not_found, query, ApiResult, Shared};
use crate::api::daemon::Daemon;
use crate::api::http::{ApiError, Caller};
use crate::lifecycle::Lifecycle;
use crate::policy::Action;
use crate::storage::{At, BranchInfo};

impl Daemon {
    fn snapshot(&self, id: &str) -> Result<BranchInfo, ApiError> {
        match self.computes.store().branch(id) {
            Ok(b) if b.snapshot => Ok(b),
            _ => Err(not_found(format!(
                "snapshot '{id}' does not exist in project '{}'",
                self.project
            ))),
        }
    }

    fn snapshot_resource(&self, info: &BranchInfo) -> Snapshot {
        let l = lifecycle_of(info);
        let p = &self.project;
        let source = info
            .parent
            .as_ref()
            .map(|s| format!("projects/{p}/branches/{s}"));
        let usage = self.computes.store().usage(&info.name).ok();
        Snapshot {
            name: Some(format!("projects/{p}/snapshots/{}", info.name)),
            snapshot_id: Some(info.name.clone()),
            uid: Some(l.uid.clone()).filter(|u| !u.is_empty()),
            create_time: Some(info.created_at.clone()),
            spec: Some(SnapshotSpec {
                source_branch: source.clone(),
                source_branch_lsn: info.branch_lsn.map(validate::format_lsn),
                source_branch_time: l.source_time.map(timestamp),
                expire_time: l.expire_at.map(timestamp),
                no_expiry: l.expire_at.is_none().then_some(true),
                ttl: None,
            }),
            status: Some(SnapshotStatus {
                source_branch: source,
                expire_time: l.expire_at.map(timestamp),
                no_expiry: Some(l.expire_at.is_none()),
                full_size_bytes: usage.map(|u| u.logical_size),
                diff_size_bytes: usage.map(|u| u.own_bytes),
            }),
        }
    }
}

pub(super) async fn create(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(p): UrlPath<String>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    let q = query(q, &["snapshot_id"])?;
    let id = q
        .get("snapshot_id")
        .ok_or_else(|| bad("snapshot_id is required: ?snapshot_id=ID"))?;
    validate::check_id("snapshot_id", id).map_err(bad)?;
    let s: Snapshot = body(
        &bytes,
        &[
            "name",
            "snapshot_id",
            "uid",
            "create_time",
            "spec",
            "status",
        ],
        &[(
            "spec",
            &[
                "source_branch",
                "source_branch_lsn",
                "source_branch_time",
                "ttl",
                "expire_time",
                "no_expiry",
            ],
        )],
    )?;
    let spec = s.spec.unwrap_or_default();
    let source = spec
        .source_branch
        .as_deref()
        .ok_or_else(|| bad("spec.source_branch is required"))?;
    let now = d.computes.store().now();
    let expire_at = validate::expiry(
        now,
        spec.ttl.as_deref(),
        spec.expire_time.as_deref(),
        spec.no_expiry,
        false,
    )
    .map_err(bad)?;
    let (from, at, source_time) = source_point(
        &d,
        "spec.",
        Some(source),
        spec.source_branch_lsn.as_deref(),
        spec.source_branch_time.as_deref(),
    )?;
    let from_f = d.facts(&from)?;
    let args = serde_json::json!({ "from": from, "at": format!("{at:?}") });
    let action = Action::Create {
        name: id,
        from: &from_f,
        snapshot: true,
        past: at != At::Head,
    };
    let permit = d.enforce(&c, &action, id, args)?;
    let mut l = Lifecycle {
        expire_at,
        source_time,
        ..Default::default()
    };
    d.gov.stamp(&mut l, &c.actor, &from_f, &permit.decision);
    let r = async {
        let info = d.branches.create(id, &from, at, true, &l).await?;
        let snap = d.snapshot_resource(&info);
        Ok(Json(d.done_op(snap.name.as_deref().unwrap(), &snap)))
    }
    .await;
    permit.finish(r)
}

pub(super) async fn get(
    State(d): State<Shared>,
    UrlPath((p, s)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Snapshot> {
    d.check_project(&p)?;
    query(q, &[])?;
    Ok(Json(d.snapshot_resource(&d.snapshot(&s)?)))
}

pub(super) async fn list(
    State(d): State<Shared>,
    UrlPath(p): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<ListSnapshotsResponse> {
    d.check_project(&p)?;
    let q = query(q, &["page_size", "page_token"])?;
    let (infos, next_page_token) = branch_page(&d, true, false, &q)?;
    Ok(Json(ListSnapshotsResponse {
        snapshots: infos.iter().map(|i| d.snapshot_resource(i)).collect(),
        next_page_token,
    }))
}

/// Deletes at once: Lakebase's snapshots have no soft delete.
pub(super) async fn delete(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((p, s)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    query(q, &[])?;
    d.snapshot(&s)?;
    let f = d.facts(&s)?;
    let permit = d.enforce_named(
        &c,
        "snapshot.delete",
        &Action::Delete { branch: &f },
        &s,
        serde_json::json!({}),
    )?;
    let r = async {
        d.branches.delete(&s, true).await?;
        Ok(Json(d.done_op(
            &format!("projects/{p}/snapshots/{s}"),
            &serde_json::json!({}),
        )))
    }
    .await;
    permit.finish(r)
}
