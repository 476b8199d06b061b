//! `/lakelet/v1/rollbacks`: repointing a tier at one of its own snapshots (`lakelet
//! rollback`). A rollback discards everything the tier took since the snapshot, so before it
//! repoints, the daemon compares the tier's rows with the point the caller names as "the last
//! state anyone meant to keep" (the snapshot taken right after the promotion, else the
//! target itself): if rows differ, it refuses and names the tables, unless told to discard
//! them, and then it first snapshots what it discards.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::daemon::Daemon;
use super::http::{ApiError, Caller};
use crate::compute::writes::TableChange;
use crate::lifecycle::Lifecycle;
use crate::policy::Action;
use crate::storage::At;

type Shared = std::sync::Arc<Daemon>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub tier: String,
    pub snapshot: String,
    /// A snapshot of the tier after the change being undone (taken when the promotion
    /// finished): rows that differ from it are writes the rollback would discard. Without
    /// it, the tier is compared with `snapshot` itself.
    #[serde(default)]
    pub since: Option<String>,
    /// Roll back even if the tier took writes since; they are kept in a backup snapshot.
    #[serde(default)]
    pub discard_writes_since: bool,
}

#[derive(Serialize, Deserialize)]
pub struct RolledBack {
    pub tier: String,
    pub snapshot: String,
    /// What the rollback discarded (empty: nothing was written since).
    pub discarded: Vec<TableChange>,
    /// The snapshot that keeps what was discarded.
    pub backup: Option<String>,
}

fn refused_writes(tier: &str, since: &str, changes: &[TableChange]) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "INVALID_STATE",
        format!(
            "'{tier}' took writes after '{since}', which a rollback would discard:\n  - {}\n\
             roll back anyway with --discard-writes-since (a backup snapshot keeps them), or \
             move those writes first",
            changes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("\n  - ")
        ),
    )
}

/// The rows of `tier` that differ from those at snapshot `since`: read from a scratch branch
/// of the snapshot (a snapshot has no compute), purged after.
async fn writes_since(d: &Daemon, tier: &str, since: &str) -> anyhow::Result<Vec<TableChange>> {
    let scratch = format!("{tier}-rollback-check-{}", crate::util::now_nanos());
    d.branches
        .create(&scratch, since, At::Head, false, &Lifecycle::default())
        .await?;
    let r = async {
        let then = d.computes.ensure_running(&scratch).await?;
        let now = d.computes.ensure_running(tier).await?;
        crate::compute::writes::changes(&then, &now).await
    }
    .await;
    if let Err(e) = d.branches.delete(&scratch, true).await {
        tracing::warn!("purging the scratch branch {scratch}: {e:#}");
    }
    r
}

/// Repoints a tier at one of its own pre-migration snapshots.
pub(super) async fn rollback(
    State(d): State<Shared>,
    Extension(c): Extension<Caller>,
    Json(req): Json<RollbackRequest>,
) -> Result<Json<RolledBack>, ApiError> {
    let tier = d.facts(&req.tier)?;
    let snap = d.facts(&req.snapshot)?;
    let args = serde_json::json!({
        "snapshot": req.snapshot, "since": req.since, "discard_writes_since": req.discard_writes_since,
    });
    let action = Action::Rollback {
        tier: &tier,
        snapshot: &snap,
    };
    let permit = d.enforce(&c, &action, &req.tier, args)?;
    let r = async {
        let own = |s: &str| -> Result<(), ApiError> {
            let source = d.computes.store().branch(s)?.parent;
            if source.as_deref() == Some(req.tier.as_str()) {
                return Ok(());
            }
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER_VALUE",
                format!(
                    "'{s}' is a snapshot of {}, not of '{}'; a tier rolls back to its own snapshots only",
                    source.map_or("nothing".into(), |s| format!("'{s}'")),
                    req.tier
                ),
            ))
        };
        own(&req.snapshot)?;
        let since = req.since.clone().unwrap_or_else(|| req.snapshot.clone());
        own(&since)?;
        let changes = writes_since(&d, &req.tier, &since).await?;
        let mut backup = None;
        if !changes.is_empty() {
            if !req.discard_writes_since {
                return Err(refused_writes(&req.tier, &since, &changes));
            }
            let name = format!("{}-discarded-{}", req.tier, crate::util::now_nanos());
            let week = 7 * 86_400 * 1_000_000_000i64;
            let l = Lifecycle {
                expire_at: Some(d.computes.store().now() + week),
                ..Default::default()
            };
            d.branches
                .create(&name, &req.tier, At::Head, true, &l)
                .await?;
            backup = Some(name);
        }
        d.branches.rollback(&req.tier, &req.snapshot).await?;
        Ok(Json(RolledBack {
            tier: req.tier.clone(),
            snapshot: req.snapshot.clone(),
            discarded: changes,
            backup,
        }))
    }
    .await;
    permit.finish(r)
}
