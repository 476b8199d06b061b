//! Compute benchmarks: what a developer feels when lakelet runs a real Postgres on a branch.
//! Every figure is one side of a pair measured in the same run, because on a shared 2-core
//! machine only ratios taken minutes apart are comparable:
//!
//! 1. **Branch creation vs parent size**: N creations from a running parent initialised by
//!    `pgbench -i -s SMALL` vs one initialised by `pgbench -i -s BIG`. The parent's compute is
//!    running, so the CHECKPOINT lakelet asks for before branching is part of the figure. Two
//!    times per creation: the wall time of the `lakelet branch create` CLI call (process start,
//!    HTTP, everything a user waits for) and the daemon's `elapsed_us` (CHECKPOINT + store
//!    create + store sync, without the CLI overhead). The first creation right after each
//!    `pgbench -i` is reported on its own: its CHECKPOINT writes what the load left dirty,
//!    later ones find an idle parent. Target: big/small p50 ≈ 1 (creation is O(1) in size).
//! 2. **Create → first answered query**: `branch create`, `branch start` (mount, postmaster,
//!    crash recovery from the checkpoint) and `SELECT 1` over the unix socket, from each parent.
//! 3. **pgbench TPS** (TPC-B and select-only, `-c 4 -j 2 -T SECS`) on a lakelet branch vs the
//!    same Postgres binaries on a cluster initdb'd on local disk with the same flags and the same
//!    postgresql.conf additions (`TUNED_CONF`, imported from the library so they cannot drift).
//! 4. **`pgbench -i -s INIT`** wall time on a branch vs on local disk.
//!
//! Sizes come from the environment (defaults in brackets): `LAKELET_BENCH_SCALE_SMALL` [1],
//! `LAKELET_BENCH_SCALE_BIG` [100], `LAKELET_BENCH_RUNS` [20], `LAKELET_BENCH_SECS` [30],
//! `LAKELET_BENCH_SCALE_TPS` [10], `LAKELET_BENCH_SCALE_INIT` [20]. A quick run:
//!
//! ```sh
//! LAKELET_BENCH_SCALE_BIG=5 LAKELET_BENCH_RUNS=5 LAKELET_BENCH_SECS=5 \
//!   LAKELET_BENCH_SCALE_TPS=2 LAKELET_BENCH_SCALE_INIT=2 cargo bench --bench compute
//! ```
//!
//! Output: a Markdown table on stdout, progress on stderr, every raw figure in
//! `$CARGO_TARGET_DIR/lakelet-bench/compute.json` (else `target/lakelet-bench/compute.json`).
//! Everything lives in one temporary directory on the same local disk (`$TMPDIR`, else /tmp):
//! the daemon's data directory (its own, with `--api-port 0`) and the native cluster. A guard
//! runs `lakelet down` and stops the native cluster however the run ends.

#[macro_use]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lakelet::compute::postgres::TUNED_CONF;
use lakelet::compute::user::ComputeUser;
use lakelet::compute::Endpoint;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;

/// The unprivileged user native Postgres runs as when we are root (the daemon's default).
const PG_USER: &str = "lakelet";

struct Config {
    scale_small: u64,
    scale_big: u64,
    runs: usize,
    secs: u64,
    scale_tps: u64,
    scale_init: u64,
}

impl Config {
    fn from_env() -> Result<Config> {
        let c = Config {
            scale_small: env_num("LAKELET_BENCH_SCALE_SMALL", 1)?,
            scale_big: env_num("LAKELET_BENCH_SCALE_BIG", 100)?,
            runs: env_num("LAKELET_BENCH_RUNS", 20)? as usize,
            secs: env_num("LAKELET_BENCH_SECS", 30)?,
            scale_tps: env_num("LAKELET_BENCH_SCALE_TPS", 10)?,
            scale_init: env_num("LAKELET_BENCH_SCALE_INIT", 20)?,
        };
        if c.runs == 0
            || c.secs == 0
            || [c.scale_small, c.scale_big, c.scale_tps, c.scale_init].contains(&0)
        {
            bail!("LAKELET_BENCH_* sizes must be at least 1");
        }
        Ok(c)
    }
}

