//! One parent, measured side by side: the same database (`pgbench -i -s N`, or a live
//! server's database imported) on a lakelet branch and on a native cluster on the same disk;
//! then private copies made of it by each method, round after round so drift (page cache,
//! autovacuum, a neighbour's load) hits every method alike; then, for pgbench parents,
//! steady-state pgbench on a branch vs on local disk.
//!
//! Every copy must prove it holds the parent's data before it counts as ready: the probe
//! (`pgbench_branches` has exactly `scale` rows; an import's user relations, counted) must
//! answer as the native parent does.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

use super::client::{
    cfg_url, client, ident, lit, pgbench, pipe, query, redact, socket_cfg, steady, Target,
};
use super::cost::{RunCost, Sample, Usage};
use super::lab::{run, Lab, Native};
use super::report::{
    human_us, LoadTimes, Method, MethodResult, PgbenchRun, Run, SizeResult, Throughput,
};
use super::Progress;
use crate::api::lakebase::client::Branches;
use crate::api::lakebase::types::BranchSpec;
use crate::compute::Endpoint;

/// The query a copy of a pgbench parent must answer; its answer must be the scale.
pub const PROBE: &str = "SELECT count(*) FROM pgbench_branches";
/// The database pgbench fills on both sides.
const DB: &str = "bench";
/// The daemon's root branch, which every parent is branched from.
const ROOT: &str = "main";

pub struct Plan {
    pub runs: usize,
    pub alt_runs: usize,
    pub duration: Duration,
    pub rounds: usize,
    pub clients: u32,
    pub threads: u32,
}

/// What a parent is made from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `pgbench -i -s N` on both sides.
    Pgbench(u32),
    /// A live server's database (a libpq URL): `lakelet import` on one side, `pg_dump |
    /// pg_restore --create` on the other.
    Import(String),
}

/// One parent on both sides, and how a copy proves it holds the parent's data.
struct Parent {
    /// Short, unique: names the parent's branches and native clusters.
    key: String,
    /// The lakelet branch copies are made from (compute running).
    branch: String,
    /// The database on both sides.
    db: String,
    nat: usize,
    probe: String,
    expect: String,
}

/// The probe of an imported database: its user relations, counted; the native parent's answer
/// is what every copy must give.
const RELATIONS: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = \
     c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')";

