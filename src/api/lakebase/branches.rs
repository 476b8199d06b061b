//! Branches and their endpoints, plus lakelet's extras on a branch (reset, restore, usage).

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::{Extension, Json};

use super::types::{
    Branch, BranchSpec, BranchStatus, BranchUsage, Endpoint, EndpointHosts, EndpointSpec,
    EndpointStatus, ListBranchesResponse, ListEndpointsResponse, Operation, RestoreRequest,
};
use super::validate::{self, format_lsn, timestamp};
use super::{
    bad, body, branch_page, flag, lifecycle_of, not_found, page, query, ApiResult, Shared,
    ENDPOINT_ID,
};
use crate::api::daemon::Daemon;
use crate::api::http::{ApiError, Caller};
use crate::compute::Refused;
use crate::lifecycle::Lifecycle;
use crate::policy::Action;
use crate::storage::{At, BranchInfo};

const BRANCH_FIELDS: &[&str] = &[
    "name",
    "branch_id",
    "parent",
    "uid",
    "create_time",
    "update_time",
    "spec",
    "status",
];
const SPEC_FIELDS: &[&str] = &[
    "source_branch",
    "source_branch_lsn",
    "source_branch_time",
    "source_snapshot",
    "is_protected",
    "ttl",
    "expire_time",
    "no_expiry",
];
/// What PATCH may change.
const MUTABLE: &[&str] = &[
    "spec.is_protected",
    "spec.ttl",
    "spec.expire_time",
    "spec.no_expiry",
];

impl Daemon {
    /// The stored branch `id` (not a snapshot), or 404.
    fn lakebase_branch(&self, id: &str) -> Result<BranchInfo, ApiError> {
        match self.computes.store().branch(id) {
            Ok(b) if !b.snapshot => Ok(b),
            _ => Err(not_found(format!(
                "branch '{id}' does not exist in project '{}'",
                self.project
            ))),
        }
    }

    pub(super) fn branch_resource(&self, info: &BranchInfo) -> Branch {
        let l = lifecycle_of(info);
        let p = &self.project;
        let name = format!("projects/{p}/branches/{}", info.name);
        let source = info
            .parent
            .as_ref()
            .map(|s| format!("projects/{p}/branches/{s}"));
        let source_snapshot = l
            .source_snapshot
            .as_ref()
            .map(|s| format!("projects/{p}/snapshots/{s}"));
        let (source_branch, source_snapshot) = match source_snapshot {
            Some(s) => (None, Some(s)),
            None => (source, None),
        };
        let lsn = info
            .branch_lsn
            .filter(|_| source_branch.is_some())
            .map(format_lsn);
        // Protected by its own flag, or by the policy as a protected tier (which refuses to
        // delete, reset or unprotect it whatever the flag says).
        let protected = l.protected
            || (!info.snapshot
                && self
                    .gov
                    .policy()
                    .tiers
                    .get(&info.name)
                    .is_some_and(|t| t.protected));
        // The last walk's figure: a list of 1,000 branches walks none (the walker fills in
        // a branch never walked; `get` and `usage` walk one that wrote since).
        let size = self
            .computes
            .store()
            .usage_kept(&info.name)
            .map(|u| u.logical_size);
        let expire_time = l.expire_at.map(timestamp);
        let updated = l
            .updated_at
            .map(timestamp)
            .unwrap_or(info.created_at.clone());
        Branch {
            name: Some(name),
            branch_id: Some(info.name.clone()),
            parent: Some(format!("projects/{p}")),
            uid: Some(if l.uid.is_empty() {
                format!("br-{}", &info.timeline[..16.min(info.timeline.len())])
            } else {
                l.uid.clone()
            }),
            create_time: Some(info.created_at.clone()),
            update_time: Some(updated.clone()),
            spec: Some(BranchSpec {
                source_branch: source_branch.clone(),
                source_snapshot: source_snapshot.clone(),
                is_protected: Some(protected),
                expire_time: expire_time.clone(),
                no_expiry: l.expire_at.is_none().then_some(true),
                ..Default::default()
            }),
            status: Some(BranchStatus {
                branch_id: Some(info.name.clone()),
                current_state: Some(if l.is_deleted() { "DELETED" } else { "READY" }.into()),
                pending_state: None,
                state_change_time: Some(
                    l.deleted_at
                        .map(timestamp)
                        .unwrap_or_else(|| info.created_at.clone()),
                ),
                default: Some(info.name == self.computes.settings().root_branch),
                is_protected: Some(protected),
                expire_time,
                delete_time: l.deleted_at.map(timestamp),
                purge_time: l.purge_at.map(timestamp),
                logical_size_bytes: size,
                source_branch,
                source_branch_lsn: lsn,
                source_branch_time: l.source_time.map(timestamp),
                source_snapshot,
            }),
        }
    }