/// Everything the run starts, torn down by `Drop` in the right order whatever happened: the
/// native postmaster, then the daemon (which stops its computes and unmounts their views),
/// then the temporary directory.
struct Lab {
    exe: PathBuf,
    data_dir: PathBuf,
    daemon_up: bool,
    native: Native,
    tmp: tempfile::TempDir,
}

/// The local-disk cluster: `root` owned by the Postgres user, holding `data`, `sock`, `log`.
struct Native {
    root: PathBuf,
    bindir: Option<PathBuf>,
    user: Option<ComputeUser>,
    running: bool,
}

impl Native {
    fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    fn sock(&self) -> PathBuf {
        self.root.join("sock")
    }

    /// A Postgres tool run as the unprivileged user (Postgres refuses root), in the same
    /// locale the daemon gives its computes.
    fn tool(&self, name: &str) -> Command {
        let bin = self.bindir.as_ref().expect("bindir known").join(name);
        let mut c = Command::new(bin);
        if let Some(u) = self.user.as_ref().filter(|u| u.switch) {
            c.uid(u.uid).gid(u.gid);
        }
        c.env("LC_ALL", "C.UTF-8")
            .env_remove("PGDATA")
            .current_dir("/");
        c
    }

    /// initdb with lakelet's flags, lakelet's postgresql.conf additions, then pg_ctl start with
    /// the options lakelet passes its postmasters (unix socket only, port 5432 in its own dir).
    fn start(&mut self, bindir: &Path) -> Result<Endpoint> {
        use std::os::unix::fs::{chown, PermissionsExt};
        self.bindir = Some(bindir.to_path_buf());
        // The daemon's own rule: the compute user when we are root, else ourselves.
        let user = lakelet::compute::user::ensure(PG_USER)?;
        for d in [self.root.clone(), self.sock()] {
            std::fs::create_dir_all(&d)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
            chown(&d, Some(user.uid), Some(user.gid))
                .with_context(|| format!("handing {} to {}", d.display(), user.name))?;
        }
        self.user = Some(user);
        let out = self
            .tool("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()?;
        check("initdb of the native cluster", &out)?;
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(TUNED_CONF);
        std::fs::write(&conf, text)?;
        let opts = format!(
            "-p 5432 -c listen_addresses= -c unix_socket_directories={} \
             -c unix_socket_permissions=0700 -c logging_collector=off -c cluster_name=native",
            self.sock().display()
        );
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.root.join("log"))
            .args(["-w", "-t", "300", "-o", &opts, "start"])
            .output()?;
        self.running = true; // even a failed start may have left a postmaster
        check("pg_ctl start of the native cluster", &out)?;
        Ok(Endpoint {
            branch: "(native)".into(),
            socket_dir: self.sock(),
            port: 5432,
            user: "postgres".into(),
            database: "postgres".into(),
            pid: 0,
            pg_bindir: bindir.to_path_buf(),
            cold: false,
        })
    }

    fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        progress!("stopping the native cluster");
        for mode in ["fast", "immediate"] {
            let out = self
                .tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-t", "60", "-m", mode, "stop"])
                .output();
            match out {
                Ok(o) if o.status.success() => return,
                Ok(o) => eprintln!(
                    "warning: pg_ctl stop -m {mode}: {}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("warning: pg_ctl stop -m {mode}: {e}"),
            }
        }
    }
}

