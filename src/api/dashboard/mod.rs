//! The dashboard a platform engineer opens every morning: one page served by the daemon on
//! the API's port, its data from the read-only routes under `/lakelet/v1/dashboard`.
//!
//! Why a hand-written page and not a framework: everything ships inside the binary (no CDN,
//! no build step, no node_modules to audit), the page is three small files a reviewer reads
//! in one sitting, and the server does the work that must scale — tree order, paging,
//! filters — so the browser only draws the rows on screen.
//!
//! Who sees what: the routes take the bearer token or the session cookie it opened (GET
//! only). The owner and admins see every branch; anyone else the branches the policy lets
//! them connect to and their own (`rows::visible`), and the audit only if their role may read
//! it. Opening a session is audited (`dashboard.open`); reads within it are not, as no read
//! route of the API is — else the page's own polling would fill the trail.

mod feeds;
mod history;
mod rows;

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

pub use feeds::{AuditPage, Moment, Scm};
pub use history::{History, Sample};
pub use rows::Row;

use super::daemon::Daemon;
use super::http::{ApiError, Caller, SESSION_COOKIE, SESSION_TTL};
use crate::policy::Action;

type Shared = Arc<Daemon>;
type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/dashboard/session", post(open_session))
        .route("/dashboard/summary", get(summary))
        .route("/dashboard/branches", get(branches))
        .route("/dashboard/branches/{name}", get(branch))
        .route("/dashboard/audit", get(audit))
        .route("/dashboard/scm", get(scm))
        .route("/dashboard/timeline", get(timeline))
}

