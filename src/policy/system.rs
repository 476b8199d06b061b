//! The `lakelet` database: the audit, the branches and their usage as tables, so one SQL query
//! through the proxy reads them (`psql "dbname=lakelet …" -c "select … from audit"`).
//!
//! A small Postgres cluster of its own in DATA/system (plain local disk, its own uid, not a
//! branch: it holds no user data and must not appear among the branches), started on first use. Its tables are
//! copies: the audit log file stays the record of truth, and each connection first brings the
//! tables up to date (new audit records appended by sequence number, branches, usage and the
//! proxy's live sessions replaced) before the session starts as `lakelet_reader`, which can
//! only read.
//!
//! `sessions` is where a client's TLS shows: TLS ends at the proxy, so a compute's
//! `pg_stat_ssl` sees a unix socket; the proxy's rows (keyed by the backend's pid, the one
//! `pg_stat_activity` shows) say what the client negotiated and which relay carries it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::compute::claim::claim;
use crate::compute::postgres::{self, Postgres, PORT};
use crate::compute::user::Lease;
use crate::compute::{Computes, Endpoint};
use crate::lifecycle::Lifecycle;

pub const DATABASE: &str = "lakelet";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
  seq bigint PRIMARY KEY, time timestamptz NOT NULL, principal text NOT NULL, role text,
  via text, action text NOT NULL, target text, args jsonb, decision text NOT NULL, rule text,
  reason text, result text);
CREATE TABLE IF NOT EXISTS branches (
  name text PRIMARY KEY, kind text NOT NULL, parent text, source_tier text, owner text,
  protected bool, masked bool, deleted bool, expire_time timestamptz, created_at timestamptz,
  timeline text, branch_lsn bigint);
CREATE TABLE IF NOT EXISTS usage (
  branch text PRIMARY KEY, own_bytes bigint, own_versions bigint, shared_bytes bigint,
  logical_size_bytes bigint, files bigint);
CREATE TABLE IF NOT EXISTS sessions (
  pid int PRIMARY KEY, branch text NOT NULL, usename text, datname text, client_addr inet,
  client_port int, ssl bool NOT NULL, ssl_version text, ssl_cipher text, relay text,
  backend_start timestamptz);
DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lakelet_reader') THEN
  CREATE ROLE lakelet_reader LOGIN; END IF; END$$;
GRANT SELECT ON audit, branches, usage, sessions TO lakelet_reader;
";

pub struct SystemDb {
    computes: Arc<Computes>,
    /// `DATA/system`; the server runs on `Computes::expose`'s view of it.
    name: &'static str,
    sockdir: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
    /// The running server, under a uid of its own (no branch's compute can reach it); also
    /// serializes refreshes.
    pg: tokio::sync::Mutex<Option<(Postgres, Lease)>>,
}

impl SystemDb {
    pub fn new(data_dir: &std::path::Path, computes: Arc<Computes>) -> SystemDb {
        let run = computes.run_dir().to_path_buf();
        SystemDb {
            name: "system",
            sockdir: run.join("s").join("lakelet-system"),
            pidfile: run.join("p").join("lakelet-system"),
            log: data_dir.join("logs").join("lakelet-system.log"),
            computes,
            pg: tokio::sync::Mutex::new(None),
        }
    }

    /// Starts the server if needed, brings the tables up to date, and returns where to connect.
    /// `sessions`: the proxy's live sessions, rows shaped like the `sessions` table.
    pub async fn endpoint(
        &self,
        gov: &super::Governor,
        sessions: serde_json::Value,
    ) -> Result<Endpoint> {
        let mut pg = self.pg.lock().await;
        if pg.as_mut().is_some_and(|(p, _)| p.exited().is_some()) {
            *pg = None;
        }
        if pg.is_none() {
            *pg = Some(self.start().await?);
        }
        let pid = pg.as_ref().unwrap().0.pid;
        self.refresh(gov, sessions)
            .await
            .context("bringing the lakelet database up to date")?;
        Ok(Endpoint {
            branch: DATABASE.into(),
            socket_dir: self.sockdir.clone(),
            port: PORT,
            user: "lakelet_reader".into(),
            database: DATABASE.into(),
            pid,
            pg_bindir: self.computes.installs()[0].bindir.clone(),
            cold: false,
        })
    }