impl Lab {
    fn new() -> Result<Lab> {
        let tmp = tempfile::Builder::new()
            .prefix("lakelet-bench-")
            .tempdir()
            .context("creating the temporary directory")?;
        // The native cluster's user must be able to traverse to its directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(Lab {
            exe: lakelet_exe(),
            data_dir: tmp.path().join("lakelet"),
            daemon_up: false,
            native: Native {
                root: tmp.path().join("native"),
                bindir: None,
                user: None,
                running: false,
            },
            tmp,
        })
    }

    /// Runs `lakelet --data-dir D --json ARGS`; returns its JSON and the wall time of the call.
    fn cli(&self, args: &[&str]) -> Result<(Value, Duration)> {
        let t = Instant::now();
        let out = Command::new(&self.exe)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--json")
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let wall = t.elapsed();
        check(&format!("lakelet {}", args.join(" ")), &out)?;
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        Ok((v, wall))
    }

    fn up(&mut self) -> Result<()> {
        self.daemon_up = true; // a failed `up` may still have left a daemon to stop
        self.cli(&[
            "up",
            "--api-port",
            "0",
            "--proxy-port",
            "0",
            "--idle-stop",
            "0s",
        ])?;
        Ok(())
    }

    /// Creates `name` from `from`: (wall µs of the CLI call, the daemon's elapsed_us).
    fn create(&self, name: &str, from: &str) -> Result<(u64, u64)> {
        let (v, wall) = self.cli(&["branch", "create", name, "--from", from])?;
        let server = v["elapsed_us"]
            .as_u64()
            .with_context(|| format!("no elapsed_us in {v}"))?;
        Ok((wall.as_micros() as u64, server))
    }

    fn start(&self, name: &str) -> Result<(Endpoint, Duration)> {
        let (v, wall) = self.cli(&["branch", "start", name])?;
        let ep = serde_json::from_value(v.clone()).with_context(|| format!("endpoint JSON {v}"))?;
        Ok((ep, wall))
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.cli(&["branch", "delete", name, "--purge"]).map(|_| ())
    }

    /// The last lines of every log the daemon wrote, printed before cleanup removes them.
    fn dump_logs(&self) {
        let Ok(rd) = std::fs::read_dir(self.data_dir.join("logs")) else {
            return;
        };
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of {} ---", e.path().display());
            for l in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.native.stop();
        if self.daemon_up {
            progress!("lakelet down");
            if let Err(e) = self.cli(&["down"]) {
                eprintln!("warning: lakelet down failed: {e:#}");
                if let Some(info) = lakelet::api::client::running_daemon(&self.data_dir) {
                    eprintln!("warning: sending SIGTERM to the daemon (pid {})", info.pid);
                    unsafe { libc::kill(info.pid as i32, libc::SIGTERM) };
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
            // The daemon leaves its runtime directory (tmpfs) behind; remove what is empty
            // of it. remove_dir never deletes a file and fails on a live mount point.
            if let Ok(dd) = self.data_dir.canonicalize() {
                let run = lakelet::compute::run_dir(&dd);
                for sub in ["m", "s", "p"] {
                    if let Ok(rd) = std::fs::read_dir(run.join(sub)) {
                        for e in rd.flatten() {
                            let _ = std::fs::remove_dir(e.path());
                        }
                    }
                    let _ = std::fs::remove_dir(run.join(sub));
                }
                let _ = std::fs::remove_dir(&run);
            }
        }
    }
}

/// Runs one statement on a fresh connection, as a client would (connection setup included).
fn query(rt: &tokio::runtime::Runtime, ep: &Endpoint, db: &str, sql: &str) -> Result<()> {
    rt.block_on(async {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&ep.socket_dir)
            .port(ep.port)
            .user(&ep.user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(30));
        let (client, conn) = c.connect(tokio_postgres::NoTls).await.with_context(|| {
            format!("connecting to {} ({})", ep.socket_dir.display(), ep.branch)
        })?;
        let task = tokio::spawn(conn);
        let r = client.simple_query(sql).await;
        drop(client);
        let _ = task.await;
        r.with_context(|| format!("{sql:?} on {}", ep.branch))?;
        Ok(())
    })
}

/// Runs pgbench (as the invoking user: a client needs no privilege) against an endpoint.
fn pgbench(ep: &Endpoint, db: &str, args: &[&str]) -> Result<(Duration, String)> {
    let t = Instant::now();
    let out = Command::new(ep.pg_bindir.join("pgbench"))
        .arg("-h")
        .arg(&ep.socket_dir)
        .args(["-p", &ep.port.to_string(), "-U", &ep.user])
        .args(args)
        .arg(db)
        .env_remove("PGDATABASE")
        .output()
        .context("running pgbench")?;
    let wall = t.elapsed();
    check(
        &format!("pgbench {} on {}", args.join(" "), ep.branch),
        &out,
    )?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((wall, text))
}