    fn branch_op(&self, info: &BranchInfo) -> Operation {
        let b = self.branch_resource(info);
        self.done_op(b.name.as_deref().unwrap(), &b)
    }
}

/// Where a new branch (or snapshot) starts: the source branch id and the point in its history.
pub(super) fn source_point(
    d: &Daemon,
    field: &str,
    source_branch: Option<&str>,
    lsn: Option<&str>,
    time: Option<&str>,
) -> Result<(String, At, Option<i64>), ApiError> {
    let source = match source_branch {
        // The policy's feature tier (the root branch without a policy).
        None => d.gov.policy().features.from.clone(),
        Some(s) => validate::branch_of(&d.project, &format!("{field}source_branch"), s)
            .map_err(bad)?
            .to_string(),
    };
    match d.computes.store().branch(&source) {
        Ok(b) if !b.snapshot => {}
        Ok(_) => {
            return Err(bad(format!(
                "{field}source_branch '{source}' is a snapshot; use {field}source_snapshot"
            )))
        }
        Err(_) => {
            return Err(bad(format!(
                "{field}source_branch '{source}' does not exist in project '{}'",
                d.project
            )))
        }
    }
    let (at, time) = match (lsn, time) {
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "give only one of {field}source_branch_lsn and {field}source_branch_time"
            )))
        }
        (Some(l), None) => (
            At::Lsn(validate::parse_lsn(&format!("{field}source_branch_lsn"), l).map_err(bad)?),
            None,
        ),
        (None, Some(t)) => {
            let name = format!("{field}source_branch_time");
            let t = validate::parse_timestamp(&name, t).map_err(bad)?;
            let now = d.computes.store().now();
            if t > now {
                return Err(bad(format!(
                    "{name} {} is in the future (now is {}); leave it out for the current state",
                    timestamp(t),
                    timestamp(now)
                )));
            }
            (At::Time(t), Some(t))
        }
        (None, None) => (At::Head, None),
    };
    Ok((source, at, time))
}

