//! `/lakelet/v1/prs` and `/lakelet/v1/runs`: the project's pull requests and CI runs, kept by
//! the daemon so every clone and principal sees one numbering and one record of each run.
//!
//! Each write is decided and audited like any action: opening a PR needs the right to reach
//! its database branch; recording a run is a `ci.pr` report (anyone may record one, and the
//! run says who did: a merge trusts only runs by a role that may merge); merging needs the
//! right to merge (`ci.merge`, so `agents-never-promote` and `roles.X.promote` hold); closing
//! is the opener's, or a merger's; approving is anyone's but the opener's and an agent's.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::daemon::Daemon;
use super::http::{ApiError, Caller};
use super::records::{Approval, Pr, Run, Step};
use crate::policy::Action;

type Shared = std::sync::Arc<Daemon>;
type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/prs", get(list).post(open))
        .route("/prs/{n}", get(one))
        .route("/prs/{n}/runs", get(runs).post(record))
        .route("/prs/{n}/state", post(set_state))
        .route("/prs/{n}/approvals", post(approve))
        .route("/runs/{id}", get(run))
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", m)
}

fn not_found(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", m)
}

fn conflict(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "INVALID_STATE", m)
}

/// PR `n`, or a 404 naming it.
fn pr_of(d: &Daemon, n: u64) -> Result<Pr, ApiError> {
    d.forge
        .lock()
        .unwrap()
        .pr(n)?
        .ok_or_else(|| not_found(format!("there is no pull request #{n}")))
}

/// Changes PR `n` while it is open, under the forge's lock (re-read there: of two changes at
/// once, the second sees the first), and saves it.
fn change_open(
    d: &Daemon,
    n: u64,
    f: impl FnOnce(&mut Pr) -> Result<(), ApiError>,
) -> Result<Json<Pr>, ApiError> {
    let forge = d.forge.lock().unwrap();
    let mut pr = forge.pr(n)?.expect("records are never removed");
    if pr.state != "open" {
        return Err(conflict(format!(
            "pull request #{n} is already {} (by {})",
            pr.state,
            pr.closed_by.as_deref().unwrap_or("someone")
        )));
    }
    f(&mut pr)?;
    forge.save(&pr)?;
    Ok(Json(pr))
}

async fn list(State(d): State<Shared>) -> ApiResult<Vec<Pr>> {
    Ok(Json(d.forge.lock().unwrap().list()?))
}

async fn one(State(d): State<Shared>, UrlPath(n): UrlPath<u64>) -> ApiResult<Pr> {
    pr_of(&d, n).map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    pub head: String,
    pub base: String,
    pub database_branch: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub diff: Option<String>,
}

async fn open(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    Json(req): Json<OpenRequest>,
) -> ApiResult<Pr> {
    if !d.gov.policy().tiers.contains_key(&req.base) {
        return Err(bad(format!(
            "the base '{}' is not a tier of the daemon's policy; a PR merges into a tier",
            req.base
        )));
    }
    if req.head.is_empty() || req.head.len() > 200 {
        return Err(bad("head: the feature's git branch, 1–200 bytes"));
    }
    let f = d.facts(&req.database_branch)?;
    let args = serde_json::json!({ "head": req.head, "base": req.base, "database_branch": req.database_branch });
    let permit = d.enforce_named(
        &c,
        "pr.open",
        &Action::Connect { branch: &f },
        &req.head,
        args,
    )?;
    let r = (|| {
        let forge = d.forge.lock().unwrap();
        if let Some(p) = forge
            .list()?
            .into_iter()
            .find(|p| p.state == "open" && p.head == req.head)
        {
            return Err(conflict(format!(
                "pull request #{} is already open for '{}'",
                p.number, req.head
            )));
        }
        let pr = forge.open(Pr {
            number: 0,
            url: String::new(),
            head: req.head,
            base: req.base,
            database_branch: Some(req.database_branch),
            state: "open".into(),
            opened_at: crate::storage::format_time(crate::util::now_nanos()),
            closed_at: None,
            title: req.title,
            body: req.body,
            opened_by: Some(c.actor.principal.clone()),
            closed_by: None,
            diff: req.diff,
            approvals: vec![],
        })?;
        Ok(Json(pr))
    })();
    permit.finish(r)
}

async fn runs(State(d): State<Shared>, UrlPath(n): UrlPath<u64>) -> ApiResult<Vec<Run>> {
    Ok(Json(d.forge.lock().unwrap().runs_of(n)?))
}