/// One `pgbench -i` on an endpoint, after a CHECKPOINT so the run starts from a clean state.
fn timed_init(rt: &tokio::runtime::Runtime, ep: &Endpoint, db: &str, scale: u64) -> Result<Value> {
    query(rt, ep, "postgres", "CHECKPOINT")?;
    progress!("pgbench -i -s {scale} {db} on {}", ep.branch);
    let (wall, text) = pgbench(ep, db, &["-i", "-s", &scale.to_string()])?;
    let done = text
        .lines()
        .find(|l| l.starts_with("done in"))
        .unwrap_or("")
        .to_string();
    progress!("  {:.1} s ({done})", wall.as_secs_f64());
    Ok(json!({ "scale": scale, "wall_s": wall.as_secs_f64(), "pgbench": done }))
}

/// One timed pgbench run (TPC-B, or select-only with `-S`), after a CHECKPOINT.
fn timed_run(
    rt: &tokio::runtime::Runtime,
    ep: &Endpoint,
    db: &str,
    secs: u64,
    select_only: bool,
) -> Result<Value> {
    query(rt, ep, "postgres", "CHECKPOINT")?;
    let secs = secs.to_string();
    let mut args = vec!["-c", CLIENTS, "-j", THREADS, "-T", &secs];
    if select_only {
        args.push("-S");
    }
    progress!("pgbench {} on {}", args.join(" "), ep.branch);
    let (_, text) = pgbench(ep, db, &args)?;
    let tps =
        field(&text, "tps = ").with_context(|| format!("no tps in pgbench output:\n{text}"))?;
    let lat = field(&text, "latency average = ");
    let txns = field(&text, "number of transactions actually processed: ");
    progress!("  {tps:.0} tps, latency {:.3} ms", lat.unwrap_or(f64::NAN));
    Ok(json!({ "tps": tps, "latency_avg_ms": lat, "transactions": txns, "output": text }))
}

