//! `lakelet connstr` and `lakelet psql`: connecting to a branch through the proxy.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::api::client::{seg, Client};
use crate::api::BranchView;
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
    let proxy = c.info.proxy.clone().context(
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
    let password = match c.info.auth.as_deref() {
        Some("trust") => None,
        _ => Some(auth::local_password(dd)?),
    };
    let user = auth::LOCAL_USER.to_string();
    let (db, options) = if fallback {
        (format!("{database}@{branch}"), String::new())
    } else {
        (database.to_string(), format!("branch={branch}"))
    };
    let userinfo = match &password {
        Some(p) => format!("{}:{}", seg(&user), seg(p)),
        None => seg(&user),
    };
    let query = if options.is_empty() {
        String::new()
    } else {
        format!("?options={}", seg(&options))
    };
    let url = format!(
        "postgresql://{userinfo}@{host}:{}/{}{query}",
        addr.port(),
        seg(&db)
    );
    let mut jdbc_params = vec![format!("user={}", seg(&user))];
    if let Some(p) = &password {
        jdbc_params.push(format!("password={}", seg(p)));
    }
    if !options.is_empty() {
        jdbc_params.push(format!("options={}", seg(&options)));
    }
    let jdbc = format!(
        "jdbc:postgresql://{host}:{}/{}?{}",
        addr.port(),
        seg(&db),
        jdbc_params.join("&")
    );
    let mut env = vec![
        ("PGHOST".to_string(), host.clone()),
        ("PGPORT".into(), addr.port().to_string()),
        ("PGUSER".into(), user.clone()),
        ("PGDATABASE".into(), db.clone()),
    ];
    if let Some(p) = &password {
        env.push(("PGPASSWORD".into(), p.clone()));
    }
    if !options.is_empty() {
        env.push(("PGOPTIONS".into(), options.clone()));
    }
    Ok(ConnInfo {
        branch: branch.to_string(),
        host,
        port: addr.port(),
        user,
        password,
        database: db,
        options,
        url,
        jdbc,
        env,
    })
}

pub fn connstr(
    dd: &Path,
    json: bool,
    branch: &str,
    format: Format,
    database: &str,
    fallback: bool,
) -> Result<()> {
    let c = Client::connect(dd)?;
    // Fails with a clear message for an unknown branch.
    let _: BranchView = c.get(&format!("/branches/{}", seg(branch)))?;
    let info = conn_info(dd, &c, branch, database, fallback)?;
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
pub fn psql(dd: &Path, branch: &str, args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let c = Client::connect(dd)?;
    let e: Endpoint = c.post(
        &format!("/branches/{}/start", seg(branch)),
        &serde_json::json!({}),
    )?;
    let info = conn_info(dd, &c, branch, "postgres", false)?;
    let bin = e.pg_bindir.join("psql");
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