pub(super) async fn create(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(p): UrlPath<String>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    let q = query(q, &["branch_id", "replace_existing"])?;
    if flag(&q, "replace_existing")? {
        return Err(bad(
            "replace_existing is not supported by lakelet; delete the branch first",
        ));
    }
    let id = q
        .get("branch_id")
        .ok_or_else(|| bad("branch_id is required: ?branch_id=ID"))?;
    validate::check_id("branch_id", id).map_err(bad)?;
    let b: Branch = body(&bytes, BRANCH_FIELDS, &[("spec", SPEC_FIELDS)])?;
    if b.branch_id.as_deref().is_some_and(|x| x != id) {
        return Err(bad("branch_id in the body differs from ?branch_id"));
    }
    let spec = b.spec.unwrap_or_default();
    let now = d.computes.store().now();
    let policy = d.gov.policy();
    let default_ttl = policy
        .features
        .ttl
        .filter(|_| !policy.tiers.contains_key(id));
    let mut expire_at = validate::expiry(
        now,
        spec.ttl.as_deref(),
        spec.expire_time.as_deref(),
        spec.no_expiry,
        // Lakebase requires one of them. Under a declared policy none means the feature ttl
        // for a feature, no expiry for a tier.
        !policy.declared,
    )
    .map_err(bad)?;
    if let (Some(ttl), None, None, None) =
        (default_ttl, &spec.ttl, &spec.expire_time, &spec.no_expiry)
    {
        expire_at = Some(now + ttl.as_nanos().min(i64::MAX as u128) as i64);
    }
    let (from, at, source_time, source_snapshot) = match &spec.source_snapshot {
        Some(s) => {
            if spec.source_branch.is_some()
                || spec.source_branch_lsn.is_some()
                || spec.source_branch_time.is_some()
            {
                return Err(bad(
                    "spec.source_snapshot excludes spec.source_branch, source_branch_lsn and \
                     source_branch_time",
                ));
            }
            let snap = validate::snapshot_of(&d.project, "spec.source_snapshot", s).map_err(bad)?;
            match d.computes.store().branch(snap) {
                Ok(i) if i.snapshot => {}
                _ => {
                    return Err(bad(format!(
                        "spec.source_snapshot '{snap}' does not exist in project '{}'",
                        d.project
                    )))
                }
            }
            (snap.to_string(), At::Head, None, Some(snap.to_string()))
        }
        None => {
            let (from, at, t) = source_point(
                &d,
                "spec.",
                spec.source_branch.as_deref(),
                spec.source_branch_lsn.as_deref(),
                spec.source_branch_time.as_deref(),
            )?;
            (from, at, t, None)
        }
    };
    let from_f = d.facts(&from)?;
    let args = serde_json::json!({ "from": from, "at": format!("{at:?}"), "protected": spec.is_protected });
    let action = Action::Create {
        name: id,
        from: &from_f,
        snapshot: false,
        past: at != At::Head,
    };
    let permit = d.enforce(&c, &action, id, args)?;
    let mut l = Lifecycle {
        protected: spec.is_protected.unwrap_or(false),
        expire_at,
        source_snapshot,
        source_time,
        ..Default::default()
    };
    d.gov.stamp(&mut l, &c.actor, &from_f, &permit.decision);
    let r = async {
        let t = std::time::Instant::now();
        d.branches.create(id, &from, at, false, &l).await?;
        let elapsed_us = t.elapsed().as_micros() as u64;
        if permit.decision.mask {
            if let Err(e) = d.gov.mask(id).await {
                // Never leave a half-masked branch behind.
                let _ = d.branches.delete(id, true).await;
                return Err(ApiError::from(e));
            }
        }
        let b = d.branch_resource(&d.lakebase_branch(id)?);
        Ok(Json(d.done_op_with(
            b.name.as_deref().unwrap(),
            &b,
            Some(serde_json::json!({ "elapsed_us": elapsed_us, "masked": permit.decision.mask })),
        )))
    }
    .await;
    permit.finish(r)
}

