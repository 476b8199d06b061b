//! `lakelet connstr` and `lakelet psql`: connecting to a branch through the proxy.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::api::client::{seg, Client};
use crate::api::lakebase::client::{Branches, TargetKind};
use crate::compute::Endpoint;
use crate::proxy::auth;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// postgresql://user:password@host:port/db?options=branch%3DNAME (libpq, psycopg, node-postgres)
    Url,
    /// PGHOST=… lines for libpq's environment (`export $(lakelet connstr NAME --format env)`)
    Env,
    /// jdbc:postgresql://host:port/db?user=…&password=…&options=branch%3DNAME
    Jdbc,
}

/// Everything needed to reach one branch through the proxy.
#[derive(Debug, Serialize)]
pub struct ConnInfo {
    pub branch: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Absent when the proxy runs with `--auth trust`.
    pub password: Option<String>,
    pub database: String,
    /// The startup `options` that select the branch (empty with the database fallback).
    pub options: String,
    pub url: String,
    pub jdbc: String,
    pub env: Vec<(String, String)>,
}

/// The connection details of `branch`. With `fallback`, the branch rides in the database name
/// (`DB@BRANCH`) for clients that cannot send startup options.
pub fn conn_info(
    dd: &Path,
    c: &Client,
    branch: &str,
    database: &str,
    fallback: bool,
) -> Result<ConnInfo> {
    let daemon = c.daemon();
    let proxy = daemon.proxy.clone().context(
        "the running daemon predates the proxy; restart it with `lakelet down && lakelet up`",
    )?;
    let addr: std::net::SocketAddr = proxy
        .parse()
        .with_context(|| format!("proxy address {proxy:?} in daemon.json"))?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    // A principal connects as itself, with its secret; the owner as the local user.
    let (user, password) = match &c.principal {
        Some(name) => {
            let (_, secret) = crate::api::client::acting_principal()?.context("no principal")?;
            (name.clone(), Some(secret))
        }
        None => (
            auth::LOCAL_USER.to_string(),
            match daemon.auth.as_deref() {
                Some("trust") => None,
                _ => Some(auth::local_password(dd)?),
            },
        ),
    };
    let (db, options) = if fallback {
        (format!("{database}@{branch}"), String::new())
    } else {
        (database.to_string(), format!("branch={branch}"))
    };
    Ok(build(
        branch,
        host,
        addr.port(),
        user,
        password,
        db,
        options,
        None,
    ))
}

/// A URL for `branch` through the proxy as `user` with `password`: a promotion grant's
/// credentials instead of the acting principal's.
pub fn url_as(dd: &Path, branch: &str, user: &str, password: &str) -> Result<String> {
    let info = conn_info(dd, &Client::connect(dd)?, branch, "postgres", false)?;
    Ok(build(
        branch,
        info.host,
        info.port,
        user.to_string(),
        Some(password.to_string()),
        info.database,
        info.options,
        None,
    )
    .url)
}

/// A branch on a Lakebase workspace: its endpoint's host, a short-lived credential from the
/// credentials endpoint as the password, TLS required. The user is the workspace identity:
/// `PGUSER`, else `DATABRICKS_USER`, else the workspace's answer for the token's owner.
fn lakebase_info(api: &Branches, branch: &str, database: &str) -> Result<ConnInfo> {
    let ep = api.endpoint(branch)?;
    let name = ep.name.clone().context("the endpoint has no name")?;
    let status = ep.status.unwrap_or_default();
    let hosts = status.hosts.unwrap_or_default();
    let host = hosts
        .host
        .context("the endpoint has no host yet (is it still starting?)")?;
    let cred = api.credential(&name)?;
    let user = match std::env::var("PGUSER").or_else(|_| std::env::var("DATABRICKS_USER")) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            let me: serde_json::Value = api.workspace().get("/api/2.0/preview/scim/v2/Me")?;
            me["userName"]
                .as_str()
                .context("the workspace did not say who the token belongs to; set PGUSER")?
                .to_string()
        }
    };
    Ok(build(
        branch,
        host,
        hosts.port.unwrap_or(5432),
        user,
        Some(cred.token),
        database.to_string(),
        String::new(),
        Some("require"),
    ))
}