fn run(lab: &mut Lab, cfg: &Config) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    progress!(
        "lakelet {} up in {}",
        lab.exe.display(),
        lab.data_dir.display()
    );
    lab.up()?;

    // Parents: each initialised on its own branch of `main`, compute left running. The first
    // creation from each follows its `pgbench -i` at once, before a timed checkpoint can.
    let parents = [("small", cfg.scale_small), ("big", cfg.scale_big)];
    let mut parent_init = serde_json::Map::new();
    let mut first = serde_json::Map::new();
    let mut bindir = PathBuf::new();
    for (p, scale) in parents {
        lab.create(p, "main")?;
        let (ep, _) = lab.start(p)?;
        bindir = ep.pg_bindir.clone();
        progress!("pgbench -i -s {scale} on parent '{p}'");
        let (wall, text) = pgbench(&ep, "postgres", &["-i", "-s", &scale.to_string()])?;
        progress!("  {:.1} s", wall.as_secs_f64());
        let done = text
            .lines()
            .find(|l| l.starts_with("done in"))
            .unwrap_or("");
        parent_init.insert(
            p.into(),
            json!({ "scale": scale, "wall_s": wall.as_secs_f64(), "pgbench": done }),
        );
        let (w, s) = lab.create(&format!("{p}-first"), p)?;
        progress!(
            "  first branch after init: {:.2} ms wall, {:.2} ms in the daemon",
            ms(w),
            ms(s)
        );
        first.insert(p.into(), json!({ "wall_us": w, "server_us": s }));
        lab.delete(&format!("{p}-first"))?;
    }

    // 1. Creation, alternating parents so drift (page cache, GC, autovacuum) hits both alike.
    progress!("branch create x{} from each parent (running)", cfg.runs);
    let mut wall: [Vec<u64>; 2] = Default::default();
    let mut server: [Vec<u64>; 2] = Default::default();
    for i in 0..cfg.runs {
        for (k, (p, _)) in parents.iter().enumerate() {
            let name = format!("{p}-c{i}");
            let (w, s) = lab.create(&name, p)?;
            wall[k].push(w);
            server[k].push(s);
            lab.delete(&name)?;
        }
    }
    for (k, (p, _)) in parents.iter().enumerate() {
        progress!(
            "  from '{p}': wall p50 {:.2} ms, daemon p50 {:.2} ms",
            ms(pct(&wall[k], 0.5)),
            ms(pct(&server[k], 0.5))
        );
    }

    // 2. Create → start → SELECT 1 answered, on a new connection, then delete (untimed).
    progress!("create → first query x{} from each parent", cfg.runs);
    let mut fq: [[Vec<u64>; 4]; 2] = Default::default(); // create, start, query, total
    for i in 0..cfg.runs {
        for (k, (p, _)) in parents.iter().enumerate() {
            let name = format!("{p}-q{i}");
            let t = Instant::now();
            lab.create(&name, p)?;
            let t_create = t.elapsed();
            let (ep, _) = lab.start(&name)?;
            let t_start = t.elapsed();
            query(&rt, &ep, &ep.database, "SELECT 1")?;
            let t_query = t.elapsed();
            let us = |d: Duration| d.as_micros() as u64;
            fq[k][0].push(us(t_create));
            fq[k][1].push(us(t_start - t_create));
            fq[k][2].push(us(t_query - t_start));
            fq[k][3].push(us(t_query));
            lab.delete(&name)?;
        }
    }
    for (k, (p, _)) in parents.iter().enumerate() {
        progress!("  from '{p}': p50 {:.1} ms", ms(pct(&fq[k][3], 0.5)));
    }
    // The parents' computes are done; stop them so they take no memory or CPU below.
    for (p, _) in parents {
        lab.cli(&["branch", "stop", p])?;
    }

    // 3 and 4. One branch of `main` vs one native cluster, same binaries, same databases.
    progress!("native cluster with {}", bindir.display());
    let native = lab.native.start(&bindir)?;
    lab.create("pgb", "main")?;
    let (branch, _) = lab.start("pgb")?;
    for ep in [&branch, &native] {
        for db in ["bench_init", "bench_tps"] {
            query(&rt, ep, "postgres", &format!("CREATE DATABASE {db}"))?;
        }
    }
    let init_b = timed_init(&rt, &branch, "bench_init", cfg.scale_init)?;
    let init_n = timed_init(&rt, &native, "bench_init", cfg.scale_init)?;
    let tps_init_b = timed_init(&rt, &branch, "bench_tps", cfg.scale_tps)?;
    let tps_init_n = timed_init(&rt, &native, "bench_tps", cfg.scale_tps)?;
    let tpcb_b = timed_run(&rt, &branch, "bench_tps", cfg.secs, false)?;
    let tpcb_n = timed_run(&rt, &native, "bench_tps", cfg.secs, false)?;
    let sel_b = timed_run(&rt, &branch, "bench_tps", cfg.secs, true)?;
    let sel_n = timed_run(&rt, &native, "bench_tps", cfg.secs, true)?;

    let side = |k: usize| {
        json!({
            "parent_scale": parents[k].1,
            "wall": stats(&wall[k]),
            "server_elapsed": stats(&server[k]),
            "first_after_init": first[parents[k].0],
        })
    };
    let fq_side = |k: usize| {
        json!({
            "parent_scale": parents[k].1,
            "create": stats(&fq[k][0]),
            "start": stats(&fq[k][1]),
            "query": stats(&fq[k][2]),
            "total": stats(&fq[k][3]),
        })
    };
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "config": {
            "scale_small": cfg.scale_small, "scale_big": cfg.scale_big, "runs": cfg.runs,
            "secs": cfg.secs, "scale_tps": cfg.scale_tps, "scale_init": cfg.scale_init,
            "pgbench_clients": CLIENTS, "pgbench_threads": THREADS,
            "lakelet": lab.exe, "pg_bindir": bindir, "tmp": lab.tmp.path(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
        "parent_init": parent_init,
        "branch_create": {
            "small": side(0),
            "big": side(1),
            "ratio_big_small_p50_wall": ratio(pct(&wall[1], 0.5) as f64, pct(&wall[0], 0.5) as f64),
            "ratio_big_small_p50_server": ratio(pct(&server[1], 0.5) as f64, pct(&server[0], 0.5) as f64),
        },
        "create_to_first_query": {
            "small": fq_side(0),
            "big": fq_side(1),
            "ratio_big_small_p50": ratio(pct(&fq[1][3], 0.5) as f64, pct(&fq[0][3], 0.5) as f64),
        },
        "pgbench": {
            "tpcb": { "branch": tpcb_b, "native": tpcb_n,
                      "ratio_branch_native": ratio(f(&tpcb_b, "tps"), f(&tpcb_n, "tps")) },
            "select_only": { "branch": sel_b, "native": sel_n,
                             "ratio_branch_native": ratio(f(&sel_b, "tps"), f(&sel_n, "tps")) },
            "init_tps_db": { "branch": tps_init_b, "native": tps_init_n },
        },
        "init": {
            "branch": init_b, "native": init_n,
            "ratio_branch_native": ratio(f(&init_b, "wall_s"), f(&init_n, "wall_s")),
        },
    }))
}