pub(super) async fn get(
    State(d): State<Shared>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Branch> {
    d.check_project(&p)?;
    query(q, &[])?;
    let info = d.lakebase_branch(&b)?;
    // One branch: its size as of now (walked again only if it wrote since).
    d.computes.store().usage(&b)?;
    Ok(Json(d.branch_resource(&info)))
}

pub(super) async fn list(
    State(d): State<Shared>,
    UrlPath(p): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<ListBranchesResponse> {
    d.check_project(&p)?;
    let q = query(q, &["page_size", "page_token", "show_deleted"])?;
    let show_deleted = flag(&q, "show_deleted")?;
    let (infos, next_page_token) = branch_page(&d, false, show_deleted, &q)?;
    Ok(Json(ListBranchesResponse {
        branches: infos.iter().map(|i| d.branch_resource(i)).collect(),
        next_page_token,
    }))
}

pub(super) async fn delete(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    let q = query(q, &["purge"])?;
    let purge = flag(&q, "purge")?;
    d.lakebase_branch(&b)?;
    let f = d.facts(&b)?;
    let args = serde_json::json!({ "purge": purge });
    let permit = d.enforce(&c, &Action::Delete { branch: &f }, &b, args)?;
    let r = async {
        d.branches.delete(&b, purge).await?;
        if purge {
            d.proxy.metrics.forget(&b);
            return Ok(Json(d.done_op(
                &format!("projects/{p}/branches/{b}"),
                &serde_json::json!({}),
            )));
        }
        Ok(Json(d.branch_op(&d.lakebase_branch(&b)?)))
    }
    .await;
    permit.finish(r)
}

pub(super) async fn undelete(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    query(q, &[])?;
    let _: serde_json::Value = body(&bytes, &[], &[])?;
    d.lakebase_branch(&b)?;
    let f = d.facts(&b)?;
    let permit = d.enforce_named(
        &c,
        "branch.undelete",
        &Action::Delete { branch: &f },
        &b,
        serde_json::json!({}),
    )?;
    let r = async { Ok(Json(d.branch_op(&d.branches.undelete(&b).await?))) }.await;
    permit.finish(r)
}

/// `PATCH …/branches/{b}?update_mask=spec.is_protected,spec.ttl`: protection and expiry.
pub(super) async fn update(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    let q = query(q, &["update_mask"])?;
    let mask = q
        .get("update_mask")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "update_mask is required (one or more of {})",
                MUTABLE.join(", ")
            ))
        })?;
    let paths: Vec<&str> = mask.split(',').map(str::trim).collect();
    for path in &paths {
        if !MUTABLE.contains(path) {
            return Err(bad(format!(
                "update_mask path {path:?} cannot be updated (updatable: {})",
                MUTABLE.join(", ")
            )));
        }
    }
    let req: Branch = body(&bytes, BRANCH_FIELDS, &[("spec", SPEC_FIELDS)])?;
    if let Some(n) = &req.name {
        if n != &format!("projects/{p}/branches/{b}") {
            return Err(bad(format!(
                "name {n:?} does not match the branch in the path"
            )));
        }
    }
    let spec = req.spec.unwrap_or_default();
    d.lakebase_branch(&b)?;
    let now = d.computes.store().now();
    let protect = paths
        .contains(&"spec.is_protected")
        .then(|| spec.is_protected.unwrap_or(false));
    let expiry_paths = ["spec.ttl", "spec.expire_time", "spec.no_expiry"];
    let expire = if paths.iter().any(|p| expiry_paths.contains(p)) {
        let pick = |path: &str, v: Option<String>| v.filter(|_| paths.contains(&path));
        Some(
            validate::expiry(
                now,
                pick("spec.ttl", spec.ttl.clone()).as_deref(),
                pick("spec.expire_time", spec.expire_time.clone()).as_deref(),
                spec.no_expiry.filter(|_| paths.contains(&"spec.no_expiry")),
                true,
            )
            .map_err(bad)?,
        )
    } else {
        None
    };
    let f = d.facts(&b)?;
    let args = serde_json::json!({ "update_mask": mask, "protect": protect, "expire_at": expire });
    let permit = d.enforce(
        &c,
        &Action::Update {
            branch: &f,
            protect,
        },
        &b,
        args,
    )?;
    let name = b.clone();
    let r = d
        .branches
        .update(&b, move |l| {
            if l.is_deleted() {
                return Err(
                    Refused(format!("branch '{name}' is deleted; undelete it first")).into(),
                );
            }
            if let Some(p) = protect {
                l.protected = p;
            }
            if let Some(e) = expire {
                l.expire_at = e;
            }
            Ok(())
        })
        .await
        .map(|info| Json(d.branch_op(&info)))
        .map_err(ApiError::from);
    permit.finish(r)
}

/// lakelet's extra: moves the branch to its parent's current state (Lakebase has no reset).
pub(super) async fn reset(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    query(q, &[])?;
    let _: serde_json::Value = body(&bytes, &[], &[])?;
    let info = d.lakebase_branch(&b)?;
    let f = d.facts(&b)?;
    let parent = match &info.parent {
        Some(pa) => Some(d.facts(pa)?),
        None => None,
    };
    let action = Action::Reset {
        branch: &f,
        from: parent.as_ref(),
    };
    // Decided as a restore from the parent (masking follows the parent), audited as a reset.
    let permit = d.enforce_named(&c, "branch.reset", &action, &b, serde_json::json!({}))?;
    let r = d.repoint_governed(&b, None, permit.decision.mask).await;
    permit.finish(r)
}

