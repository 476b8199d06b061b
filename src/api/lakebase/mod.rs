//! The Lakebase `postgres` v1 API, served by the daemon under `/api/2.0/postgres`, so the
//! Databricks SDK and tools written for Lakebase drive lakelet unchanged.
//!
//! The mapping onto lakelet:
//! - one project (`local`, or `lakelet up --project`); its default branch is the root branch
//!   and its `history_retention_duration` is the page store's retention (GC) window;
//! - a Lakebase branch is a lakelet branch; a Lakebase snapshot is a lakelet snapshot (a branch
//!   never written), so the two share one namespace of ids;
//! - each branch has exactly one read-write endpoint, `primary`: its host is the proxy, its
//!   suspend timeout the computes' idle stop;
//! - protection, expiry and soft deletion are the branch's `Lifecycle`, enforced by the compute
//!   layer for every entry point;
//! - operations are done when returned (branch operations are O(1) here) and kept so that
//!   `GET /api/2.0/postgres/{operation}` answers them.
//!
//! lakelet's extras follow the same style: `POST …/branches/{b}/reset`, `POST
//! …/branches/{b}/restore`, `GET …/branches/{b}/usage`. docs/openapi.yaml is the contract.

mod branches;
pub mod client;
mod snapshots;
pub mod types;
pub mod validate;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::daemon::Daemon;
use super::http::{ApiError, Caller};
use crate::lifecycle::Lifecycle;
use crate::storage::BranchInfo;
use types::{DatabaseCredential, ListProjectsResponse, Operation, Project, ProjectSpec};
use validate::{format_duration, timestamp};

pub(super) type Shared = Arc<Daemon>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The id of every branch's one endpoint.
pub const ENDPOINT_ID: &str = "primary";
/// Operations kept for `GET {operation}`; older ones are forgotten first.
const KEEP_OPERATIONS: usize = 10_000;

pub(super) fn routes() -> Router<Shared> {
    let p = "/api/2.0/postgres/projects/{project}";
    Router::new()
        .route("/api/2.0/postgres/projects", get(list_projects))
        .route(p, get(get_project))
        .route(
            &format!("{p}/branches"),
            get(branches::list).post(branches::create),
        )
        .route(
            &format!("{p}/branches/{{branch}}"),
            get(branches::get)
                .delete(branches::delete)
                .patch(branches::update),
        )
        .route(
            &format!("{p}/branches/{{branch}}/undelete"),
            post(branches::undelete),
        )
        .route(
            &format!("{p}/branches/{{branch}}/reset"),
            post(branches::reset),
        )
        .route(
            &format!("{p}/branches/{{branch}}/restore"),
            post(branches::restore),
        )
        .route(
            &format!("{p}/branches/{{branch}}/usage"),
            get(branches::usage),
        )
        .route(
            &format!("{p}/branches/{{branch}}/endpoints"),
            get(branches::list_endpoints).post(branches::create_endpoint),
        )
        .route(
            &format!("{p}/branches/{{branch}}/endpoints/{{endpoint}}"),
            get(branches::get_endpoint),
        )
        .route(
            &format!("{p}/snapshots"),
            get(snapshots::list).post(snapshots::create),
        )
        .route(
            &format!("{p}/snapshots/{{snapshot}}"),
            get(snapshots::get).delete(snapshots::delete),
        )
        .route("/api/2.0/postgres/credentials", post(credentials))
        .route("/api/2.0/postgres/{*name}", get(get_operation))
}

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", msg)
}

pub(super) fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", msg)
}

/// The query string as a map, refusing parameters not in `allowed` and repeated ones.
pub(super) fn query(
    raw: Option<String>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| bad(format!("the query string is malformed: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(if allowed.is_empty() {
                format!("unknown query parameter {k:?}: this request takes none")
            } else {
                format!(
                    "unknown query parameter {k:?} (known: {})",
                    allowed.join(", ")
                )
            }));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(bad(format!("query parameter {k:?} is given twice")));
        }
    }
    Ok(out)
}

pub(super) fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(bad(format!("{name} must be true or false, not {v:?}"))),
    }
}

