//! `/lakelet/v1` routes of the policy layer: who am I, principals, the policy, the audit, and
//! promotion grants.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::daemon::Daemon;
use super::http::{ApiError, Caller};
use crate::policy::audit::{Filter, Record};
use crate::policy::Action;

type Shared = std::sync::Arc<Daemon>;
type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/principals", get(list_principals).post(add_principal))
        .route("/principals/{name}", delete(remove_principal))
        .route("/policy", get(show_policy))
        .route("/policy/apply", post(apply_policy))
        .route("/audit", get(audit))
        .route("/promotions", post(promote))
        .route("/rollbacks", post(super::rollback::rollback))
        .route("/workflow-events", post(workflow_event))
        .route("/branches/{name}/shares", post(share))
        .route("/branches/{name}/shares/{principal}", delete(unshare))
        .route("/branches/{name}/schema-owner", post(own_schema))
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", m)
}

#[derive(Serialize, Deserialize)]
pub struct WhoAmI {
    pub principal: String,
    pub role: String,
    /// The proxy user this principal connects as.
    pub proxy_user: String,
    pub policy_sha256: String,
}

async fn whoami(State(d): State<Shared>, Extension(c): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        proxy_user: d.proxy_user(&c.actor),
        principal: c.actor.principal,
        role: c.actor.role,
        policy_sha256: d.gov.policy().sha256.clone(),
    })
}

#[derive(Serialize, Deserialize)]
pub struct PrincipalView {
    pub name: String,
    pub role: String,
    pub created_at: String,
    /// The role comes from lakelet.toml's [principals] table, not from `principal add`.
    pub declared: bool,
}