impl Daemon {
    /// Repoints `b`; a branch that must hold masked data is held (no connections) from
    /// before its data changes until it is masked again.
    async fn repoint_governed(
        &self,
        b: &str,
        restore: Option<(&str, At)>,
        mask: bool,
    ) -> ApiResult<Operation> {
        if mask {
            self.gov.hold_for_masking(b).await?;
        }
        self.branches.repoint(b, restore).await?;
        if mask {
            self.gov.mask(b).await?;
        }
        Ok(Json(self.branch_op(&self.lakebase_branch(b)?)))
    }
}

/// lakelet's extra: moves the branch to a point in time of itself (or of another branch).
pub(super) async fn restore(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    query(q, &[])?;
    let req: RestoreRequest = body(
        &bytes,
        &["source_branch", "source_branch_lsn", "source_branch_time"],
        &[],
    )?;
    d.lakebase_branch(&b)?;
    let own = format!("projects/{p}/branches/{b}");
    let src = req.source_branch.clone().unwrap_or(own.clone());
    if src == own && req.source_branch_lsn.is_none() && req.source_branch_time.is_none() {
        return Err(bad(
            "restoring a branch to itself needs source_branch_lsn or source_branch_time",
        ));
    }
    let (from, at, _) = source_point(
        &d,
        "",
        Some(&src),
        req.source_branch_lsn.as_deref(),
        req.source_branch_time.as_deref(),
    )?;
    let f = d.facts(&b)?;
    let src = d.facts(&from)?;
    let args = serde_json::json!({ "from": from, "at": format!("{at:?}") });
    let action = Action::Reset {
        branch: &f,
        from: Some(&src),
    };
    let permit = d.enforce(&c, &action, &b, args)?;
    let r = d
        .repoint_governed(&b, Some((&from, at)), permit.decision.mask)
        .await;
    permit.finish(r)
}

