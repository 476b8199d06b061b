//! One blocking Postgres session for the workflow commands.
//!
//! The CLI is synchronous; tokio-postgres is not. A session owns a current-thread runtime and
//! drives the connection only while a call is in flight, like the `postgres` crate does,
//! without a second copy of the client in the dependency tree. Statements go through the
//! simple query protocol, so a script's text reaches the server exactly as written.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row, SimpleQueryMessage};

pub struct Db {
    rt: tokio::runtime::Runtime,
    client: Client,
    /// `user@host:port/db`, for messages (never the password).
    pub label: String,
}

/// A statement the server refused, with what Postgres said about it.
#[derive(Debug, Clone)]
pub struct DbError {
    /// The SQLSTATE (`22P02`), or empty when the connection itself failed.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character position in the statement, when Postgres gives one.
    pub position: Option<u32>,
    /// Where it happened (`CONTEXT:`): the statement inside a function or DO block. Boxed:
    /// every query returns this error type, and it stays small.
    pub context: Option<Box<str>>,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "ERROR {}: {}", self.code, self.message)?;
        }
        if let Some(d) = &self.detail {
            write!(f, "\n  DETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  HINT: {h}")?;
        }
        if let Some(c) = &self.context {
            write!(f, "\n  CONTEXT: {}", c.replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(d) => DbError {
                code: d.code().code().to_string(),
                message: d.message().to_string(),
                detail: d.detail().map(str::to_string),
                hint: d.hint().map(str::to_string),
                position: match d.position() {
                    Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
                    _ => None,
                },
                context: d.where_().map(Box::from),
            },
            None => DbError {
                code: String::new(),
                message: e.to_string(),
                detail: None,
                hint: None,
                position: None,
                context: None,
            },
        }
    }
}

/// What one statement did: its command tag's row count, or the rows it returned.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub rows_affected: u64,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Db {
    /// Connects with a libpq-style URL or key=value string. `sslmode=require` (and the
    /// verify modes) use TLS with the Mozilla roots, as a Lakebase endpoint needs; otherwise
    /// the session is plain (the local proxy, a local socket).
    pub fn connect(conn: &str) -> Result<Db> {
        let mut cfg = Config::from_str(conn).map_err(|e| {
            anyhow!(
                "not a Postgres connection string ({e}); use postgresql://user:pass@host:port/db"
            )
        })?;
        if cfg.get_application_name().is_none() {
            cfg.application_name("lakelet-migrate");
        }
        let label = label(&cfg);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime for the Postgres session")?;
        let client = rt
            .block_on(async {
                if cfg.get_ssl_mode() == SslMode::Require {
                    let (client, conn) = cfg.connect(tls()).await?;
                    tokio::spawn(conn);
                    Ok::<_, tokio_postgres::Error>(client)
                } else {
                    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(conn);
                    Ok(client)
                }
            })
            .map_err(|e| anyhow!("connecting to {label}: {}", DbError::from(e)))?;
        Ok(Db { rt, client, label })
    }

    /// Runs one statement (or several separated by `;`) and reports the last one's outcome.
    pub fn run(&self, sql: &str) -> Result<Outcome, DbError> {
        let msgs = self.rt.block_on(self.client.simple_query(sql))?;
        let mut out = Outcome::default();
        for m in msgs {
            match m {
                SimpleQueryMessage::Row(r) => out
                    .rows
                    .push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
                SimpleQueryMessage::CommandComplete(n) => out.rows_affected = n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Runs statements whose outcome does not matter (BEGIN, COMMIT, SET …).
    pub fn exec(&self, sql: &str) -> Result<(), DbError> {
        self.rt.block_on(self.client.batch_execute(sql))?;
        Ok(())
    }

    /// A parameterised query through the extended protocol.
    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, DbError> {
        Ok(self.rt.block_on(self.client.query(sql, params))?)
    }

    pub fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        Ok(self.rt.block_on(self.client.execute(sql, params))?)
    }

    /// Runs the rest of the session as `lakelet_app`, the role that owns the application
    /// schema on a lakelet compute, when this session may and the role is set up in this
    /// database: what a migration creates is then the schema owner's, so any later migration,
    /// whoever runs it, may alter it. On plain Postgres or Lakebase there is no such role and
    /// nothing changes. A migration that needs the superuser (CREATE EXTENSION of an untrusted
    /// extension) says `RESET ROLE;` first. Returns whether it switched.
    pub fn act_as_schema_owner(&self) -> Result<bool, DbError> {
        let may = self.value(
            "SELECT CASE WHEN to_regrole('lakelet_app') IS NULL THEN false ELSE \
               current_user <> 'lakelet_app' AND pg_has_role('lakelet_app', 'MEMBER') \
               AND coalesce(has_schema_privilege('lakelet_app', to_regnamespace('public')::oid, 'CREATE'), false) END",
        )?;
        if may.as_deref() == Some("t") {
            self.exec("SET ROLE lakelet_app")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One text value (`select current_user`).
    pub fn value(&self, sql: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .run(sql)?
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }
}

fn label(cfg: &Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or("?"),
        cfg.get_dbname()
            .unwrap_or(cfg.get_user().unwrap_or("postgres"))
    )
}

/// TLS for `sslmode=require`: server certificates checked against the Mozilla roots.
fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    use tokio_rustls::rustls;
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(cfg)
}

/// Quotes an identifier for SQL text.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal for SQL text.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