    async fn start(&self) -> Result<(Postgres, Lease)> {
        let lease = self.computes.lease().await?;
        let user = &lease.user;
        let owner = (user.uid, user.gid);
        let install = &self.computes.installs()[0];
        let pgdata = self.computes.expose(self.name)?;
        let fresh = !pgdata.join("PG_VERSION").exists();
        if fresh {
            // Only what an interrupted initdb left (no PG_VERSION yet).
            for e in std::fs::read_dir(&pgdata)?.flatten() {
                let p = e.path();
                if p.is_dir() {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
            }
        }
        // The uid changes from start to start (compute/user.rs).
        claim(&pgdata, owner)?;
        if fresh {
            postgres::initdb(install, user, &pgdata, &self.log).await?;
        }
        let _ = std::fs::remove_dir_all(&self.sockdir);
        std::fs::create_dir_all(&self.sockdir)?;
        std::os::unix::fs::chown(&self.sockdir, Some(owner.0), Some(owner.1))
            .with_context(|| format!("handing {} to {}", self.sockdir.display(), user.name))?;
        let mut pg = Postgres::spawn(
            install,
            user,
            &pgdata,
            &self.sockdir,
            &self.log,
            "lakelet-system",
            &[],
        )?;
        std::fs::write(&self.pidfile, format!("{}\n{}\n", pg.pid, pgdata.display()))?;
        pg.wait_ready(Duration::from_secs(60)).await?;
        let admin = super::connect(&self.sockdir, "postgres").await?;
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await?
            .is_some();
        if !exists {
            admin
                .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
                .await?;
        }
        super::connect(&self.sockdir, DATABASE)
            .await?
            .batch_execute(SCHEMA)
            .await
            .context("creating the lakelet database's tables")?;
        tracing::info!(pid = pg.pid, user = %user.name, "started the lakelet system database");
        Ok((pg, lease))
    }

    async fn refresh(&self, gov: &super::Governor, sessions: serde_json::Value) -> Result<()> {
        let c = super::connect(&self.sockdir, DATABASE).await?;
        let last: i64 = c
            .query_one("SELECT coalesce(max(seq), 0) FROM audit", &[])
            .await?
            .get(0);
        let new = gov.audit.read(&super::audit::Filter {
            after_seq: Some(last as u64),
            ..Default::default()
        })?;
        let store = self.computes.store();
        let policy = gov.policy();
        let mut branches = vec![];
        let mut usage = vec![];
        for b in store.branches() {
            let l = Lifecycle::decode(&b.annotations);
            let st = super::stamp::Stamp::of(&l);
            let kind = if b.snapshot {
                "snapshot"
            } else if policy.tiers.contains_key(&b.name) {
                "tier"
            } else {
                "feature"
            };
            branches.push(serde_json::json!({
                "name": b.name, "kind": kind, "parent": b.parent, "source_tier": st.source_tier,
                "owner": st.owner, "protected": l.protected, "masked": st.masking.is_some(),
                "deleted": l.is_deleted(),
                "expire_time": l.expire_at.map(crate::storage::format_time),
                "created_at": b.created_at, "timeline": b.timeline, "branch_lsn": b.branch_lsn,
            }));
            if let Ok(u) = store.usage(&b.name) {
                usage.push(serde_json::json!({
                    "branch": b.name, "own_bytes": u.own_bytes, "own_versions": u.own_versions,
                    "shared_bytes": u.shared_bytes, "logical_size_bytes": u.logical_size,
                    "files": u.files,
                }));
            }
        }
        let audit = serde_json::to_string(&new)?;
        let branches = serde_json::Value::Array(branches).to_string();
        let usage = serde_json::Value::Array(usage).to_string();
        let sessions = sessions.to_string();
        c.batch_execute("BEGIN").await?;
        let r = async {
            c.execute(
                "INSERT INTO audit SELECT * FROM jsonb_populate_recordset(NULL::audit, $1::text::jsonb) \
                 ON CONFLICT (seq) DO NOTHING",
                &[&audit],
            )
            .await?;
            c.execute("DELETE FROM branches", &[]).await?;
            c.execute(
                "INSERT INTO branches SELECT * FROM jsonb_populate_recordset(NULL::branches, $1::text::jsonb)",
                &[&branches],
            )
            .await?;
            c.execute("DELETE FROM usage", &[]).await?;
            c.execute(
                "INSERT INTO usage SELECT * FROM jsonb_populate_recordset(NULL::usage, $1::text::jsonb)",
                &[&usage],
            )
            .await?;
            c.execute("DELETE FROM sessions", &[]).await?;
            c.execute(
                "INSERT INTO sessions SELECT * FROM jsonb_populate_recordset(NULL::sessions, $1::text::jsonb)",
                &[&sessions],
            )
            .await?;
            Ok::<_, tokio_postgres::Error>(())
        }
        .await;
        match r {
            Ok(()) => c.batch_execute("COMMIT").await?,
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Stops the server (daemon shutdown).
    pub async fn stop(&self) {
        if let Some((pg, lease)) = self.pg.lock().await.take() {
            let _ = pg.stop(Duration::from_secs(10)).await;
            let _ = tokio::task::spawn_blocking(move || drop(lease)).await;
        }
        let _ = std::fs::remove_file(&self.pidfile);
    }
}