fn table(r: &Value) -> String {
    let c = &r["config"];
    let (ss, sb) = (c["scale_small"].clone(), c["scale_big"].clone());
    let bc = &r["branch_create"];
    let fq = &r["create_to_first_query"];
    let pb = &r["pgbench"];
    let msv = |v: &Value| format!("{:.2} ms", v.as_f64().unwrap_or(f64::NAN) / 1000.0);
    let x = |v: &Value| format!("{:.2}×", v.as_f64().unwrap_or(f64::NAN));
    let div = |a: &Value, b: &Value| {
        format!(
            "{:.2}×",
            a.as_f64().unwrap_or(f64::NAN) / b.as_f64().unwrap_or(f64::NAN)
        )
    };
    let mut rows: Vec<[String; 4]> = Vec::new();
    for (label, key) in [
        ("CLI wall", "wall"),
        ("daemon elapsed_us", "server_elapsed"),
    ] {
        for p in ["p50_us", "p95_us"] {
            let (a, b) = (&bc["small"][key][p], &bc["big"][key][p]);
            rows.push([
                format!("branch create, {label} {}, parent s={ss} / s={sb}", &p[..3]),
                msv(a),
                msv(b),
                div(b, a),
            ]);
        }
    }
    for (label, key) in [("CLI wall", "wall_us"), ("daemon elapsed_us", "server_us")] {
        let (a, b) = (
            &bc["small"]["first_after_init"][key],
            &bc["big"]["first_after_init"][key],
        );
        rows.push([
            format!("first branch create after pgbench -i, {label}, s={ss} / s={sb}"),
            msv(a),
            msv(b),
            div(b, a),
        ]);
    }
    for p in ["p50_us", "p95_us"] {
        let (a, b) = (&fq["small"]["total"][p], &fq["big"]["total"][p]);
        rows.push([
            format!(
                "create → first SELECT 1 {}, parent s={ss} / s={sb}",
                &p[..3]
            ),
            msv(a),
            msv(b),
            div(b, a),
        ]);
    }
    let tps = |v: &Value| format!("{:.0} tps", v["tps"].as_f64().unwrap_or(f64::NAN));
    for (label, key) in [("TPC-B", "tpcb"), ("select-only (-S)", "select_only")] {
        rows.push([
            format!(
                "pgbench {label} -c {CLIENTS} -j {THREADS} -T {}, s={}, native / branch",
                c["secs"], c["scale_tps"]
            ),
            tps(&pb[key]["native"]),
            tps(&pb[key]["branch"]),
            x(&pb[key]["ratio_branch_native"]),
        ]);
    }
    let secs = |v: &Value| format!("{:.2} s", v["wall_s"].as_f64().unwrap_or(f64::NAN));
    rows.push([
        format!("pgbench -i -s {} wall, native / branch", c["scale_init"]),
        secs(&r["init"]["native"]),
        secs(&r["init"]["branch"]),
        x(&r["init"]["ratio_branch_native"]),
    ]);
    // Every row reads "A / B" in its label, A the baseline (small parent, native disk).
    let mut out = String::from("| measurement | A | B | B/A |\n|---|---:|---:|---:|\n");
    for [a, b, c, d] in rows {
        out += &format!("| {a} | {b} | {c} | {d} |\n");
    }
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: nothing to run there.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benches/compute.rs runs only under `cargo bench --bench compute`");
        return;
    }
    START.get_or_init(Instant::now);
    let result = Config::from_env().and_then(|cfg| {
        let mut lab = Lab::new()?;
        let r = run(&mut lab, &cfg);
        if r.is_err() {
            lab.dump_logs();
        }
        r
        // `lab` drops here: native stop, lakelet down, temporary directory removed.
    });
    finish("compute", result, table);
}
