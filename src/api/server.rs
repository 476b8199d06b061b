//! The daemon: opens the store, owns the computes, serves the control API, and shuts all of it
//! down cleanly on `lakelet down`, SIGTERM or SIGINT.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use tokio::sync::Notify;

use super::{BranchView, DaemonInfo, ErrorBody, Operation, Status};
use crate::compute::{Computes, Settings};
use crate::policy::{Action, Actor, Decision, Governor};
use crate::proxy::{Proxy, ProxyConfig};
use crate::storage::{self, Options, Store};
use crate::util::write_atomically;

/// What `lakelet daemon` (started by `lakelet up`) is given.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub api_port: u16,
    pub settings: Settings,
    pub gc_every: Duration,
    /// How often the idle reaper looks at each compute.
    pub reap_every: Duration,
    pub proxy: ProxyConfig,
    /// The project id of the Lakebase-shaped API (`local` unless lakelet.toml names one).
    pub project: String,
    /// How long history is kept (the project's `history_retention_duration`, the GC window).
    pub history_retention: Duration,
    /// The store's fine point-in-time window.
    pub fine_window: Duration,
    /// The lakelet.toml whose policy the daemon enforces (`lakelet policy apply` re-reads it).
    pub policy: Option<PathBuf>,
}

pub(super) struct Daemon {
    pub computes: Arc<Computes>,
    pub gov: Arc<Governor>,
    pub proxy: Arc<Proxy>,
    pub info: DaemonInfo,
    token: String,
    pub ops: Mutex<HashMap<String, Operation>>,
    next_op: std::sync::atomic::AtomicU64,
    shutdown: Notify,
    pub project: String,
    pub lakebase_ops: Mutex<std::collections::VecDeque<super::lakebase::types::Operation>>,
}

type Shared = Arc<Daemon>;

/// An error with the HTTP status and code a client can act on.
pub(super) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn message(&self) -> &str {
        &self.body.message
    }

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

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs the daemon until it is told to stop. `ready` is called once the API is listening and
/// daemon.json is written.
pub async fn run(cfg: DaemonConfig) -> Result<()> {
    let data_dir = cfg.data_dir.clone();
    crate::util::private_dir(&data_dir, "the data directory")?;
    // What the daemon creates (store files, the audit log, logs, WAL) is its own: a file meant
    // for someone else (a socket directory, the compute's WAL) gets its owner and mode
    // explicitly.
    unsafe { libc::umask(0o077) };
    let store = Arc::new(
        Store::open(
            data_dir.join("store"),
            Options {
                retention_window: cfg.history_retention,
                fine_window: cfg.fine_window,
                ..Options::default()
            },
        )
        .with_context(|| {
            format!(
                "opening the page store in {} (is another lakelet daemon using it?)",
                data_dir.display()
            )
        })?,
    );
    let root = &cfg.settings.root_branch;
    if !store.branches().is_empty() && store.branch(root).is_err() {
        anyhow::bail!(
            "this data directory has no branch '{root}', which lakelet.toml names as the root \
             tier; name the root tier after the data directory's root branch"
        );
    }
    let computes = Arc::new(Computes::open(
        store.clone(),
        &data_dir,
        cfg.settings.clone(),
    )?);
    let token = load_or_create_token(&data_dir)?;
    let gov = Arc::new(Governor::open(
        &data_dir,
        computes.clone(),
        cfg.policy.as_deref(),
    )?);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], cfg.api_port)))
        .await
        .with_context(|| {
            format!(
                "binding the API to 127.0.0.1:{} (pass --api-port to pick another)",
                cfg.api_port
            )
        })?;
    let addr = listener.local_addr()?;
    let proxy = Proxy::new(&data_dir, computes.clone(), gov.clone(), cfg.proxy.clone())?;
    let proxy_listener = proxy.bind().await?;
    let proxy_addr = proxy_listener.local_addr()?;
    // Both ports are bound before the (first-start) initdb, so a taken port fails at once.
    computes.bootstrap().await?;
    let gc = store.spawn_gc(cfg.gc_every);
    let info = DaemonInfo {
        pid: std::process::id(),
        api: addr.to_string(),
        data_dir: data_dir.clone(),
        run_dir: computes.run_dir().to_path_buf(),
        started_at: storage::format_time(store.now()),
        version: env!("CARGO_PKG_VERSION").into(),
        proxy: Some(proxy_addr.to_string()),
        auth: Some(
            serde_json::to_value(cfg.proxy.auth)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        tls_cert: Some(proxy.cert_path().to_path_buf()),
        project: Some(cfg.project.clone()),
    };
    let daemon = Arc::new(Daemon {
        computes: computes.clone(),
        gov,
        proxy: proxy.clone(),
        info: info.clone(),
        token,
        ops: Mutex::new(HashMap::new()),
        next_op: Default::default(),
        shutdown: Notify::new(),
        project: cfg.project.clone(),
        lakebase_ops: Default::default(),
    });

    let reaper = {
        let c = computes.clone();
        let g = daemon.gov.clone();
        let every = cfg.reap_every;
        tokio::spawn(async move {
            let daemon_actor = crate::policy::Actor {
                principal: "lakelet".into(),
                role: "-".into(),
            };
            loop {
                tokio::time::sleep(every).await;
                c.reap_idle().await;
                for (name, what) in c.expire_due().await {
                    let d = Decision {
                        allowed: true,
                        rule: "lifecycle".into(),
                        reason: format!("{what} on schedule"),
                        access: None,
                        mask: false,
                    };
                    g.record(
                        &daemon_actor,
                        "daemon",
                        &format!("branch.{what}"),
                        &name,
                        serde_json::json!({}),
                        &d,
                        &Ok(()),
                    );
                }
            }
        })
    };

    let stop_proxy = Arc::new(Notify::new());
    let proxy_task = {
        let stop = stop_proxy.clone();
        tokio::spawn(
            proxy
                .clone()
                .serve(proxy_listener, async move { stop.notified().await }),
        )
    };

    let app = router(daemon.clone());
    write_atomically(
        &super::info_path(&data_dir),
        serde_json::to_vec_pretty(&info)?.as_slice(),
        0o644,
    )?;
    tracing::info!(api = %addr, proxy = %proxy_addr, data_dir = %data_dir.display(), "lakelet daemon ready");

    let stop = {
        let d = daemon.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = d.shutdown.notified() => {}
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .context("serving the API")?;

    tracing::info!("shutting down: stopping computes");
    stop_proxy.notify_one();
    let _ = proxy_task.await;
    reaper.abort();
    computes.shutdown().await;
    daemon.gov.shutdown().await;
    drop(gc);
    store.sync()?;
    let _ = std::fs::remove_file(super::info_path(&data_dir));
    tracing::info!("lakelet daemon stopped");
    Ok(())
}

/// The API's bearer token: 32 random bytes, hex, in DATA/api-token (0600), made once.
fn load_or_create_token(data_dir: &Path) -> Result<String> {
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
async fn json_errors(res: Response) -> Response {
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

fn router(d: Shared) -> Router {
    let v1 = Router::new()
        .route("/status", get(status))
        .route("/branches/{name}/retained", get(retained))
        .route("/branches/{name}/restore-point", post(restore_point))
        .route("/branches/{name}/start", post(start))
        .route("/branches/{name}/stop", post(stop))
        .route("/gc", post(gc))
        .route("/import", post(super::import::start))
        .route("/operations/{id}", get(operation))
        .route("/shutdown", post(shutdown))
        .merge(super::governance::routes());
    Router::new()
        .nest("/lakelet/v1", v1)
        .merge(super::lakebase::routes())
        .route("/metrics", get(super::metrics::render))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such route (docs/openapi.yaml lists them)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "BAD_REQUEST",
                "this route does not take that method (docs/openapi.yaml lists them)",
            )
        })
        .layer(axum::middleware::from_fn_with_state(d.clone(), auth))
        .layer(axum::middleware::map_response(json_errors))
        // Public discovery metadata the Databricks SDKs probe before authenticating: no OIDC
        // here (bearer tokens only), no workspace or account id.
        .route(
            "/.well-known/databricks-config",
            get(|| async { Json(serde_json::json!({ "oidc_endpoint": "" })) }),
        )
        .with_state(d)
}

