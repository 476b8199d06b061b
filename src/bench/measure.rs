//! One parent size, measured side by side: the same `pgbench -i -s N` database on a lakelet
//! branch and on a native cluster on the same disk; then private copies made of it by each
//! method, round after round so drift (page cache, autovacuum, a neighbour's load) hits every
//! method alike; then steady-state pgbench on a branch vs on local disk.
//!
//! Every copy must prove it holds the parent's data before it counts as ready: the probe
//! counts `pgbench_branches`, which has exactly `scale` rows.

use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

use super::lab::{run, Lab, Native};
use super::report::{
    human_us, LoadTimes, Method, MethodResult, PgbenchRun, Run, SizeResult, Throughput,
};
use super::Progress;
use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::BranchSpec;
use crate::compute::pg::PgInstall;
use crate::compute::Endpoint;

/// The query a copy must answer; its answer must be the scale.
pub const PROBE: &str = "SELECT count(*) FROM pgbench_branches";
/// The database pgbench fills on both sides.
const DB: &str = "bench";
/// The daemon's root branch, which every parent is branched from.
const ROOT: &str = "main";

pub struct Plan {
    pub runs: usize,
    pub alt_runs: usize,
    pub duration: Duration,
    pub clients: u32,
    pub threads: u32,
}

/// Where pgbench, pg_dump or a probe connects: a server's unix socket (as the superuser, no
/// password) or a URL through the proxy.
enum Target<'a> {
    Socket(&'a Path, &'a str),
    Url(&'a str),
}

pub async fn size(lab: &mut Lab, plan: &Plan, scale: u32, p: &Progress) -> Result<SizeResult> {
    let api = lab.api();
    let parent = format!("s{scale}");

    // The parent on lakelet: a branch of main, loaded through the proxy, compute left running.
    p.say(format!(
        "scale {scale}: pgbench -i -s {scale} on lakelet branch '{parent}' (through the proxy)"
    ));
    api.create(&parent, from(&api, ROOT))?;
    query(&cfg_url(&lab.url(&parent, "postgres")?)?, &create_db(DB)).await?;
    let parent_url = lab.url(&parent, DB)?;
    let load_lakelet = pgbench(&lab.pg, Target::Url(&parent_url), &init_args(scale)).await?;
    query(&cfg_url(&parent_url)?, "CHECKPOINT").await?;
    p.say(format!("  loaded in {:.1} s", load_lakelet.0.as_secs_f64()));

    // The same database on native Postgres.
    p.say(format!(
        "scale {scale}: pgbench -i -s {scale} on native Postgres"
    ));
    let nat = lab.native(&format!("n{scale}")).await?;
    let admin = lab.cluster(nat).config("postgres");
    query(&admin, &create_db(DB)).await?;
    let sock = lab.cluster(nat).sock();
    let load_native = pgbench(&lab.pg, Target::Socket(&sock, DB), &init_args(scale)).await?;
    query(&admin, "CHECKPOINT").await?;
    let database_bytes: u64 = query(&admin, &format!("SELECT pg_database_size('{DB}')"))
        .await?
        .parse()?;
    p.say(format!(
        "  loaded in {:.1} s ({} MiB)",
        load_native.0.as_secs_f64(),
        database_bytes >> 20
    ));

    let mut runs: [Vec<Run>; 4] = Default::default();
    let rounds = plan.runs.max(plan.alt_runs);
    for i in 0..rounds {
        let mut line = format!("scale {scale}: round {}/{rounds}:", i + 1);
        if i < plan.runs {
            let r = lakelet_run(lab, &parent, scale, i).await?;
            line += &format!(" branch {}", human_us(r.ready_us));
            runs[0].push(r);
        }
        if i < plan.alt_runs {
            let r = template_run(lab, nat, scale, i).await?;
            line += &format!(", TEMPLATE {}", human_us(r.ready_us));
            runs[1].push(r);
            let r = dump_run(lab, nat, scale, i).await?;
            line += &format!(", dump|restore {}", human_us(r.ready_us));
            runs[2].push(r);
            let r = copy_run(lab, nat, scale, i).await?;
            line += &format!(", directory copy {}", human_us(r.ready_us));
            runs[3].push(r);
        }
        p.say(line);
    }
    let methods = Method::ALL
        .into_iter()
        .zip(runs)
        .map(|(m, r)| MethodResult::new(m, r))
        .collect();

    // Steady state: a branch of the parent vs the native parent itself (written last).
    let child = format!("s{scale}-pgbench");
    api.create(&child, from(&api, &parent))?;
    let ep: Endpoint = crate::api::client::Client::connect(&lab.data_dir)?.post(
        &format!("/branches/{}/start", crate::api::client::seg(&child)),
        &serde_json::json!({}),
    )?;
    let child_url = lab.url(&child, DB)?;
    let mut pgbench_results = Vec::new();
    for (workload, extra) in [("tpcb", None), ("select-only", Some("-S"))] {
        let secs = plan.duration.as_secs().max(1).to_string();
        let (c, j) = (plan.clients.to_string(), plan.threads.to_string());
        let mut args = vec!["-c", &c, "-j", &j, "-T", &secs];
        args.extend(extra);
        let side = |label: &'static str| {
            p.say(format!(
                "scale {scale}: pgbench {} on {label}",
                args.join(" ")
            ));
        };
        side("native Postgres");
        query(&admin, "CHECKPOINT").await?;
        let native = steady(&lab.pg, Target::Socket(&sock, DB), &args).await?;
        side("the branch (its socket)");
        let direct = Target::Socket(&ep.socket_dir, DB);
        query(&socket_cfg(&ep.socket_dir, "postgres"), "CHECKPOINT").await?;
        let socket = steady(&lab.pg, direct, &args).await?;
        side("the branch (through the proxy)");
        query(&socket_cfg(&ep.socket_dir, "postgres"), "CHECKPOINT").await?;
        let proxy = steady(&lab.pg, Target::Url(&child_url), &args).await?;
        let t = Throughput::new(workload, native, socket, proxy);
        p.say(format!(
            "  {workload}: native {:.0} tps, branch {:.0} tps ({:.2}×), through the proxy {:.0} tps ({:.2}×)",
            t.native.tps, t.branch_socket.tps, t.ratio_socket, t.branch_proxy.tps, t.ratio_proxy
        ));
        pgbench_results.push(t);
    }

    // This size's parents go before the next size loads (disk, memory).
    lab.drop_cluster(nat).await?;
    api.delete(&child, true)?;
    api.delete(&parent, true)?;
    Ok(SizeResult {
        scale,
        database_bytes,
        load_s: LoadTimes {
            lakelet: load_lakelet.0.as_secs_f64(),
            native: load_native.0.as_secs_f64(),
        },
        methods,
        pgbench: pgbench_results,
    })
}

