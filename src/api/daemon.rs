//! The daemon: opens the store, owns the computes, serves the control API, and shuts all of it
//! down cleanly on `lakelet down`, SIGTERM or SIGINT. The helpers every route shares (the
//! permit to act, the facts a decision needs, operations) are here; the HTTP plumbing is in
//! http.rs, lakelet's own routes in internal.rs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Notify;

use super::http::{auth, json_errors, load_or_create_token, ApiError, Auth, Caller};
use super::{BranchView, DaemonInfo, Operation};
use crate::compute::{Computes, Settings};
use crate::lifecycle::Branches;
use crate::policy::{Action, Actor, Governor, Permit};
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
    /// How often each branch's storage is sampled for the dashboard's history plot.
    pub sample_every: Duration,
}

pub(super) struct Daemon {
    pub computes: Arc<Computes>,
    pub branches: Arc<Branches>,
    pub gov: Arc<Governor>,
    pub proxy: Arc<Proxy>,
    pub info: DaemonInfo,
    pub(super) auth: Arc<Auth>,
    /// Each branch's storage over time (the dashboard's plot), sampled every
    /// `DaemonConfig::sample_every`.
    pub history: super::dashboard::History,
    pub ops: Mutex<HashMap<String, Operation>>,
    next_op: std::sync::atomic::AtomicU64,
    pub(super) shutdown: Notify,
    pub project: String,
    pub lakebase_ops: Mutex<std::collections::VecDeque<super::lakebase::types::Operation>>,
    /// The project's pull requests and CI runs (DATA/forge). Lock order: taken alone, held
    /// only for a record's read or write, never across an await.
    pub forge: Mutex<super::records::Records>,
    /// The warm pools of test branches and who holds which (testpool/).
    pub pools: super::testpool::Pools,
}

pub(super) type Shared = Arc<Daemon>;

/// Runs the daemon until it is told to stop. `ready` is called once the API is listening and
/// daemon.json is written.
pub async fn run(cfg: DaemonConfig) -> Result<()> {
    let data_dir = cfg.data_dir.clone();
    crate::util::private_dir(&data_dir, "the data directory")?;
    // What the daemon creates (store files, the audit log, logs, WAL) is its own: a file meant
    // for someone else (a socket directory, the compute's WAL) gets its owner and mode
    // explicitly.
    unsafe { libc::umask(0o077) };
    // A daemon SIGKILLed a moment ago may still be exiting (its FUSE views tearing down)
    // and hold the store's lock until its last descriptor closes: wait a little for it.
    let open = || {
        Store::open(
            data_dir.join("store"),
            Options {
                retention_window: cfg.history_retention,
                fine_window: cfg.fine_window,
                ..Options::default()
            },
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut opened = open();
    while let Err(e) = &opened {
        let busy = format!("{e:#}").contains("Resource temporarily unavailable");
        if !busy || std::time::Instant::now() > deadline {
            break;
        }
        tracing::info!("the page store is still locked (a previous daemon exiting?); waiting");
        tokio::time::sleep(Duration::from_millis(250)).await;
        opened = open();
    }
    let store = Arc::new(opened.with_context(|| {
        format!(
            "opening the page store in {} (is another lakelet daemon using it?)",
            data_dir.display()
        )
    })?);
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
    let branches = Arc::new(Branches::new(computes.clone()));
    let gov = Arc::new(Governor::open(
        &data_dir,
        branches.clone(),
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
    let walker = store.spawn_walker(Duration::from_secs(2));
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
        branches: branches.clone(),
        auth: Arc::new(Auth::new(token, gov.clone())),
        gov,
        proxy: proxy.clone(),
        info: info.clone(),
        ops: Mutex::new(HashMap::new()),
        next_op: Default::default(),
        shutdown: Notify::new(),
        project: cfg.project.clone(),
        lakebase_ops: Default::default(),
        history: Default::default(),
        forge: Mutex::new(super::records::Records::at(
            data_dir.join("forge"),
            super::records::Urls::Api(format!("http://{addr}/lakelet/v1")),
        )),
        pools: Default::default(),
    });

    let reaper = {
        let c = computes.clone();
        let b = branches.clone();
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
                for (name, what) in b.expire_due().await {
                    let d = crate::policy::Decision::scheduled(format!("{what} on schedule"));
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

    let sampler = {
        let d = daemon.clone();
        let every = cfg.sample_every;
        tokio::spawn(async move {
            loop {
                let d2 = d.clone();
                let _ = tokio::task::spawn_blocking(move || d2.history.sample(d2.store())).await;
                tokio::time::sleep(every).await;
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

    tracing::info!("shutting down: draining test pools, stopping computes");
    super::testpool::drain_all(&daemon).await;
    stop_proxy.notify_one();
    let _ = proxy_task.await;
    reaper.abort();
    sampler.abort();
    computes.shutdown().await;
    daemon.gov.shutdown().await;
    drop(gc);
    drop(walker);
    store.sync()?;
    let _ = std::fs::remove_file(super::info_path(&data_dir));
    tracing::info!("lakelet daemon stopped");
    Ok(())
}

fn router(d: Shared) -> Router {
    let v1 = super::internal::routes()
        .route("/import", post(super::import::start))
        .merge(super::governance::routes())
        .merge(super::forge::routes())
        .merge(super::dashboard::routes())
        .merge(super::testpool::routes());
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
        .layer(axum::middleware::from_fn_with_state(d.auth.clone(), auth))
        .layer(axum::middleware::map_response(json_errors))
        // The dashboard's page and assets: public (they hold no data; every figure they show
        // comes from the authenticated routes above).
        .merge(super::dashboard::assets())
        // Public discovery metadata the Databricks SDKs probe before authenticating: no OIDC
        // here (bearer tokens only), no workspace or account id.
        .route(
            "/.well-known/databricks-config",
            get(|| async { Json(serde_json::json!({ "oidc_endpoint": "" })) }),
        )
        .with_state(d)
}

impl Daemon {
    /// Decides `action` for the caller: a refusal is audited and becomes a 403, an allowance
    /// the permit to act (`Permit::finish` audits the outcome).
    pub(super) fn enforce(
        &self,
        c: &Caller,
        action: &Action,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Permit, ApiError> {
        Ok(self.gov.permit(&c.actor, c.via, action, target, args)?)
    }

    /// `enforce`, audited under `name`.
    pub(super) fn enforce_named(
        &self,
        c: &Caller,
        name: &str,
        action: &Action,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Permit, ApiError> {
        Ok(self
            .gov
            .permit_named(&c.actor, c.via, name, action, target, args)?)
    }

    /// What acts on a branch's compute (start, stop, a restore point) needs the right to
    /// connect to it.
    pub(super) fn enforce_connect(
        &self,
        c: &Caller,
        action: &str,
        branch: &str,
    ) -> Result<Permit, ApiError> {
        let f = self.facts(branch)?;
        self.enforce_named(
            c,
            action,
            &Action::Connect { branch: &f },
            branch,
            serde_json::json!({}),
        )
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

    /// An admin action (gc, import, shutdown, principals), audited as `name`.
    pub(super) fn admin(
        &self,
        c: &Caller,
        name: &str,
        what: &str,
        target: &str,
        args: serde_json::Value,
    ) -> Result<Permit, ApiError> {
        self.enforce_named(c, name, &Action::Admin { what }, target, args)
    }

    pub(super) fn store(&self) -> &Store {
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
