//! How the bench talks to Postgres: sessions (a URL through the proxy, or a server's unix
//! socket as the superuser) and the client programs, pgbench, pg_dump and pg_restore, with
//! the environment's PG* settings removed so they cannot redirect them.

use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

use super::lab::run;
use super::report::PgbenchRun;
use crate::compute::pg::PgInstall;

/// Where pgbench, pg_dump or a probe connects: a server's unix socket (as the superuser, no
/// password) or a URL through the proxy.
pub(super) enum Target<'a> {
    Socket(&'a Path, &'a str),
    Url(&'a str),
}

/// A URL without its password, for progress lines, errors and the report.
pub fn redact(url: &str) -> String {
    if !url.contains("://") {
        // key=value form: drop the password pair.
        return url
            .split_whitespace()
            .filter(|kv| !kv.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" ");
    }
    let url = url
        .split(['?', '&'])
        .filter(|kv| !kv.starts_with("password="))
        .enumerate()
        .map(|(i, kv)| match i {
            0 => kv.to_string(),
            1 => format!("?{kv}"),
            _ => format!("&{kv}"),
        })
        .collect::<String>();
    match url.split_once("://").and_then(|(s, rest)| {
        let (auth, host) = rest.split_once('@')?;
        let user = auth.split(':').next().unwrap_or("");
        Some(format!("{s}://{user}@{host}"))
    }) {
        Some(u) => u,
        None => url,
    }
}

/// `a | b`, both checked.
pub(super) async fn pipe(mut a: Command, mut b: Command, what: &str) -> Result<()> {
    let mut a = a
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pg_dump")?;
    let out: Stdio = a.stdout.take().context("pg_dump's stdout")?.try_into()?;
    b.stdin(out);
    let (ra, rb) = tokio::join!(a.wait_with_output(), b.output());
    let (ra, rb) = (ra.context("pg_dump")?, rb.context("pg_restore")?);
    for (prog, o) in [("pg_dump", &ra), ("pg_restore", &rb)] {
        if !o.status.success() {
            bail!(
                "{prog} for {what} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    Ok(())
}

pub(super) fn cfg_url(url: &str) -> Result<tokio_postgres::Config> {
    let mut c = tokio_postgres::Config::from_str(url).context("the proxy URL")?;
    c.application_name("lakelet-bench")
        .connect_timeout(Duration::from_secs(300));
    Ok(c)
}

pub(super) fn socket_cfg(dir: &Path, db: &str) -> tokio_postgres::Config {
    let mut c = crate::compute::postgres::config(dir);
    c.dbname(db).application_name("lakelet-bench");
    c
}

/// Runs `sql` on a new connection; the first column of the first row ("" if none).
pub(super) async fn query(cfg: &tokio_postgres::Config, sql: &str) -> Result<String> {
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to run {sql:?}"))?;
    let task = tokio::spawn(conn);
    let rows = client.simple_query(sql).await;
    drop(client);
    let _ = task.await;
    let rows = rows.with_context(|| format!("running {sql:?}"))?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .unwrap_or_default())
}

/// An SQL identifier, quoted.
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal.
pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A Postgres client program aimed at `target`, with the environment's PG* settings removed
/// so they cannot redirect it.
pub(super) fn client(pg: &PgInstall, prog: &str, target: Target<'_>, args: &[&str]) -> Command {
    let mut c = Command::new(pg.bin(prog));
    for v in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGOPTIONS",
        "PGSERVICE",
    ] {
        c.env_remove(v);
    }
    c.args(args).kill_on_drop(true);
    let db = match target {
        Target::Socket(dir, db) => {
            c.arg("-h")
                .arg(dir)
                .args(["-p", "5432", "-U", crate::compute::postgres::SUPERUSER]);
            db
        }
        Target::Url(u) => u,
    };
    // pgbench takes the database (or a URL) as its argument; -d is its --debug.
    if prog == "pgbench" {
        c.arg(db);
    } else {
        c.args(["-d", db]);
    }
    c
}

/// pgbench with `args`; its wall time and output.
pub(super) async fn pgbench<S: AsRef<str>>(
    pg: &PgInstall,
    target: Target<'_>,
    args: &[S],
) -> Result<(Duration, String)> {
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    let t = Instant::now();
    let out = run(
        client(pg, "pgbench", target, &args),
        &format!("pgbench {}", args.join(" ")),
    )
    .await?;
    Ok((
        t.elapsed(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// One steady-state pgbench run and its summary lines.
pub(super) async fn steady(
    pg: &PgInstall,
    target: Target<'_>,
    args: &[&str],
) -> Result<PgbenchRun> {
    let (_, text) = pgbench(pg, target, args).await?;
    let tps =
        field(&text, "tps = ").with_context(|| format!("no tps in pgbench's output:\n{text}"))?;
    Ok(PgbenchRun {
        tps,
        latency_avg_ms: field(&text, "latency average = "),
        transactions: field(&text, "number of transactions actually processed: ").map(|n| n as u64),
        cost: None,
    })
}

/// The number after `key` on the first line that starts with it ("tps = 123.4 (…)").
pub(super) fn field(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn pgbench_summary_fields() {
        let out = "number of transactions actually processed: 5120/5120\n\
                   latency average = 0.781 ms\n\
                   tps = 5115.372 (without initial connection time)\n";
        assert_eq!(field(out, "tps = "), Some(5115.372));
        assert_eq!(field(out, "latency average = "), Some(0.781));
        assert_eq!(
            field(out, "number of transactions actually processed: "),
            Some(5120.0)
        );
        assert_eq!(field("no summary", "tps = "), None);
    }

    #[test]
    fn urls_lose_their_passwords() {
        use super::redact;
        assert_eq!(
            redact("postgresql://app:s3cret@db.example:5432/shop"),
            "postgresql://app@db.example:5432/shop"
        );
        assert_eq!(
            redact("postgresql:///shop?host=/run"),
            "postgresql:///shop?host=/run"
        );
        assert_eq!(
            redact("host=x password=p dbname=shop"),
            "host=x dbname=shop"
        );
        assert_eq!(
            redact("postgresql:///shop?password=p&host=/run"),
            "postgresql:///shop?host=/run"
        );
    }
}
