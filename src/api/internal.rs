//! lakelet's own routes under /lakelet/v1: status, a branch's retained history and restore
//! points, a compute's start and stop, GC, operations, shutdown. (Governance and import have
//! files of their own.)

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::daemon::Shared;
use super::http::{ApiError, ApiResult, Caller};
use super::{Operation, Status};
use crate::storage;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/status", get(status))
        .route("/branches/{name}/retained", get(retained))
        .route("/branches/{name}/restore-point", post(restore_point))
        .route("/branches/{name}/start", post(start))
        .route("/branches/{name}/stop", post(stop))
        .route("/gc", post(gc))
        .route("/operations/{id}", get(operation))
        .route("/shutdown", post(shutdown))
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
    let permit = d.enforce_connect(&c, "branch.restore_point", &name)?;
    let r = (|| {
        let lsn = d.store().create_restore_point(&name)?;
        d.store().sync()?;
        Ok(Json(serde_json::json!({ "branch": name, "lsn": lsn })))
    })();
    permit.finish(r)
}

async fn start(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<crate::compute::Endpoint> {
    let permit = d.enforce_connect(&c, "compute.start", &name)?;
    let r = d
        .computes
        .ensure_running(&name)
        .await
        .map(Json)
        .map_err(ApiError::from);
    permit.finish(r)
}

async fn stop(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    let permit = d.enforce_connect(&c, "compute.stop", &name)?;
    let r = d
        .computes
        .stop(&name)
        .await
        .map(|was| Json(serde_json::json!({ "branch": name, "was_running": was })))
        .map_err(ApiError::from);
    permit.finish(r)
}

async fn gc(
    State(d): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<storage::GcReport> {
    let permit = d.admin(&caller, "gc", "run gc", "store", serde_json::json!({}))?;
    let c = d.computes.clone();
    // Audited once GC has run, with its outcome.
    let r = tokio::task::spawn_blocking(move || {
        let r = c.store().gc();
        // The WAL kept beside the store is history too (compute/archive.rs).
        c.sweep_wal_now();
        r
    })
    .await
    .map_err(|e| anyhow::anyhow!("gc task: {e}"))
    .and_then(|r| r.map_err(anyhow::Error::from))
    .map(Json)
    .map_err(ApiError::from);
    permit.finish(r)
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
    let permit = d.admin(
        &c,
        "shutdown",
        "stop the daemon",
        "daemon",
        serde_json::json!({}),
    )?;
    // The outcome the caller gets: the daemon is told to stop (it stops after answering).
    d.shutdown.notify_one();
    permit.finish(Ok::<_, ApiError>(Json(
        serde_json::json!({ "stopping": true }),
    )))
}
