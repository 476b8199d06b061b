//! A fresh database per test (`/lakelet/v1/test/…`): a warm pool of branches forked from a
//! *template* — a snapshot the CLI built by applying the project's migrations and seeds
//! (src/testdb) — with their computes already started, so a checkout is a map lookup and the
//! first query answers in milliseconds. Release soft-deletes the branch (undeletable for
//! looking at what a failed test left). The pool refills in the background, off the test's
//! critical path.
//!
//! Every branch the pool makes is decided and audited as a `branch.create` by the pool's
//! principal (via `pool`), every checkout as a connection (`test.checkout`), every release as
//! a `branch.delete`: a pool is a cache of allowed actions, never a way around the policy. A
//! policy change that refuses the principal stops the filler at its next branch and
//! checkouts at once.
//!
//! Nothing a run made outlives it: `POST /test/runs/{run}/end` releases what the run still
//! holds, drains the pools only it declared, and returns once every deletion is done. Each
//! branch also gets an expiry (`BRANCH_TTL`), so a run killed with SIGKILL leaves nothing
//! forever either.

mod fill;
mod state;

use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::daemon::Shared;
use super::http::{ApiError, ApiResult, Caller};
use super::lakebase::{bad, body, not_found};
use state::{Key, Lease, Pool};
pub use state::{PoolView, Pools, Waits};

use crate::lifecycle::Lifecycle;
use crate::policy::{Action, OWNER};

/// How long a pool's branch lives at most (checked out or not): the safety net for a run
/// that died without ending.
const BRANCH_TTL: Duration = Duration::from_secs(24 * 3600);

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/test/pools", post(declare))
        .route("/test/pools/{template}", delete(drain_route))
        .route("/test/checkout", post(checkout))
        .route("/test/release", post(release))
        .route("/test/runs/{run}/end", post(end_run))
        .route("/test/stats", get(stats))
}

#[derive(Debug, Deserialize)]
struct DeclareReq {
    template: String,
    size: Option<i64>,
    memory_budget_mb: Option<u64>,
    run: Option<String>,
}

