//! policy: who may do what to which branch, declared once in lakelet.toml and enforced by the
//! daemon for every entry point; masking; and the audit trail of every decision.
//!
//! Reading order: `model.rs` (the policy and `decide`, pure), `file.rs` (lakelet.toml to a
//! validated policy, with line-numbered errors), `governor.rs` (identity, facts, enforcement,
//! audit: what the API and the proxy call), `principals.rs`, `audit.rs`, `mask.rs`,
//! `pgroles.rs`, `system.rs`.
//!
//! Invariants:
//! - Every allowed or refused action of the API and the proxy passes `Governor::enforce` and
//!   leaves an audit record; GETs of the API are reads and are not audited.
//! - A masked branch takes no connection until its masking has finished (`stamp::MaskState::done`),
//!   after creation, reset and restore alike.
//! - Secrets are never stored, only their SHA-256 and SCRAM verifier.

pub mod audit;
pub mod file;
pub mod governor;
pub mod mask;
pub mod model;
mod pgroles;
pub mod principals;
pub mod stamp;
pub mod system;

pub use governor::{Governor, Permit, Refusal};

/// The commented lakelet.toml `lakelet init` writes: tiers main → staging → qa, the four
/// roles, masking, migrations and CI.
pub const STARTER: &str = include_str!("starter.toml");
pub use model::{
    workflow_event_moves, Access, Action, Actor, Decision, Facts, Policy, Share, OWNER,
};

/// A superuser session of the daemon's own on the Postgres listening in `sockdir` (masking,
/// role setup, the system database).
async fn connect(sockdir: &std::path::Path, db: &str) -> anyhow::Result<tokio_postgres::Client> {
    use anyhow::Context;
    let mut cfg = crate::compute::postgres::config(sockdir);
    cfg.dbname(db);
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to database {db} in {}", sockdir.display()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("daemon session ended: {e}");
        }
    });
    Ok(client)
}