pub async fn size(
    lab: &mut Lab,
    plan: &Plan,
    k: usize,
    src: &Source,
    p: &Progress,
) -> Result<SizeResult> {
    let (parent, label, load) = match src {
        Source::Pgbench(scale) => pgbench_parent(lab, *scale, p).await?,
        Source::Import(url) => import_parent(lab, k, url, p).await?,
    };
    let api = lab.api();
    let admin = lab.cluster(parent.nat).config("postgres");
    let database_bytes: u64 = query(
        &admin,
        &format!("SELECT pg_database_size({})", lit(&parent.db)),
    )
    .await?
    .parse()?;
    p.say(format!(
        "{label}: {} MiB; lakelet {:.1} s, native {:.1} s",
        database_bytes >> 20,
        load.lakelet,
        load.native
    ));

    let mut runs: [Vec<Run>; 4] = Default::default();
    let rounds = plan.runs.max(plan.alt_runs);
    for i in 0..rounds {
        let mut line = format!("{label}: round {}/{rounds}:", i + 1);
        if i < plan.runs {
            let r = lakelet_run(lab, &parent, i).await?;
            line += &format!(" branch {}", human_us(r.ready_us));
            runs[0].push(r);
        }
        if i < plan.alt_runs {
            let r = template_run(lab, &parent, i).await?;
            line += &format!(", TEMPLATE {}", human_us(r.ready_us));
            runs[1].push(r);
            let r = dump_run(lab, &parent, i).await?;
            line += &format!(", dump|restore {}", human_us(r.ready_us));
            runs[2].push(r);
            let r = copy_run(lab, &parent, i).await?;
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
    let pgbench = match src {
        Source::Pgbench(_) => steady_state(lab, plan, &parent, &label, p).await?,
        // pgbench's workloads need pgbench's tables.
        Source::Import(_) => Vec::new(),
    };

    // This parent goes before the next one loads (disk, memory).
    lab.drop_cluster(parent.nat).await?;
    api.delete(&parent.branch, true)?;
    Ok(SizeResult {
        scale: match src {
            Source::Pgbench(s) => *s,
            Source::Import(_) => 0,
        },
        source: label,
        probe: parent.probe,
        database_bytes,
        load_s: load,
        methods,
        pgbench,
    })
}

/// `pgbench -i -s N`: on a lakelet branch of main through the proxy, and on a native cluster.
async fn pgbench_parent(
    lab: &mut Lab,
    scale: u32,
    p: &Progress,
) -> Result<(Parent, String, LoadTimes)> {
    let api = lab.api();
    let key = format!("s{scale}");
    let label = format!("pgbench scale {scale}");
    p.say(format!(
        "{label}: pgbench -i -s {scale} on lakelet branch '{key}' (through the proxy)"
    ));
    api.create(&key, from(&api, ROOT))?;
    query(&cfg_url(&lab.url(&key, "postgres")?)?, &create_db(DB)).await?;
    let url = lab.url(&key, DB)?;
    let (lakelet, _) = pgbench(&lab.pg, Target::Url(&url), &init_args(scale)).await?;
    query(&cfg_url(&url)?, "CHECKPOINT").await?;

    p.say(format!("{label}: pgbench -i -s {scale} on native Postgres"));
    let nat = lab.native(&format!("n{scale}")).await?;
    let admin = lab.cluster(nat).config("postgres");
    query(&admin, &create_db(DB)).await?;
    let sock = lab.cluster(nat).sock();
    let (native, _) = pgbench(&lab.pg, Target::Socket(&sock, DB), &init_args(scale)).await?;
    query(&admin, "CHECKPOINT").await?;
    let parent = Parent {
        branch: key.clone(),
        key,
        db: DB.to_string(),
        nat,
        probe: PROBE.to_string(),
        expect: scale.to_string(),
    };
    let load = LoadTimes {
        lakelet: lakelet.as_secs_f64(),
        native: native.as_secs_f64(),
    };
    Ok((parent, label, load))
}

/// A live server's database: `lakelet import` (pg_basebackup, or pg_dump/pg_restore when
/// replication is refused) into a root branch, and `pg_dump | pg_restore --create` into a
/// native cluster. The native parent's answer to the probe is what every copy must give.
async fn import_parent(
    lab: &mut Lab,
    k: usize,
    url: &str,
    p: &Progress,
) -> Result<(Parent, String, LoadTimes)> {
    let cfg = tokio_postgres::Config::from_str(url)
        .map_err(|e| anyhow::anyhow!("--import {}: not a Postgres URL ({e})", redact(url)))?;
    let db = cfg
        .get_dbname()
        .map(str::to_string)
        .with_context(|| format!("--import {}: the URL names no database", redact(url)))?;
    let key = format!("i{k}");
    let label = format!("imported {db}");
    p.say(format!(
        "{label}: lakelet import of {} into branch '{key}'",
        redact(url)
    ));
    let t = Instant::now();
    import(lab, &key, url).await?;
    let lakelet = t.elapsed();

    p.say(format!(
        "{label}: pg_dump | pg_restore --create into native Postgres"
    ));
    let nat = lab.native(&format!("n{key}")).await?;
    let sock = lab.cluster(nat).sock();
    let t = Instant::now();
    let dump = client(
        &lab.pg,
        "pg_dump",
        Target::Url(url),
        &["-Fc", "--no-owner", "--no-acl"],
    );
    let restore = client(
        &lab.pg,
        "pg_restore",
        Target::Socket(&sock, "postgres"),
        &["--create", "--no-owner", "--no-acl", "--exit-on-error"],
    );
    pipe(dump, restore, &label).await?;
    let native = t.elapsed();
    query(&lab.cluster(nat).config("postgres"), "CHECKPOINT").await?;
    let expect = query(&lab.cluster(nat).config(&db), RELATIONS).await?;
    let parent = Parent {
        branch: key.clone(),
        key,
        db,
        nat,
        probe: RELATIONS.to_string(),
        expect,
    };
    let load = LoadTimes {
        lakelet: lakelet.as_secs_f64(),
        native: native.as_secs_f64(),
    };
    Ok((parent, label, load))
}

/// `lakelet import --from-url` through the daemon's API, waited for.
async fn import(lab: &Lab, branch: &str, url: &str) -> Result<()> {
    let c = crate::api::client::Client::connect(&lab.data_dir)?;
    let req = crate::api::ImportRequest {
        branch: branch.to_string(),
        pgdata: None,
        url: Some(url.to_string()),
    };
    let mut op: crate::api::Operation = c.post("/import", &req)?;
    let id = op.name.trim_start_matches("operations/").to_string();
    while !op.done {
        tokio::time::sleep(Duration::from_millis(200)).await;
        op = c.get(&format!("/operations/{id}"))?;
    }
    if let Some(e) = &op.error {
        bail!("lakelet import of {} failed: {}", redact(url), e.message);
    }
    Ok(())
}

/// Steady-state pgbench: a branch of the parent (its socket, then through the proxy) vs the
/// native parent itself, in `plan.rounds` interleaved rounds (native, socket, proxy, each after a
/// CHECKPOINT), each run with its costs per transaction (cost.rs). Each side reports its median
/// round.
async fn steady_state(
    lab: &mut Lab,
    plan: &Plan,
    parent: &Parent,
    label: &str,
    p: &Progress,
) -> Result<Vec<Throughput>> {
    let api = lab.api();
    let child = format!("{}-pgbench", parent.key);
    api.create(&child, from(&api, &parent.branch))?;
    let client = crate::api::client::Client::connect(&lab.data_dir)?;
    let ep: Endpoint = client.post(
        &format!("/branches/{}/start", crate::api::client::seg(&child)),
        &serde_json::json!({}),
    )?;
    let daemon: crate::api::DaemonInfo = serde_json::from_str(
        &std::fs::read_to_string(lab.data_dir.join("daemon.json"))
            .context("reading the bench daemon's daemon.json")?,
    )?;
    let native_pm = lab
        .cluster(parent.nat)
        .pid()
        .context("the native parent is not running")?;
    let child_url = lab.url(&child, &parent.db)?;
    let admin = lab.cluster(parent.nat).config("postgres");
    let sock = lab.cluster(parent.nat).sock();
    let db = parent.db.as_str();
    let view = |c: &crate::api::client::Client| -> Option<crate::compute::ViewCounters> {
        let s: crate::api::Status = c.get("/status").ok()?;
        s.branches
            .into_iter()
            .find(|b| b.info.name == child)?
            .compute
            .view
    };
    let sample = |branch: bool| Sample {
        postgres: Usage::tree(if branch { ep.pid } else { native_pm }),
        daemon: branch.then(|| Usage::process(daemon.pid)),
        view: if branch { view(&client) } else { None },
    };
    let mut out = Vec::new();
    for (workload, extra) in [("tpcb", None), ("select-only", Some("-S"))] {
        let secs = plan.duration.as_secs().max(1).to_string();
        let (c, j) = (plan.clients.to_string(), plan.threads.to_string());
        let mut args = vec!["-c", &c, "-j", &j, "-T", &secs];
        args.extend(extra);
        let mut rounds: Vec<[PgbenchRun; 3]> = Vec::new();
        for round in 1..=plan.rounds {
            let side = |on: &str| {
                p.say(format!(
                    "{label}: pgbench {} on {on} (round {round}/{})",
                    args.join(" "),
                    plan.rounds
                ))
            };
            side("native Postgres");
            query(&admin, "CHECKPOINT").await?;
            let native = costed(&sample, false, || {
                steady(&lab.pg, Target::Socket(&sock, db), &args)
            })
            .await?;
            side("the branch (its socket)");
            query(&socket_cfg(&ep.socket_dir, "postgres"), "CHECKPOINT").await?;
            let socket = costed(&sample, true, || {
                steady(&lab.pg, Target::Socket(&ep.socket_dir, db), &args)
            })
            .await?;
            side("the branch (through the proxy)");
            query(&socket_cfg(&ep.socket_dir, "postgres"), "CHECKPOINT").await?;
            let proxy = costed(&sample, true, || {
                steady(&lab.pg, Target::Url(&child_url), &args)
            })
            .await?;
            rounds.push([native, socket, proxy]);
        }
        let median = |i: usize| {
            let mut runs: Vec<PgbenchRun> = rounds.iter().map(|r| r[i].clone()).collect();
            runs.sort_by(|a, b| a.tps.total_cmp(&b.tps));
            runs.swap_remove((runs.len() - 1) / 2)
        };
        let mut t = Throughput::new(workload, median(0), median(1), median(2));
        t.rounds = rounds
            .iter()
            .map(|r| [r[0].tps, r[1].tps, r[2].tps])
            .collect();
        p.say(format!(
            "  {workload} (median of {}): native {:.0} tps, branch {:.0} tps ({:.2}×), through the proxy {:.0} tps ({:.2}×)",
            plan.rounds, t.native.tps, t.branch_socket.tps, t.ratio_socket, t.branch_proxy.tps, t.ratio_proxy
        ));
        out.push(t);
    }
    api.delete(&child, true)?;
    Ok(out)
}

/// Runs `run` between two samples; the run carries their difference per transaction. The
/// second sample waits a moment, so the postmaster has reaped the backends pgbench closed.
async fn costed<F, Fut>(sample: &dyn Fn(bool) -> Sample, branch: bool, run: F) -> Result<PgbenchRun>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<PgbenchRun>>,
{
    let before = sample(branch);
    let mut r = run().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sample(branch);
    r.cost = Some(RunCost::between(
        &before,
        &after,
        r.transactions.unwrap_or(0),
    ));
    Ok(r)
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
async fn lakelet_run(lab: &Lab, parent: &Parent, i: usize) -> Result<Run> {
    let api = lab.api();
    let name = format!("{}-b{i}", parent.key);
    let url = lab.url(&name, &parent.db)?;
    let t0 = Instant::now();
    let (_, server_us) = api.create_timed(&name, from(&api, &parent.branch))?;
    let made = t0.elapsed();
    probe(&cfg_url(&url)?, parent).await?;
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

async fn template_run(lab: &Lab, parent: &Parent, i: usize) -> Result<Run> {
    let n = lab.cluster(parent.nat);
    let copy = format!("t{i}");
    let admin = n.config("postgres");
    let t0 = Instant::now();
    let sql = format!("CREATE DATABASE {copy} TEMPLATE {}", ident(&parent.db));
    query(&admin, &sql).await?;
    ready_database(n, parent, &copy, t0).await
}

async fn dump_run(lab: &Lab, parent: &Parent, i: usize) -> Result<Run> {
    let n = lab.cluster(parent.nat);
    let copy = format!("d{i}");
    let sock = n.sock();
    let t0 = Instant::now();
    query(&n.config("postgres"), &create_db(&copy)).await?;
    let dump = client(
        &lab.pg,
        "pg_dump",
        Target::Socket(&sock, &parent.db),
        &["-Fc"],
    );
    let restore = client(
        &lab.pg,
        "pg_restore",
        Target::Socket(&sock, &copy),
        &["--exit-on-error"],
    );
    pipe(dump, restore, &parent.key).await?;
    ready_database(n, parent, &copy, t0).await
}

/// The end of a run that made database `copy` on cluster `n`, started at `t0`: made now, ready
/// once the probe answers; its size, then it is dropped.
async fn ready_database(n: &Native, parent: &Parent, copy: &str, t0: Instant) -> Result<Run> {
    let made = t0.elapsed();
    probe(&n.config(copy), parent).await?;
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
async fn copy_run(lab: &mut Lab, parent: &Parent, i: usize) -> Result<Run> {
    let nat = parent.nat;
    let src = lab.cluster(nat).data();
    let name = format!("{}c{i}", lab.cluster(nat).name);
    let dir = lab.root.join(&name);
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
    let c = lab.adopt(&name, dir.clone())?;
    lab.start(c).await?;
    probe(&lab.cluster(c).config(&parent.db), parent).await?;
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

/// The probe on a new connection; a copy without the parent's data is an error, not a figure.
async fn probe(cfg: &tokio_postgres::Config, parent: &Parent) -> Result<()> {
    let got = query(cfg, &parent.probe).await?;
    if got != parent.expect {
        bail!(
            "a copy of {} answered {:?} with {got:?}, not {:?}: it lacks the parent's data",
            parent.key,
            parent.probe,
            parent.expect
        );
    }
    Ok(())
}