/// Declares (or resizes) the caller's pool of `template`: `size` branches kept ready. With
/// `run`, the pool is that run's and goes when the run ends; without, it stands until
/// `DELETE /test/pools/{template}`.
async fn declare(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<PoolView> {
    let r: DeclareReq = body(
        &bytes,
        &["template", "size", "memory_budget_mb", "run"],
        &[],
    )?;
    let size = match r.size {
        None => 4,
        Some(n) if (1..=64).contains(&n) => n as usize,
        Some(n) => {
            return Err(bad(format!(
                "size {n} is out of range: a pool keeps 1 to 64 branches ready (without a \
                 pool, every checkout creates and starts its branch: leave the pool out)"
            )))
        }
    };
    if r.memory_budget_mb == Some(0) {
        return Err(bad(
            "memory_budget_mb 0 leaves no room for one compute; leave it out for no bound",
        ));
    }
    check_run(r.run.as_deref())?;
    template_of(&d, &r.template)?;
    // The pool acts for the caller: refuse now, in the caller's face, what the filler would
    // be refused later (the decision is audited as the refusal it is).
    let from = d.facts(&r.template)?;
    d.gov
        .permit_named(
            &c.actor,
            c.via,
            "test.pool",
            &Action::Create {
                name: &fill::branch_name(&c.actor, &r.template),
                from: &from,
                snapshot: false,
                past: false,
            },
            &r.template,
            serde_json::json!({ "size": size, "run": r.run }),
        )?
        .finish(Ok::<(), ApiError>(()))?;
    let key = Key {
        template: r.template.clone(),
        principal: c.actor.principal.clone(),
    };
    let view = {
        let mut g = d.pools.lock();
        let p = g
            .pools
            .entry(key.clone())
            .or_insert_with(|| Pool::new(c.actor.clone()));
        p.size = p.size.max(size);
        p.budget = r.memory_budget_mb.map(|m| m << 20).or(p.budget);
        p.closing = false;
        match &r.run {
            Some(run) => {
                p.runs.insert(run.clone());
            }
            None => p.standing = true,
        }
        if p.filler.is_none() {
            p.filler = Some(tokio::spawn(fill::filler(d.clone(), key.clone())));
        }
        p.wake.notify_one();
        PoolView::of(&key, p)
    };
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
struct CheckoutReq {
    template: String,
    run: Option<String>,
    label: Option<String>,
}

/// What a checkout hands out: the branch and where the proxy is. The client adds its own
/// credentials (the daemon never holds a principal's secret).
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkout {
    pub branch: String,
    pub template: String,
    /// Taken ready from the pool (else created and started for this checkout).
    pub hit: bool,
    /// How long the checkout took inside the daemon.
    pub wait_ms: f64,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// The startup `options` that select the branch.
    pub options: String,
}

async fn checkout(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<Checkout> {
    let t0 = Instant::now();
    let r: CheckoutReq = body(&bytes, &["template", "run", "label"], &[])?;
    check_run(r.run.as_deref())?;
    // Detached, and counted for its run: a client that gives up mid-checkout (a ^C) must not
    // leave a branch nobody holds, and the end of the run waits for it and then releases it.
    let run = r.run.clone().unwrap_or_default();
    *d.pools.lock().checking_out.entry(run.clone()).or_default() += 1;
    let d2 = d.clone();
    let done = tokio::spawn(async move {
        let out = checkout_detached(&d2, c, r, t0).await;
        d2.pools.settle(&run, |i| &mut i.checking_out);
        out
    });
    done.await
        .map_err(|e| ApiError::from(anyhow::anyhow!("the checkout task failed: {e}")))?
}

async fn checkout_detached(
    d: &Shared,
    c: Caller,
    r: CheckoutReq,
    t0: Instant,
) -> ApiResult<Checkout> {
    let label = r.label.map(|mut l| {
        l.truncate(crate::util::floor_char_boundary(&l, 200));
        l
    });
    template_of(d, &r.template)?;
    let key = Key {
        template: r.template.clone(),
        principal: c.actor.principal.clone(),
    };
    let popped = {
        let mut g = d.pools.lock();
        g.pools.get_mut(&key).and_then(|p| {
            p.wake.notify_one();
            p.ready.pop_front()
        })
    };
    let (branch, hit) = match popped {
        Some(b) => (b, true),
        None => {
            let b = fill::branch_name(&c.actor, &r.template);
            fill::create(d, &c, &b, &r.template).await?;
            (b, false)
        }
    };
    let permit = d.enforce_connect(&c, "test.checkout", &branch);
    let started = match permit {
        Ok(mut permit) => {
            permit.note("hit", hit.into());
            permit.note("label", label.clone().into());
            // A hit's compute runs (unless idle-stopped since); a miss starts here.
            let r = d
                .computes
                .ensure_running(&branch)
                .await
                .map(|_| ())
                .map_err(ApiError::from);
            permit.finish(r)
        }
        Err(e) => Err(e),
    };
    if let Err(e) = started {
        // Not handed out: it is ours to remove.
        let _ = d.branches.delete(&branch, true).await;
        return Err(e);
    }
    let wait_ms = t0.elapsed().as_secs_f64() * 1000.0;
    {
        let mut g = d.pools.lock();
        g.leases.insert(
            branch.clone(),
            Lease {
                key: key.clone(),
                run: r.run.clone(),
                label,
                since: SystemTime::now(),
            },
        );
        // Without a declared pool, an entry of size 0 keeps the figures.
        g.pools
            .entry(key.clone())
            .or_insert_with(|| Pool::new(c.actor.clone()))
            .stats
            .waited(wait_ms, hit);
    }
    let (host, port) = proxy_addr(d);
    Ok(Json(Checkout {
        options: format!("branch={branch}"),
        branch,
        template: r.template,
        hit,
        wait_ms: (wait_ms * 100.0).round() / 100.0,
        host,
        port,
        database: "postgres".into(),
    }))
}

#[derive(Debug, Deserialize)]
struct ReleaseReq {
    branch: String,
}

/// Soft-deletes a checked-out branch. The answer comes at once; the deletion (stopping the
/// compute, unmounting) runs in the background, and the end of the run waits for it.
async fn release(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    bytes: Bytes,
) -> ApiResult<serde_json::Value> {
    let r: ReleaseReq = body(&bytes, &["branch"], &[])?;
    let holder = d.pools.lock().leases.get(&r.branch).map(|l| l.key.clone());
    let Some(key) = holder else {
        return Err(not_found(format!(
            "branch '{}' is not checked out: it was released already, or checkout never \
             handed it out",
            r.branch
        )));
    };
    if key.principal != c.actor.principal && c.actor.principal != OWNER {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "branch '{}' is checked out by {}; only they (or the owner) release it",
                r.branch, key.principal
            ),
        ));
    }
    let f = d.facts(&r.branch)?;
    let mut permit = d.enforce(
        &c,
        &Action::Delete { branch: &f },
        &r.branch,
        serde_json::json!({ "purge": false }),
    )?;
    permit.note("release", true.into());
    let run = {
        let mut g = d.pools.lock();
        let Some(lease) = g.leases.remove(&r.branch) else {
            // Released by a concurrent call between our two looks.
            return permit.finish(Err(not_found(format!(
                "branch '{}' was released meanwhile",
                r.branch
            ))));
        };
        if let Some(p) = g.pools.get_mut(&key) {
            p.stats.releases += 1;
        }
        let run = lease.run.unwrap_or_default();
        *g.releasing.entry(run.clone()).or_default() += 1;
        run
    };
    let d2 = d.clone();
    let branch = r.branch.clone();
    tokio::spawn(async move {
        let r = d2.branches.discard(&branch).await;
        if let Err(e) = &r {
            tracing::error!(branch, "releasing a test branch: {e:#}");
        }
        let _ = permit.finish(r);
        d2.pools.settle(&run, |i| &mut i.releasing);
    });
    Ok(Json(
        serde_json::json!({ "branch": r.branch, "released": true }),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunEnd {
    pub run: String,
    /// Branches the run still held, soft-deleted now.
    pub released: Vec<String>,
    /// Ready branches of the pools only this run declared, soft-deleted.
    pub drained: Vec<String>,
}

/// Ends a run: whatever it still holds is released, the pools only it declared are drained,
/// and the answer waits until every deletion (also earlier background releases) is done.
async fn end_run(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(run): UrlPath<String>,
) -> ApiResult<RunEnd> {
    check_run(Some(&run))?;
    // Checkouts still under way for this run finish first (their branches are then held).
    d.pools.wait_settled(&run, |i| &mut i.checking_out).await;
    let held: Vec<String> = {
        let mut g = d.pools.lock();
        let mine: Vec<String> = g
            .leases
            .iter()
            .filter(|(_, l)| l.run.as_deref() == Some(run.as_str()))
            .filter(|(_, l)| l.key.principal == c.actor.principal || c.actor.principal == OWNER)
            .map(|(b, _)| b.clone())
            .collect();
        for b in &mine {
            g.leases.remove(b);
        }
        mine
    };
    let mut released = vec![];
    for b in held {
        if fill::delete(&d, &c, &b, "test.release").await.is_ok() {
            released.push(b);
        }
    }
    let keys: Vec<Key> = {
        let mut g = d.pools.lock();
        let mut last = vec![];
        for (k, p) in g.pools.iter_mut() {
            if p.runs.remove(&run) && p.runs.is_empty() && !p.standing {
                last.push(k.clone());
            }
        }
        last
    };
    let mut drained = vec![];
    for k in keys {
        drained.extend(fill::drain(&d, &c, &k).await);
    }
    // Earlier releases of this run may still be deleting.
    d.pools.wait_settled(&run, |i| &mut i.releasing).await;
    Ok(Json(RunEnd {
        run,
        released,
        drained,
    }))
}

/// Drains the caller's standing pool of `template`.
async fn drain_route(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(template): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    let key = Key {
        template: template.clone(),
        principal: c.actor.principal.clone(),
    };
    if !d.pools.lock().pools.contains_key(&key) {
        return Err(not_found(format!(
            "you have no pool of template '{template}'"
        )));
    }
    let drained = fill::drain(&d, &c, &key).await;
    Ok(Json(
        serde_json::json!({ "template": template, "drained": drained }),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TestStats {
    pub pools: Vec<PoolView>,
    /// Branches handed out and not yet released (the caller's, or everyone's for the owner).
    pub checked_out: usize,
    pub releasing: usize,
    /// What is checked out: branch, holder, run, label, since (oldest first).
    pub held: Vec<Held>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Held {
    pub branch: String,
    pub template: String,
    pub principal: String,
    pub run: Option<String>,
    pub label: Option<String>,
    pub since: String,
}

async fn stats(State(d): State<Shared>, Extension(c): Extension<Caller>) -> ApiResult<TestStats> {
    let everyone = c.actor.principal == OWNER;
    let g = d.pools.lock();
    let mut pools: Vec<PoolView> = g
        .pools
        .iter()
        .filter(|(k, _)| everyone || k.principal == c.actor.principal)
        .map(|(k, p)| PoolView::of(k, p))
        .collect();
    pools.sort_by(|a, b| (&a.template, &a.principal).cmp(&(&b.template, &b.principal)));
    let mut held: Vec<(SystemTime, Held)> = g
        .leases
        .iter()
        .filter(|(_, l)| everyone || l.key.principal == c.actor.principal)
        .map(|(b, l)| {
            let at = l
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            (
                l.since,
                Held {
                    branch: b.clone(),
                    template: l.key.template.clone(),
                    principal: l.key.principal.clone(),
                    run: l.run.clone(),
                    label: l.label.clone(),
                    since: crate::storage::format_time(at),
                },
            )
        })
        .collect();
    held.sort_by_key(|(t, _)| *t);
    Ok(Json(TestStats {
        pools,
        checked_out: held.len(),
        releasing: g.releasing.values().sum(),
        held: held.into_iter().map(|(_, h)| h).collect(),
    }))
}

/// Drains every pool (the daemon is stopping): ready branches are soft-deleted, so a restart
/// finds no warm branch nobody holds.
pub(super) async fn drain_all(d: &Shared) {
    let keys: Vec<(Key, crate::policy::Actor)> = d
        .pools
        .lock()
        .pools
        .iter()
        .map(|(k, p)| (k.clone(), p.actor.clone()))
        .collect();
    for (k, actor) in keys {
        let c = Caller { actor, via: "pool" };
        fill::drain(d, &c, &k).await;
    }
}

/// A run id: what `lakelet test` makes (letters, digits, `-`, `_`), bounded.
fn check_run(run: Option<&str>) -> Result<(), ApiError> {
    match run {
        Some(r)
            if r.is_empty()
                || r.len() > 64
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err(bad(format!(
                "run {} is invalid: use 1 to 64 letters, digits, '-' and '_'",
                crate::util::quoted_bounded(r)
            )))
        }
        _ => Ok(()),
    }
}

/// The template must be a live snapshot: a pool forks only what is never written.
fn template_of(d: &Shared, template: &str) -> Result<(), ApiError> {
    let missing = || {
        not_found(format!(
            "no template '{template}': build it with `lakelet test template` (it prints the \
             name), or run the tests under `lakelet test -- …`"
        ))
    };
    let info = d.store().branch(template).map_err(|_| missing())?;
    if !info.snapshot {
        return Err(bad(format!(
            "'{template}' is a branch, not a template; a template is the snapshot `lakelet test \
             template` builds"
        )));
    }
    if Lifecycle::decode(&info.annotations).is_deleted() {
        return Err(missing());
    }
    Ok(())
}

fn proxy_addr(d: &Shared) -> (String, u16) {
    let addr: Option<std::net::SocketAddr> = d.info.proxy.as_deref().and_then(|a| a.parse().ok());
    match addr {
        Some(a) if a.ip().is_unspecified() => ("127.0.0.1".into(), a.port()),
        Some(a) => (a.ip().to_string(), a.port()),
        None => ("127.0.0.1".into(), 5432),
    }
}

/// Where a branch made for the pool starts: the template's head, with the pool's expiry.
fn lifecycle(d: &Shared, template: &str) -> Lifecycle {
    Lifecycle {
        expire_at: Some(d.store().now() + BRANCH_TTL.as_nanos() as i64),
        source_snapshot: Some(template.to_string()),
        ..Default::default()
    }
}