/// A branch of `parent` that never expires: the bench deletes what it made, and the whole
/// daemon goes with the work directory.
fn from(api: &Branches, parent: &str) -> BranchSpec {
    BranchSpec {
        source_branch: Some(api.branch_name(parent)),
        no_expiry: Some(true),
        ..Default::default()
    }
}

fn create_db(name: &str) -> String {
    format!("CREATE DATABASE {name}")
}

fn init_args(scale: u32) -> Vec<String> {
    vec!["-i".into(), "-q".into(), "-s".into(), scale.to_string()]
}

/// A branch of the running parent, then the probe through the proxy on a new connection (the
/// proxy starts the compute on demand), then its own bytes in the store.
async fn lakelet_run(lab: &Lab, parent: &str, scale: u32, i: usize) -> Result<Run> {
    let api = lab.api();
    let name = format!("s{scale}-b{i}");
    let url = lab.url(&name, DB)?;
    let t0 = Instant::now();
    let (_, server_us) = api.create_timed(&name, from(&api, parent))?;
    let made = t0.elapsed();
    probe(&cfg_url(&url)?, scale).await?;
    let ready = t0.elapsed();
    let usage = api.usage(&name)?;
    api.delete(&name, true)?;
    Ok(Run {
        made_us: us(made),
        ready_us: us(ready),
        server_us,
        storage_added_bytes: usage.own_bytes,
    })
}

async fn template_run(lab: &Lab, nat: usize, scale: u32, i: usize) -> Result<Run> {
    let n = lab.cluster(nat);
    let copy = format!("t{i}");
    let admin = n.config("postgres");
    let t0 = Instant::now();
    query(&admin, &format!("CREATE DATABASE {copy} TEMPLATE {DB}")).await?;
    ready_database(n, &copy, scale, t0).await
}