async fn run(State(d): State<Shared>, UrlPath(id): UrlPath<String>) -> ApiResult<Run> {
    d.forge
        .lock()
        .unwrap()
        .run(&id)
        .map_err(|e| bad(format!("{e:#}")))?
        .map(Json)
        .ok_or_else(|| not_found(format!("there is no CI run {id}")))
}

/// A finished run as the pipeline reports it; the daemon gives it its id, URL and recorder.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub kind: String,
    pub sha: String,
    pub conclusion: String,
    pub started_at: String,
    pub finished_at: String,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub comment: Option<std::path::PathBuf>,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
}

async fn record(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(n): UrlPath<u64>,
    Json(req): Json<RunRequest>,
) -> ApiResult<Run> {
    if !matches!(req.kind.as_str(), "ci" | "merge") {
        return Err(bad(format!("run kind {:?}: ci or merge", req.kind)));
    }
    if !matches!(req.conclusion.as_str(), "success" | "failure") {
        return Err(bad(format!(
            "conclusion {:?}: success or failure",
            req.conclusion
        )));
    }
    let event = if req.kind == "ci" {
        "ci.pr"
    } else {
        "ci.merge"
    };
    let args = serde_json::json!({ "pr": n, "sha": req.sha, "conclusion": req.conclusion, "branch": req.branch });
    let permit = d.enforce_named(
        &c,
        "pr.run",
        &Action::Report { event },
        &format!("#{n}"),
        args,
    )?;
    let r = d
        .forge
        .lock()
        .unwrap()
        .record(Run {
            id: String::new(),
            url: String::new(),
            kind: req.kind,
            pr: n,
            sha: req.sha,
            conclusion: req.conclusion,
            started_at: req.started_at,
            finished_at: req.finished_at,
            steps: req.steps,
            comment: req.comment,
            snapshot: req.snapshot,
            branch: req.branch,
            by: Some(c.actor.principal.clone()),
            by_role: Some(c.actor.role.clone()),
        })
        .map(Json)
        .map_err(ApiError::from);
    permit.finish(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    /// merged or closed.
    pub state: String,
}

async fn set_state(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(n): UrlPath<u64>,
    Json(req): Json<StateRequest>,
) -> ApiResult<Pr> {
    let pr = pr_of(&d, n)?;
    let me = c.actor.principal.as_str();
    // Closing one's own PR is the opener's; merging, or closing another's, is a merger's.
    let (name, event) = match req.state.as_str() {
        "merged" => ("pr.merge", "ci.merge"),
        "closed" if pr.opened_by.as_deref() == Some(me) => ("pr.close", "scm.abandon"),
        "closed" => ("pr.close", "ci.merge"),
        s => return Err(bad(format!("state {s:?}: merged or closed"))),
    };
    let args = serde_json::json!({ "state": req.state, "opened_by": pr.opened_by });
    let permit = d.enforce_named(&c, name, &Action::Report { event }, &format!("#{n}"), args)?;
    // Two mergers at once: one wins, the other is told who did.
    let r = change_open(&d, n, |pr| {
        pr.state = req.state.clone();
        pr.closed_at = Some(crate::storage::format_time(crate::util::now_nanos()));
        pr.closed_by = Some(me.to_string());
        Ok(())
    });
    permit.finish(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The head commit the reviewer looked at.
    pub sha: String,
}

/// A reviewer's approval of PR `n` at a head: never the opener's own, never an agent's (an
/// agent's review is not a person's), decided as a `pr.approve` report and audited.
async fn approve(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    UrlPath(n): UrlPath<u64>,
    Json(req): Json<ApproveRequest>,
) -> ApiResult<Pr> {
    let pr = pr_of(&d, n)?;
    let me = c.actor.principal.clone();
    let args = serde_json::json!({ "sha": req.sha, "opened_by": pr.opened_by });
    let action = Action::Report {
        event: "pr.approve",
    };
    let permit = d.enforce_named(&c, "pr.approve", &action, &format!("#{n}"), args)?;
    let agent = d
        .gov
        .policy()
        .roles
        .get(&c.actor.role)
        .is_some_and(|r| r.agent);
    let r = (|| {
        if pr.opened_by.as_deref() == Some(me.as_str()) {
            return Err(conflict(format!(
                "{me} opened pull request #{n}; an approval is someone else's review"
            )));
        }
        if agent {
            return Err(conflict(format!(
                "{me} has an agent role; an approval is a person's review"
            )));
        }
        change_open(&d, n, |pr| {
            pr.approvals.retain(|a| a.by != me);
            pr.approvals.push(Approval {
                by: me.clone(),
                sha: req.sha.clone(),
                at: crate::storage::format_time(crate::util::now_nanos()),
            });
            Ok(())
        })
    })();
    permit.finish(r)
}