/// A JSON body (empty means `{}`), with its fields checked, then as `T`.
pub(super) fn body<T: DeserializeOwned>(
    bytes: &Bytes,
    allowed: &[&str],
    nested: &[(&str, &[&str])],
) -> Result<T, ApiError> {
    let v: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_REQUEST",
                format!("the request body is not valid JSON: {e}"),
            )
        })?
    };
    validate::check_fields("", &v, allowed, nested).map_err(bad)?;
    serde_json::from_value(v).map_err(|e| bad(format!("the request body: {e}")))
}

/// Pages through `items` (sorted by id) after `page_token`, `page_size` at a time.
/// One page of the stored branches (`snapshots`: the snapshots instead), in id order: the
/// page size (default 100, at most 1,000) and the token from the query.
pub(super) fn branch_page(
    d: &Daemon,
    snapshots: bool,
    show_deleted: bool,
    q: &HashMap<String, String>,
) -> Result<(Vec<BranchInfo>, Option<String>), ApiError> {
    let (size, after) = page_params(q)?;
    let (rows, more) = d
        .computes
        .store()
        .branches_page(after.as_deref(), size, |b| {
            b.snapshot == snapshots && (show_deleted || !lifecycle_of(b).is_deleted())
        });
    let next = more.then(|| encode_token(&rows.last().unwrap().name));
    Ok((rows, next))
}

/// A fixed list of items, paged by their ids.
pub(super) fn page<T>(
    items: Vec<(String, T)>,
    q: &HashMap<String, String>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let (size, after) = page_params(q)?;
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
        .collect();
    let more = rest.len() > size;
    rest.truncate(size);
    let next = more.then(|| encode_token(&rest.last().unwrap().0));
    Ok((rest.into_iter().map(|(_, t)| t).collect(), next))
}

/// The page size (default 100, at most 1,000) and the id to start after.
fn page_params(q: &HashMap<String, String>) -> Result<(usize, Option<String>), ApiError> {
    let size = match q.get("page_size") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(0) => 100,
            Ok(n) => n.min(1000),
            Err(_) => {
                return Err(bad(format!(
                    "page_size {s:?} is not a non-negative integer"
                )))
            }
        },
    };
    let after = match q.get("page_token").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            decode_token(t)
                .ok_or_else(|| bad(format!("page_token {t:?} is not one this server issued")))?,
        ),
    };
    Ok((size, after))
}

fn encode_token(id: &str) -> String {
    crate::util::hex(id.as_bytes())
}