async fn dump_run(lab: &Lab, nat: usize, scale: u32, i: usize) -> Result<Run> {
    let n = lab.cluster(nat);
    let copy = format!("d{i}");
    let admin = n.config("postgres");
    let sock = n.sock();
    let t0 = Instant::now();
    query(&admin, &create_db(&copy)).await?;
    let mut dump = client(&lab.pg, "pg_dump", Target::Socket(&sock, DB), &["-Fc"]);
    let mut dump = dump
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pg_dump")?;
    let pipe: Stdio = dump.stdout.take().context("pg_dump's stdout")?.try_into()?;
    let mut restore = client(
        &lab.pg,
        "pg_restore",
        Target::Socket(&sock, &copy),
        &["--exit-on-error"],
    );
    restore.stdin(pipe);
    let (d, r) = tokio::join!(dump.wait_with_output(), restore.output());
    let (d, r) = (d.context("pg_dump")?, r.context("pg_restore")?);
    for (what, o) in [("pg_dump", &d), ("pg_restore", &r)] {
        if !o.status.success() {
            bail!(
                "{what} of scale {scale} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    ready_database(n, &copy, scale, t0).await
}

/// The end of a run that made database `copy` on cluster `n`, started at `t0`: made now, ready
/// once the probe answers; its size, then it is dropped.
async fn ready_database(n: &Native, copy: &str, scale: u32, t0: Instant) -> Result<Run> {
    let made = t0.elapsed();
    probe(&n.config(copy), scale).await?;
    let ready = t0.elapsed();
    let admin = n.config("postgres");
    let bytes = query(&admin, &format!("SELECT pg_database_size('{copy}')"))
        .await?
        .parse()?;
    query(&admin, &format!("DROP DATABASE {copy}")).await?;
    Ok(Run {
        made_us: us(made),
        ready_us: us(ready),
        server_us: None,
        storage_added_bytes: bytes,
    })
}

/// Stop the parent's server, copy its data directory, start a second server on the copy.
/// The parent is started again afterwards, outside the timing.
async fn copy_run(lab: &mut Lab, nat: usize, scale: u32, i: usize) -> Result<Run> {
    let src = lab.cluster(nat).data();
    let dir = lab.root.join(format!("{}c{i}", lab.cluster(nat).name));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let t0 = Instant::now();
    lab.stop(nat).await?;
    let mut cp = Command::new("cp");
    cp.arg("-a")
        .arg(&src)
        .arg(dir.join("data"))
        .kill_on_drop(true);
    run(cp, "cp -a of the native data directory").await?;
    let made = t0.elapsed();
    let c = lab.adopt(&format!("{}c{i}", lab.cluster(nat).name), dir.clone())?;
    lab.start(c).await?;
    probe(&lab.cluster(c).config(DB), scale).await?;
    let ready = t0.elapsed();
    let bytes = allocated(&dir.join("data"))?;
    lab.drop_cluster(c).await?;
    lab.start(nat).await?;
    Ok(Run {
        made_us: us(made),
        ready_us: us(ready),
        server_us: None,
        storage_added_bytes: bytes,
    })
}

/// Bytes of disk a tree takes (allocated blocks, as `du` counts them).
fn allocated(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let m = e.metadata()?;
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(total)
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn cfg_url(url: &str) -> Result<tokio_postgres::Config> {
    let mut c = tokio_postgres::Config::from_str(url).context("the proxy URL")?;
    c.application_name("lakelet-bench")
        .connect_timeout(Duration::from_secs(300));
    Ok(c)
}

fn socket_cfg(dir: &Path, db: &str) -> tokio_postgres::Config {
    let mut c = crate::compute::postgres::config(dir);
    c.dbname(db).application_name("lakelet-bench");
    c
}

/// Runs `sql` on a new connection; the first column of the first row ("" if none).
async fn query(cfg: &tokio_postgres::Config, sql: &str) -> Result<String> {
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

/// The probe on a new connection; a copy without the parent's rows is an error, not a figure.
async fn probe(cfg: &tokio_postgres::Config, scale: u32) -> Result<()> {
    let got = query(cfg, PROBE).await?;
    if got != scale.to_string() {
        bail!("the copy answered {PROBE:?} with {got:?}, not {scale}: it lacks the parent's rows");
    }
    Ok(())
}

/// A Postgres client program aimed at `target`, with the environment's PG* settings removed
/// so they cannot redirect it.
fn client(pg: &PgInstall, prog: &str, target: Target<'_>, args: &[&str]) -> Command {
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
async fn pgbench<S: AsRef<str>>(
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
async fn steady(pg: &PgInstall, target: Target<'_>, args: &[&str]) -> Result<PgbenchRun> {
    let (_, text) = pgbench(pg, target, args).await?;
    let tps =
        field(&text, "tps = ").with_context(|| format!("no tps in pgbench's output:\n{text}"))?;
    Ok(PgbenchRun {
        tps,
        latency_avg_ms: field(&text, "latency average = "),
        transactions: field(&text, "number of transactions actually processed: ").map(|n| n as u64),
    })
}

/// The number after `key` on the first line that starts with it ("tps = 123.4 (…)").
fn field(text: &str, key: &str) -> Option<f64> {
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
}
