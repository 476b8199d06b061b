//! The API's HTTP plumbing: errors in the Databricks shape, the bearer-token layer that says
//! who is calling (`Caller`), and the owner's token. It knows nothing of the routes or the
//! daemon's parts; the routes know nothing of headers or tokens.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::ErrorBody;
use crate::policy::{Actor, Governor};
use crate::storage;
use crate::util::write_atomically;

/// An error with the HTTP status and code a client can act on.
pub(super) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.body.message)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error_code: code.into(),
                message: message.into(),
            },
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        use storage::Error as E;
        let msg = format!("{e:#}");
        let (status, code) = match e.downcast_ref::<storage::Error>() {
            _ if e.is::<crate::policy::Refusal>() => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            _ if e.is::<crate::compute::Refused>() => (StatusCode::BAD_REQUEST, "INVALID_STATE"),
            _ if e.is::<crate::compute::Conflict>() => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            Some(E::BranchNotFound(_)) | Some(E::TimelineNotFound(_)) => {
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            }
            Some(E::BranchExists(_)) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            Some(E::InvalidBranchName { .. })
            | Some(E::LsnNotRetained { .. })
            | Some(E::TimeNotRetained { .. })
            | Some(E::LsnInFuture { .. })
            | Some(E::NoParent(_)) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            Some(E::ReadOnly(_)) => (StatusCode::BAD_REQUEST, "INVALID_STATE"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{msg}");
        }
        ApiError::new(status, code, msg)
    }
}

impl From<storage::Error> for ApiError {
    fn from(e: storage::Error) -> ApiError {
        anyhow::Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API's bearer token: 32 random bytes, hex, in DATA/api-token (0600), made once.
pub(super) fn load_or_create_token(data_dir: &Path) -> Result<String> {
    let p = super::token_path(data_dir);
    if let Ok(t) = std::fs::read_to_string(&p) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let t = crate::util::hex(&crate::util::random_bytes::<32>());
    write_atomically(&p, t.as_bytes(), 0o600)?;
    Ok(t)
}

/// Every error leaves in the Databricks shape, `{error_code, message}`: axum's own rejections
/// (a body over the limit: 413; JSON that does not parse or fit: 400/415/422) are plain text.
pub(super) async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "RESOURCE_EXHAUSTED",
            format!("the request body is larger than the API takes: {text}"),
        ),
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => ("MALFORMED_REQUEST", text),
        s if s.is_server_error() => ("INTERNAL_ERROR", text),
        _ => ("BAD_REQUEST", text),
    };
    ApiError::new(status, code, message).into_response()
}

/// Who made an API request, and through what (the CLI says so in a header; anything else is
/// the API).
#[derive(Clone)]
pub(super) struct Caller {
    pub actor: Actor,
    pub via: &'static str,
}

/// What the auth layer needs: the owner's token, the governor that knows principals, and the
/// dashboard's sessions.
pub(super) struct Auth {
    pub token: String,
    pub gov: Arc<Governor>,
    /// Session id → (principal, expiry). A session is opened with a bearer token and lets a
    /// browser read (GET only: the cookie never authorizes a change, so a cross-site form
    /// cannot act through it). The principal's role is looked up again on every request.
    pub sessions: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

/// The dashboard's session cookie.
pub(super) const SESSION_COOKIE: &str = "lakelet_session";
/// How long a dashboard session lasts.
pub(super) const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

impl Auth {
    pub fn new(token: String, gov: Arc<Governor>) -> Auth {
        Auth {
            token,
            gov,
            sessions: Default::default(),
        }
    }

    /// Opens a session for `principal`; returns the cookie's value.
    pub fn open_session(&self, principal: &str) -> String {
        let id = crate::util::hex(&crate::util::random_bytes::<32>());
        let mut s = self.sessions.lock().unwrap();
        let now = std::time::Instant::now();
        s.retain(|_, (_, until)| *until > now);
        s.insert(id.clone(), (principal.to_string(), now + SESSION_TTL));
        id
    }

    /// The actor of a live session named in the request's cookies.
    fn session_actor(&self, headers: &HeaderMap) -> Option<Actor> {
        let id = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))?;
        let s = self.sessions.lock().unwrap();
        let (principal, until) = s.get(id)?;
        if *until <= std::time::Instant::now() {
            return None;
        }
        self.gov.actor(principal)
    }
}

pub(super) async fn auth(
    State(d): State<Arc<Auth>>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let actor = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|secret| d.gov.actor_for_secret(secret.trim(), &d.token));
    let reads = req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD;
    let actor = actor.or_else(|| reads.then(|| d.session_actor(&headers)).flatten());
    let Some(actor) = actor else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "missing or wrong bearer token (the owner's is in DATA/api-token; a principal's \
             is the secret `lakelet principal add` printed)",
        )
        .into_response();
    };
    // A client that says whom it acts as must hold that principal's secret.
    let claimed = headers
        .get("x-lakelet-principal")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    if let Some(claimed) = claimed.filter(|c| *c != actor.principal) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            format!("LAKELET_SECRET is not the secret of principal {claimed}"),
        )
        .into_response();
    }
    let via = match headers
        .get("x-lakelet-client")
        .and_then(|v| v.to_str().ok())
    {
        Some("cli") => "cli",
        _ => "api",
    };
    req.extensions_mut().insert(Caller { actor, via });
    next.run(req).await
}