/// The page and its two assets, embedded.
pub(super) fn assets() -> Router<Shared> {
    Router::new()
        .route(
            "/ui",
            get(|| async { page("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/",
            get(|| async { page("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { page("text/css; charset=utf-8", APP_CSS) }),
        )
}

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

fn page(kind: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Only this page's own files run; nothing frames it; nothing is cached across versions.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", m)
}

/// Whether the caller's role may read the audit (decided, not recorded: see the module doc).
fn may_read_audit(d: &Daemon, c: &Caller) -> bool {
    d.gov.decide(&c.actor, &Action::ReadAudit).allowed
}

#[derive(Serialize, Deserialize)]
pub struct SessionOpened {
    pub principal: String,
    pub role: String,
    pub expires_in_seconds: u64,
}

/// `POST /dashboard/session` with a bearer token: a cookie for the browser.
async fn open_session(State(d): State<Shared>, Extension(c): Extension<Caller>) -> Response {
    let id = d.auth.open_session(&c.actor.principal);
    // Any authenticated principal may look: what each sees is decided per route.
    let decision = crate::policy::Decision {
        allowed: true,
        rule: "dashboard".into(),
        reason: "a read-only dashboard session".into(),
        ..crate::policy::Decision::scheduled("")
    };
    d.gov.record(
        &c.actor,
        c.via,
        "dashboard.open",
        "dashboard",
        serde_json::json!({ "audit": may_read_audit(&d, &c) }),
        &decision,
        &Ok(()),
    );
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut r = Json(SessionOpened {
        principal: c.actor.principal.clone(),
        role: c.actor.role.clone(),
        expires_in_seconds: SESSION_TTL.as_secs(),
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a cookie of hex"),
    );
    r
}

/// The header's figures, and `version`: it changes whenever anything the page shows may have
/// (a branch record, a compute starting or stopping, an audit record), so the page polls this
/// one small route and reloads the rest only then.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    pub project: String,
    pub principal: String,
    pub role: String,
    pub can_read_audit: bool,
    pub version: String,
    pub branches: usize,
    pub snapshots: usize,
    pub deleted: usize,
    pub tiers: Vec<String>,
    pub computes_running: usize,
    pub own_bytes: u64,
    /// Branches by TTL standing: expired, expiring, orphan, no-expiry.
    pub ttl: std::collections::BTreeMap<String, usize>,
}

async fn summary(State(d): State<Shared>, Extension(c): Extension<Caller>) -> ApiResult<Summary> {
    let rows = rows::tree(&d, &c.actor, true).await;
    let running = d.computes.running().await;
    let mut ttl = std::collections::BTreeMap::new();
    for r in rows.iter().filter(|r| !r.deleted && r.ttl != "ok") {
        *ttl.entry(r.ttl.to_string()).or_insert(0) += 1;
    }
    // What can change the page: a branch record, an audit record, the computes running, a
    // storage point, the policy, and (for TTL standing and idle times) the minute.
    let version = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            d.store().names_version(),
            d.gov.audit.next_seq(),
            &running,
            d.history.points(),
            &d.gov.policy().sha256,
            d.store().now().div_euclid(60_000_000_000),
        )
            .hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let can_read_audit = may_read_audit(&d, &c);
    let policy = d.gov.policy();
    Ok(Json(Summary {
        project: d.project.clone(),
        principal: c.actor.principal.clone(),
        role: c.actor.role.clone(),
        can_read_audit,
        version,
        branches: rows.iter().filter(|r| !r.snapshot && !r.deleted).count(),
        snapshots: rows.iter().filter(|r| r.snapshot && !r.deleted).count(),
        deleted: rows.iter().filter(|r| r.deleted).count(),
        tiers: policy.tiers.keys().cloned().collect(),
        computes_running: rows.iter().filter(|r| r.compute == "running").count(),
        own_bytes: rows.iter().filter_map(|r| r.own_bytes).sum(),
        ttl,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BranchQuery {
    page_size: Option<usize>,
    /// The offset of the next row, as the previous page returned it.
    page_token: Option<String>,
    /// Rows whose name contains this (case-insensitive), with their ancestors for context.
    q: Option<String>,
    /// Only rows in this TTL standing (expired, expiring, orphan, no-expiry, ok).
    ttl: Option<String>,
    show_deleted: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BranchPage {
    pub rows: Vec<Row>,
    /// Rows matching, all pages.
    pub total: usize,
    pub offset: usize,
    pub next_page_token: Option<String>,
}

const TTL_STATES: &[&str] = &["ok", "expiring", "expired", "orphan", "no-expiry"];
const MAX_ROWS: usize = 1000;

/// `GET /dashboard/branches`: the tree, one page (default 200 rows, at most 1,000).
async fn branches(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    q: Result<Query<BranchQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<BranchPage> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let size = q.page_size.unwrap_or(200);
    if size == 0 || size > MAX_ROWS {
        return Err(bad(format!("page_size must be 1..={MAX_ROWS}")));
    }
    let offset = match q.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| bad(format!("page_token '{t}' is not one this route returned")))?,
    };
    if let Some(t) = q.ttl.as_deref() {
        if !TTL_STATES.contains(&t) {
            return Err(bad(format!("ttl must be one of {}", TTL_STATES.join(", "))));
        }
    }
    let mut rows = rows::tree(&d, &c.actor, q.show_deleted.unwrap_or(false)).await;
    if let Some(t) = q.ttl.as_deref() {
        rows.retain(|r| r.ttl == t);
    }
    if let Some(needle) =
        q.q.as_deref()
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty())
    {
        rows.retain(|r| r.name.to_lowercase().contains(&needle));
    }
    let total = rows.len();
    let page: Vec<Row> = rows.into_iter().skip(offset).take(size).collect();
    let next = offset + page.len();
    Ok(Json(BranchPage {
        rows: page,
        total,
        offset,
        next_page_token: (next < total).then(|| next.to_string()),
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BranchDetail {
    pub row: Row,
    /// Storage over time, oldest first (one point per change).
    pub history: Vec<Sample>,
    pub wal_bytes: Option<u64>,
}

async fn branch(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    RawQuery(_): RawQuery,
) -> ApiResult<BranchDetail> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("branch '{name}' does not exist (or is not yours to see)"),
        )
    };
    let info = d.store().branch(&name).map_err(|_| not_found())?;
    if !rows::visible(&d, &c.actor, &info) {
        return Err(not_found());
    }
    let row = rows::tree(&d, &c.actor, true)
        .await
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(not_found)?;
    Ok(Json(BranchDetail {
        row,
        history: d.history.of(&name),
        wal_bytes: d.computes.wal_bytes(&name).ok(),
    }))
}

fn forbidden_audit(c: &Caller) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        format!(
            "role {} may not read the audit (roles.{}.audit)",
            c.actor.role, c.actor.role
        ),
    )
}

async fn audit(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    q: Result<Query<feeds::AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<AuditPage> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if !may_read_audit(&d, &c) {
        return Err(forbidden_audit(&c));
    }
    let all = d
        .gov
        .audit
        .read(&feeds::filter_of(&q))
        .map_err(|e| bad(format!("{e:#}")))?;
    Ok(Json(feeds::audit_page(all, &q).map_err(bad)?))
}

/// SCM state per feature and open PRs. Built from the audit, so it needs the audit right;
/// without it a caller sees the features on branches it may see.
async fn scm(State(d): State<Shared>, Extension(c): Extension<Caller>) -> ApiResult<Scm> {
    let all = d
        .gov
        .audit
        .read(&Default::default())
        .map_err(|e| bad(format!("{e:#}")))?;
    let prs = d
        .forge
        .lock()
        .unwrap()
        .list()
        .map_err(|e| bad(format!("{e:#}")))?;
    let mut s = feeds::scm(&all, &prs);
    if !may_read_audit(&d, &c) {
        let sees = |b: &str| {
            d.store()
                .branch(b)
                .is_ok_and(|i| rows::visible(&d, &c.actor, &i))
        };
        s.features.retain(|f| sees(&f.branch));
        s.open_prs
            .retain(|p| p.database_branch.as_deref().is_some_and(sees));
    }
    Ok(Json(s))
}

async fn timeline(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Vec<Moment>> {
    if !may_read_audit(&d, &c) {
        return Err(forbidden_audit(&c));
    }
    let all = d
        .gov
        .audit
        .read(&Default::default())
        .map_err(|e| bad(format!("{e:#}")))?;
    Ok(Json(feeds::timeline(&all, 200)))
}
