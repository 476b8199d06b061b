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
use axum::{Json, Router};
use tokio::sync::Notify;

use super::{BranchView, DaemonInfo, ErrorBody, Operation, Status};
use crate::compute::{Computes, Settings};
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
}

pub(super) struct Daemon {
    pub computes: Arc<Computes>,
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
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let store = Arc::new(
        Store::open(
            data_dir.join("store"),
            Options {
                retention_window: cfg.history_retention,
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
    let computes = Arc::new(Computes::open(
        store.clone(),
        &data_dir,
        cfg.settings.clone(),
    )?);
    let token = load_or_create_token(&data_dir)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], cfg.api_port)))
        .await
        .with_context(|| {
            format!(
                "binding the API to 127.0.0.1:{} (pass --api-port to pick another)",
                cfg.api_port
            )
        })?;
    let addr = listener.local_addr()?;
    let proxy = Proxy::new(&data_dir, computes.clone(), cfg.proxy.clone())?;
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
        let every = cfg.reap_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                c.reap_idle().await;
                c.expire_due().await;
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
        .route("/shutdown", post(shutdown));
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
        // Public discovery metadata the Databricks SDKs probe before authenticating: no OIDC
        // here (bearer tokens only), no workspace or account id.
        .route(
            "/.well-known/databricks-config",
            get(|| async { Json(serde_json::json!({ "oidc_endpoint": "" })) }),
        )
        .with_state(d)
}

async fn auth(State(d): State<Shared>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let want = format!("Bearer {}", d.token);
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| constant_time_eq(v.as_bytes(), want.as_bytes()));
    if !ok {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "missing or wrong bearer token (the CLI reads it from DATA/api-token)",
        )
        .into_response();
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Daemon {
    fn store(&self) -> &Store {
        self.computes.store()
    }

    pub(super) async fn view(&self, name: &str, with_usage: bool) -> Result<BranchView, ApiError> {
        let info = self.store().branch(name)?;
        let usage = if with_usage {
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
    UrlPath(name): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    let lsn = d.store().create_restore_point(&name)?;
    d.store().sync()?;
    Ok(Json(serde_json::json!({ "branch": name, "lsn": lsn })))
}

async fn start(
    State(d): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<crate::compute::Endpoint> {
    Ok(Json(d.computes.ensure_running(&name).await?))
}

async fn stop(
    State(d): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    d.store().branch(&name)?;
    let was = d.computes.stop(&name).await?;
    Ok(Json(
        serde_json::json!({ "branch": name, "was_running": was }),
    ))
}

async fn gc(State(d): State<Shared>) -> ApiResult<storage::GcReport> {
    let c = d.computes.clone();
    let r = tokio::task::spawn_blocking(move || c.store().gc())
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

async fn shutdown(State(d): State<Shared>) -> ApiResult<serde_json::Value> {
    d.shutdown.notify_one();
    Ok(Json(serde_json::json!({ "stopping": true })))
}