/// lakelet's extra: the branch's storage, own versus shared.
pub(super) async fn usage(
    State(d): State<Shared>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<BranchUsage> {
    d.check_project(&p)?;
    query(q, &[])?;
    d.lakebase_branch(&b)?;
    d.computes.push_writes(&b).await?;
    let u = d.computes.store().usage(&b)?;
    Ok(Json(BranchUsage {
        name: format!("projects/{p}/branches/{b}"),
        own_bytes: u.own_bytes,
        own_versions: u.own_versions,
        shared_bytes: u.shared_bytes,
        logical_size_bytes: u.logical_size,
        files: u.files,
        wal_bytes: d.computes.wal_bytes(&b).unwrap_or(0),
    }))
}

impl Daemon {
    async fn endpoint_resource(&self, info: &BranchInfo) -> Endpoint {
        let p = &self.project;
        let parent = format!("projects/{p}/branches/{}", info.name);
        let compute = self.computes.status(&info.name).await;
        let idle = self.computes.settings().idle_stop;
        let (host, port) = match self.info.proxy.as_deref().and_then(|a| a.rsplit_once(':')) {
            Some((h, p)) => (h.to_string(), p.parse().ok()),
            None => ("127.0.0.1".to_string(), None),
        };
        let suspend = (!idle.is_zero()).then(|| validate::format_duration(idle));
        let running = compute.state == "running";
        let last_active = compute
            .idle_seconds
            .map(|s| timestamp(self.computes.store().now() - (s as i64) * 1_000_000_000));
        Endpoint {
            name: Some(format!("{parent}/endpoints/{ENDPOINT_ID}")),
            endpoint_id: Some(ENDPOINT_ID.into()),
            parent: Some(parent),
            uid: Some(format!("ep-{}", lifecycle_of(info).uid)),
            create_time: Some(info.created_at.clone()),
            update_time: Some(info.created_at.clone()),
            spec: Some(EndpointSpec {
                endpoint_type: Some("ENDPOINT_TYPE_READ_WRITE".into()),
                suspend_timeout_duration: suspend.clone(),
                no_suspension: idle.is_zero().then_some(true),
                ..Default::default()
            }),
            status: Some(EndpointStatus {
                endpoint_id: Some(ENDPOINT_ID.into()),
                endpoint_type: Some("ENDPOINT_TYPE_READ_WRITE".into()),
                current_state: Some(if running { "ACTIVE" } else { "IDLE" }.into()),
                hosts: Some(EndpointHosts {
                    host: Some(host),
                    port,
                }),
                suspend_timeout_duration: suspend,
                disabled: Some(false),
                last_active_time: last_active,
                ..Default::default()
            }),
        }
    }

    /// A live branch that can have an endpoint (not a snapshot, not deleted).
    fn endpoint_owner(&self, b: &str) -> Result<BranchInfo, ApiError> {
        let info = self.lakebase_branch(b)?;
        if lifecycle_of(&info).is_deleted() {
            return Err(not_found(format!(
                "branch '{b}' is deleted, so it has no endpoint; undelete it first"
            )));
        }
        Ok(info)
    }
}

/// The branch of `projects/{p}/branches/{b}/endpoints/{e}`, checking each part.
pub(super) fn endpoint_branch(d: &Daemon, endpoint: &str) -> Result<BranchInfo, ApiError> {
    let (branch_name, e) = endpoint
        .rsplit_once("/endpoints/")
        .ok_or_else(|| bad(format!("endpoint {endpoint:?} is not of the form projects/{{project}}/branches/{{branch}}/endpoints/{{endpoint}}")))?;
    let b = validate::branch_of(&d.project, "endpoint", branch_name).map_err(bad)?;
    let info = d.endpoint_owner(b)?;
    if e != ENDPOINT_ID {
        return Err(not_found(format!(
            "endpoint '{e}' does not exist on branch '{b}'; its one endpoint is '{ENDPOINT_ID}'"
        )));
    }
    Ok(info)
}

pub(super) async fn list_endpoints(
    State(d): State<Shared>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<ListEndpointsResponse> {
    d.check_project(&p)?;
    let q = query(q, &["page_size", "page_token"])?;
    let info = d.endpoint_owner(&b)?;
    let (endpoints, next_page_token) = page(
        vec![(ENDPOINT_ID.to_string(), d.endpoint_resource(&info).await)],
        &q,
    )?;
    Ok(Json(ListEndpointsResponse {
        endpoints,
        next_page_token,
    }))
}

pub(super) async fn get_endpoint(
    State(d): State<Shared>,
    UrlPath((p, b, e)): UrlPath<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Endpoint> {
    d.check_project(&p)?;
    query(q, &[])?;
    let info = endpoint_branch(&d, &format!("projects/{p}/branches/{b}/endpoints/{e}"))?;
    Ok(Json(d.endpoint_resource(&info).await))
}

/// Every branch already has its read-write endpoint: creating one returns it, so tools that
/// create an endpoint after a branch (as Lakebase needs) work unchanged.
pub(super) async fn create_endpoint(
    State(d): State<Shared>,
    UrlPath((p, b)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<Operation> {
    d.check_project(&p)?;
    let q = query(q, &["endpoint_id"])?;
    let e: Endpoint = body(
        &bytes,
        &[
            "name",
            "endpoint_id",
            "parent",
            "uid",
            "create_time",
            "update_time",
            "spec",
            "status",
        ],
        &[(
            "spec",
            &[
                "endpoint_type",
                "suspend_timeout_duration",
                "no_suspension",
                "disabled",
                "autoscaling_limit_min_cu",
                "autoscaling_limit_max_cu",
                "group",
                "settings",
            ],
        )],
    )?;
    if let Some(id) = q.get("endpoint_id") {
        validate::check_id("endpoint_id", id).map_err(bad)?;
    }
    match e.spec.as_ref().and_then(|s| s.endpoint_type.as_deref()) {
        Some("ENDPOINT_TYPE_READ_WRITE") => {}
        Some("ENDPOINT_TYPE_READ_ONLY") => {
            return Err(bad(
                "lakelet serves one read-write endpoint per branch; read-only endpoints are not supported",
            ))
        }
        Some(t) => return Err(bad(format!("spec.endpoint_type {t:?} is not a known type"))),
        None => return Err(bad("spec.endpoint_type is required (ENDPOINT_TYPE_READ_WRITE)")),
    }
    let info = d.endpoint_owner(&b)?;
    let ep = d.endpoint_resource(&info).await;
    Ok(Json(d.done_op(ep.name.as_deref().unwrap(), &ep)))
}