/// Formats one connection as a URL, JDBC and libpq environment.
#[allow(clippy::too_many_arguments)]
fn build(
    branch: &str,
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    db: String,
    options: String,
    sslmode: Option<&str>,
) -> ConnInfo {
    let addr = (host.clone(), port);
    let userinfo = match &password {
        Some(p) => format!("{}:{}", seg(&user), seg(p)),
        None => seg(&user),
    };
    let mut params = vec![];
    if !options.is_empty() {
        params.push(format!("options={}", seg(&options)));
    }
    if let Some(m) = sslmode {
        params.push(format!("sslmode={m}"));
    }
    let query = if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    };
    let url = format!(
        "postgresql://{userinfo}@{host}:{}/{}{query}",
        addr.1,
        seg(&db)
    );
    let mut jdbc_params = vec![format!("user={}", seg(&user))];
    if let Some(p) = &password {
        jdbc_params.push(format!("password={}", seg(p)));
    }
    if !options.is_empty() {
        jdbc_params.push(format!("options={}", seg(&options)));
    }
    if let Some(m) = sslmode {
        jdbc_params.push(format!("sslmode={m}"));
    }
    let jdbc = format!(
        "jdbc:postgresql://{host}:{}/{}?{}",
        addr.1,
        seg(&db),
        jdbc_params.join("&")
    );
    let mut env = vec![
        ("PGHOST".to_string(), host.clone()),
        ("PGPORT".into(), addr.1.to_string()),
        ("PGUSER".into(), user.clone()),
        ("PGDATABASE".into(), db.clone()),
    ];
    if let Some(p) = &password {
        env.push(("PGPASSWORD".into(), p.clone()));
    }
    if !options.is_empty() {
        env.push(("PGOPTIONS".into(), options.clone()));
    }
    if let Some(m) = sslmode {
        env.push(("PGSSLMODE".into(), m.to_string()));
    }
    ConnInfo {
        branch: branch.to_string(),
        host,
        port: addr.1,
        user,
        password,
        database: db,
        options,
        url,
        jdbc,
        env,
    }
}

/// The connection of `branch` on the client's target. Fails with the API's message for an
/// unknown or deleted branch.
pub fn target_info(
    dd: &Path,
    api: &Branches,
    branch: &str,
    database: &str,
    fallback: bool,
) -> Result<ConnInfo> {
    if api.kind == TargetKind::Lakebase {
        if fallback {
            bail!("--fallback is for the local proxy; a Lakebase endpoint has its own host");
        }
        return lakebase_info(api, branch, database);
    }
    let b = api.get(branch)?;
    if b.status.and_then(|s| s.current_state).as_deref() == Some("DELETED") {
        bail!("branch '{branch}' is deleted; `lakelet branch undelete {branch}` brings it back");
    }
    conn_info(dd, &Client::connect(dd)?, branch, database, fallback)
}

pub fn connstr(
    dd: &Path,
    api: &Branches,
    json: bool,
    branch: &str,
    format: Format,
    database: &str,
    fallback: bool,
) -> Result<()> {
    let info = target_info(dd, api, branch, database, fallback)?;
    crate::cli::print(json, &info, |i| match format {
        Format::Url => i.url.clone(),
        Format::Jdbc => i.jdbc.clone(),
        Format::Env => i
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
    });
    Ok(())
}

/// Replaces this process with psql connected to `branch` through the proxy. The compute is
/// started first so an unknown branch or a failed start is reported by the CLI.
pub fn psql(dd: &Path, api: &Branches, branch: &str, args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let info = target_info(dd, api, branch, "postgres", false)?;
    let bin = if api.kind == TargetKind::Local {
        let e: Endpoint = Client::connect(dd)?.post(
            &format!("/branches/{}/start", seg(branch)),
            &serde_json::json!({}),
        )?;
        e.pg_bindir.join("psql")
    } else {
        "psql".into()
    };
    let mut cmd = std::process::Command::new(&bin);
    for (k, v) in &info.env {
        cmd.env(k, v);
    }
    // Keep options the user set for the server (e.g. -c search_path=…).
    if let Ok(extra) = std::env::var("PGOPTIONS") {
        if !extra.trim().is_empty() {
            cmd.env("PGOPTIONS", format!("{} {extra}", info.options));
        }
    }
    let err = cmd.args(args).exec();
    bail!("running {}: {err}", bin.display())
}