/// Who made an API request, and through what (the CLI says so in a header; anything else is
/// the API).
#[derive(Clone)]
pub(super) struct Caller {
    pub actor: Actor,
    pub via: &'static str,
}

async fn auth(
    State(d): State<Shared>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let actor = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|secret| d.gov.actor_for_secret(secret.trim(), &d.token));
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

impl Daemon {
    /// Decides `action` for the caller; a refusal is audited and becomes a 403.
    pub(super) fn enforce(
        &self,
        c: &Caller,
        action: &Action,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Decision, ApiError> {
        Ok(self.gov.enforce(&c.actor, c.via, action, target, args)?)
    }

    /// `enforce`, audited under `name`.
    pub(super) fn enforce_named(
        &self,
        c: &Caller,
        name: &str,
        action: &Action,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Decision, ApiError> {
        Ok(self
            .gov
            .enforce_named(&c.actor, c.via, name, action, target, args)?)
    }

    /// What acts on a branch's compute (start, stop, a restore point) needs the right to
    /// connect to it.
    pub(super) fn enforce_connect(
        &self,
        c: &Caller,
        action: &str,
        branch: &str,
    ) -> Result<Decision, ApiError> {
        let f = self.facts(branch)?;
        self.enforce_named(
            c,
            action,
            &Action::Connect { branch: &f },
            branch,
            serde_json::json!({}),
        )
    }

    /// Audits an allowed action with its result, and passes the result on.
    pub(super) fn audited<T>(
        &self,
        c: &Caller,
        action: &str,
        target: &str,
        args: serde_json::Value,
        d: &Decision,
        r: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let res = r
            .as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{}", e.message()));
        self.gov
            .record(&c.actor, c.via, action, target, args, d, &res);
        r
    }

    /// The proxy user a principal connects as (the owner is the local user).
    pub(super) fn proxy_user(&self, a: &Actor) -> String {
        if a.principal == crate::policy::OWNER {
            crate::proxy::LOCAL_USER.to_string()
        } else {
            a.principal.clone()
        }
    }

    /// Facts about a branch for a decision (404 if it does not exist).
    pub(super) fn facts(&self, name: &str) -> Result<crate::policy::Facts, ApiError> {
        Ok(self.gov.facts(name)?)
    }

    /// An admin action (gc, import, shutdown, principals, the policy).
    pub(super) fn admin(&self, c: &Caller, what: &str, target: &str) -> Result<Decision, ApiError> {
        self.enforce(
            c,
            &Action::Admin { what },
            target,
            serde_json::json!({ "what": what }),
        )
    }

    fn store(&self) -> &Store {
        self.computes.store()
    }

    pub(super) async fn view(&self, name: &str, with_usage: bool) -> Result<BranchView, ApiError> {
        let info = self.store().branch(name)?;
        let usage = if with_usage {
            self.computes.push_writes(name).await?;
            Some(self.store().usage(name)?)
        } else {
            None
        };
        Ok(BranchView {
            info: info.into(),
            compute: self.computes.status(name).await,
            connections: self.proxy.metrics.snapshot(name),
            usage,
        })
    }

    pub(super) fn new_op(&self, kind: &str) -> String {
        let n = self
            .next_op
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("operations/{kind}-{}-{n}", std::process::id());
        self.ops.lock().unwrap().insert(
            name.clone(),
            Operation {
                name: name.clone(),
                done: false,
                progress: Default::default(),
                error: None,
                response: None,
            },
        );
        name
    }

    pub(super) fn update_op(&self, name: &str, f: impl FnOnce(&mut Operation)) {
        if let Some(op) = self.ops.lock().unwrap().get_mut(name) {
            f(op)
        }
    }
}

async fn status(State(d): State<Shared>) -> ApiResult<Status> {
    let mut branches = Vec::new();
    for b in d.store().branches() {
        branches.push(d.view(&b.name, true).await?);
    }
    let s = d.computes.settings();
    Ok(Json(Status {
        daemon: d.info.clone(),
        postgres: d.computes.installs().to_vec(),
        compute_user: d.computes.user().name.clone(),
        idle_stop_seconds: s.idle_stop.as_secs(),
        last_lsn: d.store().last_lsn(),
        proxy: d.proxy.metrics.totals(),
        branches,
    }))
}

async fn retained(
    State(d): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<storage::Retained> {
    Ok(Json(d.store().retained(&name)?))
}

async fn restore_point(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    let dec = d.enforce_connect(&c, "branch.restore_point", &name)?;
    let r = (|| {
        let lsn = d.store().create_restore_point(&name)?;
        d.store().sync()?;
        Ok(Json(serde_json::json!({ "branch": name, "lsn": lsn })))
    })();
    d.audited(
        &c,
        "branch.restore_point",
        &name,
        serde_json::json!({}),
        &dec,
        r,
    )
}

async fn start(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<crate::compute::Endpoint> {
    let dec = d.enforce_connect(&c, "compute.start", &name)?;
    let r = d
        .computes
        .ensure_running(&name)
        .await
        .map(Json)
        .map_err(ApiError::from);
    d.audited(&c, "compute.start", &name, serde_json::json!({}), &dec, r)
}

async fn stop(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    let dec = d.enforce_connect(&c, "compute.stop", &name)?;
    let r = d
        .computes
        .stop(&name)
        .await
        .map(|was| Json(serde_json::json!({ "branch": name, "was_running": was })))
        .map_err(ApiError::from);
    d.audited(&c, "compute.stop", &name, serde_json::json!({}), &dec, r)
}

async fn gc(
    State(d): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<storage::GcReport> {
    let dec = d.admin(&caller, "run gc", "store")?;
    d.gov.record(
        &caller.actor,
        caller.via,
        "gc",
        "store",
        serde_json::json!({}),
        &dec,
        &Ok(()),
    );
    let c = d.computes.clone();
    let r = tokio::task::spawn_blocking(move || {
        let r = c.store().gc();
        // The WAL kept beside the store is history too (compute/archive.rs).
        c.sweep_wal_now();
        r
    })
    .await
    .map_err(|e| anyhow::anyhow!("gc task: {e}"))??;
    Ok(Json(r))
}

async fn operation(State(d): State<Shared>, UrlPath(id): UrlPath<String>) -> ApiResult<Operation> {
    let name = format!("operations/{id}");
    d.ops
        .lock()
        .unwrap()
        .get(&name)
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no operation {name}"),
            )
        })
}

async fn shutdown(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
) -> ApiResult<serde_json::Value> {
    let dec = d.admin(&c, "stop the daemon", "daemon")?;
    d.gov.record(
        &c.actor,
        c.via,
        "shutdown",
        "daemon",
        serde_json::json!({}),
        &dec,
        &Ok(()),
    );
    d.shutdown.notify_one();
    Ok(Json(serde_json::json!({ "stopping": true })))
}
