//! The Postgres roles principals' sessions run as (see `Access`): made on a compute the first
//! time a non-superuser session needs them, once per compute start and database.

use std::path::Path;

use anyhow::{Context, Result};

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Makes the Postgres roles principals connect as (see `Access`), once per compute start and
/// database: `lakelet_reader` (pg_read_all_data) and `lakelet_owner` (reads and writes every
/// table, creates objects; not a superuser, so no file or program access).
pub async fn ensure_roles(sockdir: &Path, db: &str) -> Result<()> {
    let client = super::connect(sockdir, db).await?;
    let have: bool = client
        .query_one(
            "SELECT count(*) = 2 FROM pg_roles WHERE rolname IN ('lakelet_owner', 'lakelet_reader')",
            &[],
        )
        .await?
        .get(0);
    if !have {
        client
            .batch_execute(
                "DO $$BEGIN \
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_reader') THEN \
                   CREATE ROLE lakelet_reader LOGIN; GRANT pg_read_all_data TO lakelet_reader; END IF; \
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_owner') THEN \
                   CREATE ROLE lakelet_owner LOGIN CREATEDB; \
                   GRANT pg_read_all_data, pg_write_all_data TO lakelet_owner; END IF; END$$",
            )
            .await
            .context("creating lakelet_owner and lakelet_reader")?;
    }
    let can: bool = client
        .query_one(
            "SELECT has_database_privilege('lakelet_owner', current_database(), 'CREATE') \
             AND coalesce(has_schema_privilege('lakelet_owner', to_regnamespace('public')::oid, 'CREATE'), true)",
            &[],
        )
        .await?
        .get(0);
    if !can {
        let q = format!(
            "GRANT CREATE, TEMP ON DATABASE {} TO lakelet_owner; \
             DO $$BEGIN IF to_regnamespace('public') IS NOT NULL THEN \
               GRANT USAGE, CREATE ON SCHEMA public TO lakelet_owner; END IF; END$$",
            ident(db)
        );
        client
            .batch_execute(&q)
            .await
            .context("granting lakelet_owner CREATE")?;
    }
    Ok(())
}