fn decode_token(t: &str) -> Option<String> {
    if t.len() % 2 != 0 || t.len() > 256 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl Daemon {
    /// Refuses a project id other than the one this daemon serves.
    pub(super) fn check_project(&self, project: &str) -> Result<(), ApiError> {
        if project == self.project {
            Ok(())
        } else {
            Err(not_found(format!(
                "project '{project}' does not exist; this lakelet daemon serves project '{}'",
                self.project
            )))
        }
    }

    /// Records a finished operation on `resource` and returns it.
    pub(super) fn done_op(&self, resource: &str, response: &impl Serialize) -> Operation {
        self.done_op_with(resource, response, None)
    }

    /// A finished operation with metadata (lakelet puts the server-side time in it).
    pub(super) fn done_op_with(
        &self,
        resource: &str,
        response: &impl Serialize,
        metadata: Option<serde_json::Value>,
    ) -> Operation {
        let op = Operation {
            name: format!("{resource}/operations/{}", crate::lifecycle::new_uid("op")),
            done: true,
            metadata,
            error: None,
            response: Some(serde_json::to_value(response).expect("resources serialize")),
        };
        let mut ops = self.lakebase_ops.lock().unwrap();
        if ops.len() >= KEEP_OPERATIONS {
            ops.pop_front();
        }
        ops.push_back(op.clone());
        op
    }

    fn default_branch_name(&self) -> String {
        format!(
            "projects/{}/branches/{}",
            self.project,
            self.computes.settings().root_branch
        )
    }
}

/// A branch's lifecycle and where it came from, as stored.
pub(super) fn lifecycle_of(info: &BranchInfo) -> Lifecycle {
    Lifecycle::decode(&info.annotations)
}

fn project(d: &Daemon) -> Project {
    let retention = format_duration(d.computes.store().retention_window());
    let pg_version = d
        .computes
        .installs()
        .first()
        .and_then(|i| i.version.split('.').next()?.parse().ok());
    // What the branches' timelines own: kept per timeline, no walk of any tree.
    let size: u64 = d
        .computes
        .store()
        .branches()
        .iter()
        .filter_map(|b| d.computes.store().own_bytes(&b.name).ok())
        .sum();
    let spec = ProjectSpec {
        display_name: Some(d.project.clone()),
        default_branch: Some(d.default_branch_name()),
        history_retention_duration: Some(retention.clone()),
        pg_version,
    };
    Project {
        name: Some(format!("projects/{}", d.project)),
        project_id: Some(d.project.clone()),
        uid: Some(format!("lakelet-{}", d.project)),
        create_time: d
            .computes
            .store()
            .branch(&d.computes.settings().root_branch)
            .ok()
            .map(|b| b.created_at),
        spec: Some(spec.clone()),
        status: Some(types::ProjectStatus {
            project_id: Some(d.project.clone()),
            display_name: spec.display_name,
            default_branch: spec.default_branch,
            history_retention_duration: Some(retention),
            pg_version,
            synthetic_storage_size_bytes: Some(size),
            owner: Some(d.computes.user().name.clone()),
        }),
    }
}

async fn list_projects(
    State(d): State<Shared>,
    RawQuery(q): RawQuery,
) -> ApiResult<ListProjectsResponse> {
    let q = query(q, &["page_size", "page_token", "show_deleted"])?;
    flag(&q, "show_deleted")?;
    let (projects, next_page_token) = page(vec![(d.project.clone(), project(&d))], &q)?;
    Ok(Json(ListProjectsResponse {
        projects,
        next_page_token,
    }))
}

async fn get_project(
    State(d): State<Shared>,
    UrlPath(p): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Project> {
    query(q, &[])?;
    d.check_project(&p)?;
    Ok(Json(project(&d)))
}

/// `POST /api/2.0/postgres/credentials`: a password the proxy accepts for the local user on
/// the endpoint's branch, for `ttl` (300 to 3600 seconds, as Lakebase allows; 3600 by default).
async fn credentials(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> ApiResult<DatabaseCredential> {
    query(q, &[])?;
    let req: types::CredentialRequest =
        body(&bytes, &["endpoint", "ttl", "expire_time", "claims"], &[])?;
    if req.endpoint.is_empty() {
        return Err(bad(
            "endpoint is required: projects/{project}/branches/{branch}/endpoints/{endpoint}",
        ));
    }
    let branch = branches::endpoint_branch(&d, &req.endpoint)?.name;
    let f = d.facts(&branch)?;
    let now = d.computes.store().now();
    let ttl = match (&req.ttl, &req.expire_time) {
        (Some(_), Some(_)) => return Err(bad("give only one of ttl and expire_time")),
        (Some(t), None) => validate::parse_duration("ttl", t).map_err(bad)?,
        (None, Some(t)) => {
            let at = validate::parse_timestamp("expire_time", t).map_err(bad)?;
            std::time::Duration::from_nanos(at.saturating_sub(now).max(0) as u64)
        }
        (None, None) => std::time::Duration::from_secs(3600),
    };
    if !(300..=3600).contains(&ttl.as_secs()) {
        return Err(bad(format!(
            "the credential's lifetime must be 300 to 3600 seconds, not {}s",
            ttl.as_secs()
        )));
    }
    let permit = d.enforce_named(
        &c,
        "credential.create",
        &crate::policy::Action::Connect { branch: &f },
        &branch,
        serde_json::json!({ "ttl_s": ttl.as_secs() }),
    )?;
    let expires = std::time::SystemTime::now() + ttl;
    let r = d
        .proxy
        .issue_token(&d.proxy_user(&c.actor), &branch, expires, false)
        .map(|token| {
            Json(DatabaseCredential {
                token,
                expire_time: timestamp(now + ttl.as_nanos() as i64),
            })
        })
        .map_err(ApiError::from);
    permit.finish(r)
}

/// `GET /api/2.0/postgres/{operation}`; anything else under the prefix is not found.
async fn get_operation(
    State(d): State<Shared>,
    UrlPath(name): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Operation> {
    query(q, &[])?;
    if !name.contains("/operations/") {
        return Err(not_found(format!(
            "no resource /api/2.0/postgres/{name} (see docs/openapi.yaml)"
        )));
    }
    let ops = d.lakebase_ops.lock().unwrap();
    ops.iter()
        .rev()
        .find(|o| o.name == name)
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            not_found(format!(
                "operation {name} does not exist (or was forgotten)"
            ))
        })
}