async fn list_principals(State(d): State<Shared>) -> Json<Vec<PrincipalView>> {
    let p = d.gov.policy();
    Json(
        d.gov
            .principals
            .all()
            .into_iter()
            .map(|(name, e)| PrincipalView {
                role: p.principals.get(&name).cloned().unwrap_or(e.role),
                declared: p.principals.contains_key(&name),
                name,
                created_at: e.created_at,
            })
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPrincipal {
    pub name: String,
    pub role: Option<String>,
    #[serde(default)]
    pub rotate: bool,
}

#[derive(Serialize, Deserialize)]
pub struct NewPrincipal {
    pub name: String,
    pub role: String,
    /// Shown once; only its hashes are kept.
    pub secret: String,
}

async fn add_principal(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    Json(req): Json<AddPrincipal>,
) -> ApiResult<NewPrincipal> {
    let args = serde_json::json!({ "role": req.role, "rotate": req.rotate });
    let permit = d.admin(&c, "principal.add", "add principals", &req.name, args)?;
    let r = (|| {
        let p = d.gov.policy();
        if !p.declared {
            return Err(bad(
                "no policy is declared: principals need roles from lakelet.toml (`lakelet init` \
                 writes a starter; `lakelet policy apply` loads it)",
            ));
        }
        let role = match (p.principals.get(&req.name), &req.role) {
            (Some(declared), Some(r)) if declared != r => {
                return Err(bad(format!(
                    "lakelet.toml declares principal {} with role {declared}, not {r}",
                    req.name
                )))
            }
            (Some(declared), _) => declared.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => {
                return Err(bad(
                    "--role is required (it is not declared in lakelet.toml)",
                ))
            }
        };
        if !p.roles.contains_key(&role) {
            return Err(bad(format!(
                "unknown role \"{role}\" (lakelet.toml declares: {})",
                p.roles.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let secret = d
            .gov
            .principals
            .add(&req.name, &role, req.rotate, |s| {
                crate::proxy::auth::Verifier::generate(s).encode()
            })
            .map_err(|e| bad(format!("{e:#}")))?;
        Ok(Json(NewPrincipal {
            name: req.name.clone(),
            role,
            secret,
        }))
    })();
    permit.finish(r)
}

async fn remove_principal(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<serde_json::Value> {
    let permit = d.admin(
        &c,
        "principal.remove",
        "remove principals",
        &name,
        serde_json::json!({}),
    )?;
    let r = match d.gov.principals.remove(&name) {
        Ok(true) => Ok(Json(serde_json::json!({ "removed": name }))),
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no principal {name}"),
        )),
        Err(e) => Err(e.into()),
    };
    permit.finish(r)
}

#[derive(Serialize, Deserialize)]
pub struct PolicyView {
    pub declared: bool,
    pub sha256: String,
    pub root: String,
    pub tiers: Vec<TierView>,
    pub feature_tier: String,
    /// The expiry a feature gets when created without one.
    pub feature_ttl_s: Option<u64>,
    pub roles: Vec<String>,
    pub masked_roles: Vec<String>,
    pub masked_columns: usize,
}

#[derive(Serialize, Deserialize)]
pub struct TierView {
    pub name: String,
    pub parent: Option<String>,
    pub production: bool,
    pub raw_data: bool,
    pub mask: bool,
    pub protected: bool,
}

fn view(p: &crate::policy::Policy) -> PolicyView {
    PolicyView {
        declared: p.declared,
        sha256: p.sha256.clone(),
        root: p.root.clone(),
        tiers: p
            .tiers
            .values()
            .map(|t| TierView {
                name: t.name.clone(),
                parent: t.parent.clone(),
                production: t.production,
                raw_data: t.raw,
                mask: t.mask,
                protected: t.protected,
            })
            .collect(),
        feature_tier: p.features.from.clone(),
        feature_ttl_s: p.features.ttl.map(|t| t.as_secs()),
        roles: p.roles.keys().cloned().collect(),
        masked_roles: p.masking.roles.iter().cloned().collect(),
        masked_columns: p.masking.columns.len(),
    }
}

async fn show_policy(State(d): State<Shared>) -> Json<PolicyView> {
    Json(view(&d.gov.policy()))
}

/// A lakelet.toml sent by the caller: its name (for messages and the audit) and its text.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyText {
    pub file: String,
    pub text: String,
}

async fn apply_policy(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    body: axum::body::Bytes,
) -> ApiResult<PolicyView> {
    // `{}` (or nothing): re-read the daemon's file; `{file, text}`: apply that text.
    let given = if body.iter().all(u8::is_ascii_whitespace) || &body[..] == b"{}" {
        None
    } else {
        let t: PolicyText = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the request body is not {{file, text}}: {e}")))?;
        Some((t.file, t.text))
    };
    let g = d.gov.clone();
    let p = g.apply_policy(&c.actor, c.via, given).map_err(|e| {
        if e.is::<crate::policy::Refusal>() {
            ApiError::from(e)
        } else {
            bad(format!("{e:#}"))
        }
    })?;
    Ok(Json(view(&p)))
}

async fn audit(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    Query(f): Query<Filter>,
) -> ApiResult<Vec<Record>> {
    let permit = d.enforce(&c, &Action::ReadAudit, "audit", serde_json::json!({}))?;
    let r = d
        .gov
        .audit
        .read(&f)
        .map(Json)
        .map_err(|e| bad(format!("{e:#}")));
    permit.finish(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub from: String,
    pub to: String,
}

#[derive(Serialize, Deserialize)]
pub struct Grant {
    pub from: String,
    pub to: String,
    /// The proxy user and password (valid for `to` only, until `expire_time`) that write to
    /// `to`: what the migration runner connects with to apply the verified migrations.
    pub user: String,
    pub token: String,
    pub expire_time: String,
}

/// A merge (feature → its tier) or promotion (tier → its parent): checked against the chain,
/// then a one-hour write grant on the target tier.
async fn promote(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    Json(req): Json<PromoteRequest>,
) -> ApiResult<Grant> {
    let from = d.facts(&req.from)?;
    let to = d.facts(&req.to)?;
    let args = serde_json::json!({ "from": req.from, "to": req.to });
    let action = Action::Promote {
        from: &from,
        to: &to,
    };
    let permit = d.enforce(&c, &action, &req.to, args)?;
    let ttl = std::time::Duration::from_secs(3600);
    let user = d.proxy_user(&c.actor);
    let r = d
        .proxy
        .issue_token(&user, &req.to, std::time::SystemTime::now() + ttl, true)
        .map(|token| {
            Json(Grant {
                from: req.from.clone(),
                to: req.to.clone(),
                user: user.clone(),
                token,
                expire_time: crate::storage::format_time(
                    crate::util::now_nanos() + ttl.as_nanos() as i64,
                ),
            })
        })
        .map_err(ApiError::from);
    permit.finish(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowEvent {
    /// `scm.<gate>`, `ci.<step>` or `promote.<step>`.
    pub action: String,
    pub target: String,
    #[serde(default)]
    pub args: serde_json::Value,
    /// Empty when the transition happened; else why it was refused or failed.
    #[serde(default)]
    pub refused: String,
}

/// Records an SCM transition (or its refusal) in the one audit trail, as the caller. The
/// gates run in the CLI next to git; what they do to branches the daemon decides and audits
/// itself, and this adds the workflow's own steps under names no API action uses.
async fn workflow_event(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    Json(e): Json<WorkflowEvent>,
) -> ApiResult<serde_json::Value> {
    let action = Action::Report { event: &e.action };
    let done = Json(serde_json::json!({ "recorded": e.action }));
    if e.refused.is_empty() {
        // A claim that something happened: the daemon decides it as the caller, so a report
        // claims nothing its caller may not do, under the policy's rule, never the client's.
        let permit = d.enforce_named(&c, &e.action, &action, &e.target, e.args)?;
        return permit.finish(Ok(done));
    }
    // A gate's own refusal claims nothing; it is recorded as what the client says.
    if crate::policy::workflow_event_moves(&e.action).is_none() {
        return Err(bad(format!(
            "workflow event {}: not one lakelet's gates report",
            crate::util::quoted_bounded(&e.action)
        )));
    }
    let why: String = e.refused.chars().take(2000).collect();
    let dec = crate::policy::Decision::refused("scm-gate", why);
    d.gov
        .record(&c.actor, c.via, &e.action, &e.target, e.args, &dec, &Ok(()));
    Ok(done)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub principal: String,
    /// Read access only (lakelet_reader); else write (lakelet_owner).
    #[serde(default)]
    pub read_only: bool,
    /// How long (`2h`, `7d`); for as long as the branch lives if unset.
    pub ttl: Option<String>,
}

/// `lakelet branch share NAME --with P`: lets principal P into a feature branch, decided (its
/// owner's or an admin's, never a tier's or production's) and audited.
async fn share(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<ShareRequest>,
) -> ApiResult<serde_json::Value> {
    let f = d.facts(&name)?;
    if d.gov.actor(&req.principal).is_none() {
        return Err(bad(format!(
            "no principal {} (`lakelet principal list` shows them)",
            crate::util::quoted_bounded(&req.principal)
        )));
    }
    let ttl = match &req.ttl {
        Some(t) => Some(
            humantime::parse_duration(t)
                .map_err(|e| bad(format!("ttl {t:?}: {e} (e.g. 2h, 7d)")))?,
        ),
        None => None,
    };
    if ttl.is_some_and(|t| t.as_secs() < 1) {
        return Err(bad("a share's ttl is at least 1s"));
    }
    let args =
        serde_json::json!({ "with": req.principal, "read_only": req.read_only, "ttl": req.ttl });
    let action = Action::Share {
        branch: &f,
        with: &req.principal,
    };
    let permit = d.enforce(&c, &action, &name, args)?;
    let until = ttl.map(|t| crate::util::now_nanos() + t.as_nanos() as i64);
    let share = crate::policy::Share {
        principal: req.principal.clone(),
        write: !req.read_only,
        until,
    };
    let r = d
        .gov
        .set_share(&name, &req.principal, Some(share.clone()))
        .await
        .map(|()| Json(serde_json::json!({ "branch": name, "share": share })))
        .map_err(ApiError::from);
    permit.finish(r)
}

async fn unshare(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath((name, principal)): UrlPath<(String, String)>,
) -> ApiResult<serde_json::Value> {
    let f = d.facts(&name)?;
    let action = Action::Share {
        branch: &f,
        with: &principal,
    };
    let args = serde_json::json!({ "with": principal });
    let permit = d.enforce_named(&c, "branch.unshare", &action, &name, args)?;
    let r = d
        .gov
        .set_share(&name, &principal, None)
        .await
        .map(|()| Json(serde_json::json!({ "branch": name, "unshared": principal })))
        .map_err(ApiError::from);
    permit.finish(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnSchemaRequest {
    #[serde(default = "postgres_db")]
    pub database: String,
}

fn postgres_db() -> String {
    "postgres".into()
}

/// `lakelet branch own-schema NAME`: hands every application object a superuser owns on the
/// branch (an import, a schema made as the superuser) to `lakelet_app`, the role migrations
/// run as, so developers' and CI's migrations may alter it. An admin's, audited.
async fn own_schema(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<OwnSchemaRequest>,
) -> ApiResult<serde_json::Value> {
    d.facts(&name)?;
    let args = serde_json::json!({ "database": req.database });
    let permit = d.admin(
        &c,
        "schema.own",
        "hand a schema to lakelet_app",
        &name,
        args,
    )?;
    let r = async {
        let ep = d.computes.ensure_running(&name).await?;
        let n = d.gov.hand_schema(&ep, &req.database).await?;
        Ok::<_, anyhow::Error>(Json(
            serde_json::json!({ "branch": name, "database": req.database, "objects": n }),
        ))
    }
    .await
    .map_err(ApiError::from);
    permit.finish(r)
}
