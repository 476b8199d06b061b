//! Proxy benchmarks: what the one Postgres address for every branch costs a client, against
//! the same compute reached straight through its private unix socket. Every figure is one side
//! of a pair measured in the same run (interleaved where it can be), because on a shared 2-core
//! machine only ratios taken close together are comparable:
//!
//! 1. **pgbench select-only** (`pgbench -S -c 4 -j 2 -T SECS` on branch `main`, initialised by
//!    `pgbench -i -s SCALE` through the proxy): straight to the compute's unix socket, through
//!    the proxy over TCP 127.0.0.1 with `sslmode=disable`, and through the proxy with
//!    `sslmode=require`, and through the bare relay described below, interleaved (direct,
//!    relay, proxy, proxy-tls, direct, …) ROUNDS times.
//!    Select-only is the worst case for a proxy: the smallest transactions, so the extra hop is
//!    the largest share of each. Target: proxy/direct ≥ 0.9×. A fourth path in every round is
//!    a **bare relay**: a TCP listener in this process that copies each connection to and from
//!    the compute's socket with tokio's `copy_bidirectional` (32 KiB buffers, 2 worker
//!    threads; the proxy's own copy loop until 2026-12-05, now replaced by the kernel relay
//!    and relay threads) and does nothing else: no startup phase, no authentication.
//!    It separates what any user-space hop costs from what the proxy adds. Then one run of
//!    each path with `-C` (a new connection per transaction), which is mostly connection setup.
//!    Every run records where the CPU went (pgbench, the postmaster and its backends, the
//!    daemon, the relay, everything else on the machine), from /proc and getrusage.
//! 2. **Connection setup, warm** (compute running): CONNECTS times a tokio-postgres connection
//!    plus `SELECT 1` on each path, interleaved: straight to the unix socket, the bare relay,
//!    the proxy without TLS, the proxy with TLS (rustls, verifying the daemon's own
//!    certificate, SCRAM-SHA-256-PLUS). The proxy authenticates with SCRAM (the client's PBKDF2
//!    is in the figure); the socket and the relay trust.
//! 3. **Connection setup from zero**: COLD times `lakelet branch stop main`, then connect +
//!    `SELECT 1` through the proxy, which starts the compute on demand; interleaved with the
//!    path without the proxy: `lakelet branch stop main`, `lakelet branch start main` (CLI),
//!    connect + `SELECT 1` on the unix socket.
//!
//! Sizes come from the environment (defaults in brackets): `LAKELET_BENCH_PROXY_SECS` [20],
//! `LAKELET_BENCH_PROXY_ROUNDS` [3], `LAKELET_BENCH_PROXY_SCALE` [10],
//! `LAKELET_BENCH_PROXY_RELAY` [auto] (the daemon's `--proxy-relay`: `user` measures the
//! daemon's own copy for plain sessions instead of the kernel relay),
//! `LAKELET_BENCH_PROXY_CONNECTS` [50], `LAKELET_BENCH_PROXY_COLD` [10]. A quick run:
//!
//! ```sh
//! LAKELET_BENCH_PROXY_SECS=3 LAKELET_BENCH_PROXY_ROUNDS=1 LAKELET_BENCH_PROXY_SCALE=1 \
//!   LAKELET_BENCH_PROXY_CONNECTS=10 LAKELET_BENCH_PROXY_COLD=2 cargo bench --bench proxy
//! ```
//!
//! Output: a Markdown table on stdout, progress on stderr, every raw figure in
//! `$CARGO_TARGET_DIR/lakelet-bench/proxy.json` (else `target/lakelet-bench/proxy.json`).
//! The daemon runs in a temporary directory (`$TMPDIR`, else /tmp) with `--api-port 0
//! --proxy-port 0`; a guard runs `lakelet down` however the run ends. pgbench runs as the
//! invoking user (a client needs no privilege; as root it may open the compute's socket).

#[macro_use]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lakelet::compute::Endpoint;
use serde_json::{json, Value};

/// The branch every measurement runs on.
const BRANCH: &str = "main";

struct Config {
    secs: u64,
    rounds: usize,
    scale: u64,
    connects: usize,
    cold: usize,
}

impl Config {
    fn from_env() -> Result<Config> {
        let c = Config {
            secs: env_num("LAKELET_BENCH_PROXY_SECS", 20)?,
            rounds: env_num("LAKELET_BENCH_PROXY_ROUNDS", 3)? as usize,
            scale: env_num("LAKELET_BENCH_PROXY_SCALE", 10)?,
            connects: env_num("LAKELET_BENCH_PROXY_CONNECTS", 50)? as usize,
            cold: env_num("LAKELET_BENCH_PROXY_COLD", 10)? as usize,
        };
        if c.secs == 0 || c.rounds == 0 || c.scale == 0 || c.connects == 0 || c.cold == 0 {
            bail!("LAKELET_BENCH_PROXY_* sizes must be at least 1");
        }
        Ok(c)
    }
}

/// `LAKELET_BENCH_PROXY_RELAY` [auto]: the daemon's `--proxy-relay`: `auto` relays plain
/// sessions in the kernel (sockmap) where it can, `user` copies them in the daemon.
fn relay_mode() -> String {
    std::env::var("LAKELET_BENCH_PROXY_RELAY").unwrap_or_else(|_| "auto".into())
}

/// The daemon of this run, stopped by `Drop` whatever happened, then the temporary directory.
struct Lab {
    exe: PathBuf,
    data_dir: PathBuf,
    daemon_up: bool,
    tmp: tempfile::TempDir,
}

impl Lab {
    fn new() -> Result<Lab> {
        let tmp = tempfile::Builder::new()
            .prefix("lakelet-bench-proxy-")
            .tempdir()
            .context("creating the temporary directory")?;
        Ok(Lab {
            exe: lakelet_exe(),
            data_dir: tmp.path().join("lakelet"),
            daemon_up: false,
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
            "--proxy-relay",
            &relay_mode(),
        ])?;
        Ok(())
    }

    fn start(&self, name: &str) -> Result<(Endpoint, Duration)> {
        let (v, wall) = self.cli(&["branch", "start", name])?;
        let ep = serde_json::from_value(v.clone()).with_context(|| format!("endpoint JSON {v}"))?;
        Ok((ep, wall))
    }

    fn status(&self) -> Result<Value> {
        Ok(self.cli(&["status"])?.0)
    }

    fn branch_status(&self, name: &str) -> Result<Value> {
        let s = self.status()?;
        s["branches"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["name"] == name))
            .cloned()
            .with_context(|| format!("no branch {name} in status {s}"))
    }

    /// `lakelet branch stop NAME`, then waits until status says the compute is stopped.
    fn stop(&self, name: &str) -> Result<()> {
        self.cli(&["branch", "stop", name])?;
        let t = Instant::now();
        loop {
            let b = self.branch_status(name)?;
            if b["compute"]["state"] == "stopped" {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("compute of {name} still not stopped 60 s after `branch stop`: {b}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's pid, for its CPU time.
    fn daemon_pid(&self) -> Option<u32> {
        lakelet::api::client::running_daemon(&self.data_dir).map(|i| i.pid)
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
        if !self.daemon_up {
            return;
        }
        progress!("lakelet down");
        if let Err(e) = self.cli(&["down"]) {
            eprintln!("warning: lakelet down failed: {e:#}");
            if let Some(info) = lakelet::api::client::running_daemon(&self.data_dir) {
                eprintln!("warning: sending SIGTERM to the daemon (pid {})", info.pid);
                unsafe { libc::kill(info.pid as i32, libc::SIGTERM) };
                std::thread::sleep(Duration::from_secs(5));
            }
        }
        // The daemon leaves its runtime directory (tmpfs) behind; remove what is empty of it.
        // remove_dir never deletes a file and fails on a live mount point.
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

/// How a client reaches the branch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    /// The compute's unix socket, trust authentication.
    Direct,
    /// A bare TCP → unix socket relay in this process (tokio, the proxy's copy loop, no
    /// startup phase, no authentication): what any user-space hop costs, for reference.
    Relay,
    /// The proxy on TCP 127.0.0.1, sslmode=disable, SCRAM.
    Proxy,
    /// The proxy with sslmode=require (TLS, SCRAM-SHA-256-PLUS where the client supports it).
    ProxyTls,
}

impl Via {
    const ALL: [Via; 4] = [Via::Direct, Via::Relay, Via::Proxy, Via::ProxyTls];

    fn key(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Relay => "relay",
            Via::Proxy => "proxy",
            Via::ProxyTls => "proxy_tls",
        }
    }
}

/// Where the ends are: the compute (from `branch start`), the proxy (from `connstr`), the relay.
struct Target {
    ep: Endpoint,
    /// `lakelet connstr main --json`: url, env, password, …
    conn: Value,
    relay: std::net::SocketAddr,
}

impl Target {
    /// libpq environment for `path` (every other PG* variable is removed from pgbench's).
    fn libpq_env(&self, path: Via) -> Vec<(String, String)> {
        match path {
            Via::Direct => vec![
                ("PGHOST".into(), self.ep.socket_dir.display().to_string()),
                ("PGPORT".into(), self.ep.port.to_string()),
                ("PGUSER".into(), self.ep.user.clone()),
                ("PGDATABASE".into(), self.ep.database.clone()),
            ],
            Via::Relay => vec![
                ("PGHOST".into(), self.relay.ip().to_string()),
                ("PGPORT".into(), self.relay.port().to_string()),
                ("PGUSER".into(), self.ep.user.clone()),
                ("PGDATABASE".into(), self.ep.database.clone()),
                ("PGSSLMODE".into(), "disable".into()),
            ],
            Via::Proxy | Via::ProxyTls => {
                let mut env: Vec<(String, String)> = self.conn["env"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|kv| {
                                Some((kv[0].as_str()?.to_string(), kv[1].as_str()?.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mode = if path == Via::Proxy {
                    "disable"
                } else {
                    "require"
                };
                env.push(("PGSSLMODE".into(), mode.into()));
                env
            }
        }
    }

    /// A tokio-postgres configuration for `path`.
    fn pg_config(&self, path: Via) -> Result<tokio_postgres::Config> {
        let mut c = match path {
            Via::Direct => {
                let mut c = tokio_postgres::Config::new();
                c.host_path(&self.ep.socket_dir)
                    .port(self.ep.port)
                    .user(&self.ep.user)
                    .dbname(&self.ep.database)
                    .ssl_mode(tokio_postgres::config::SslMode::Disable);
                c
            }
            Via::Relay => {
                let mut c = tokio_postgres::Config::new();
                c.host(self.relay.ip().to_string())
                    .port(self.relay.port())
                    .user(&self.ep.user)
                    .dbname(&self.ep.database)
                    .ssl_mode(tokio_postgres::config::SslMode::Disable);
                c
            }
            Via::Proxy | Via::ProxyTls => {
                let url = self.conn["url"].as_str().context("no url in connstr")?;
                let mode = if path == Via::Proxy {
                    "disable"
                } else {
                    "require"
                };
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}sslmode={mode}")
                    .parse::<tokio_postgres::Config>()
                    .with_context(|| format!("parsing {url}"))?
            }
        };
        c.connect_timeout(Duration::from_secs(180));
        Ok(c)
    }
}

/// The reference relay: its own 2-worker tokio runtime (the daemon's has one worker per core,
/// 2 here), accepting on 127.0.0.1 and copying each connection to and from the compute's
/// socket exactly as the proxy does once a session is set up. Stops when dropped.
struct Relay {
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl Relay {
    fn start(socket: PathBuf) -> Result<Relay> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        rt.spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let socket = socket.clone();
                tokio::spawn(async move {
                    let Ok(mut be) = tokio::net::UnixStream::connect(&socket).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut tcp,
                        &mut be,
                        32 * 1024,
                        32 * 1024,
                    )
                    .await;
                });
            }
        });
        Ok(Relay { addr, _rt: rt })
    }
}

/// Runs pgbench with `env` as its only PG* environment; returns its wall time and output.
fn pgbench(bindir: &Path, env: &[(String, String)], args: &[&str]) -> Result<(Duration, String)> {
    let mut cmd = Command::new(bindir.join("pgbench"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let t = Instant::now();
    let out = cmd.args(args).output().context("running pgbench")?;
    let wall = t.elapsed();
    check(&format!("pgbench {}", args.join(" ")), &out)?;
    Ok((
        wall,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat: its own (all
/// threads) and, with `children`, that of the children it has waited for (a postmaster's
/// exited backends).
fn cpu_seconds(pid: u32, children: bool) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, so split after the last ')').
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of the line: 11 to 14 after the name.
    let n = if children { 4 } else { 2 };
    let mut ticks = 0.0;
    for i in 11..11 + n {
        ticks += f.get(i)?.parse::<f64>().ok()?;
    }
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds used so far by this process's waited-for children (pgbench).
fn children_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

/// CPU seconds used so far by this process (all threads: the relay).
fn self_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

/// Where the machine's CPU went during one run, in cores (CPU seconds per wall second).
struct CpuSample {
    daemon: Option<f64>,
    /// This process: the relay (the rest of the bench sleeps in pgbench's wait).
    bench: f64,
    postgres: Option<f64>,
    pgbench: f64,
    machine: Option<(u64, u64)>,
}

impl CpuSample {
    fn take(daemon: Option<u32>, postmaster: u32) -> CpuSample {
        CpuSample {
            daemon: daemon.and_then(|p| cpu_seconds(p, false)),
            bench: self_cpu_seconds(),
            postgres: cpu_seconds(postmaster, true),
            pgbench: children_cpu_seconds(),
            machine: machine_jiffies(),
        }
    }

    /// Cores used between `self` and `later` over `wall`: daemon, postgres, pgbench, the whole
    /// machine, and everything else (other processes on the machine).
    fn cores(&self, later: &CpuSample, wall: Duration) -> Value {
        let w = wall.as_secs_f64();
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a) / w),
            _ => None,
        };
        let daemon = d(self.daemon, later.daemon);
        let postgres = d(self.postgres, later.postgres);
        let pgbench = (later.pgbench - self.pgbench) / w;
        let relay = (later.bench - self.bench) / w;
        let machine = match (self.machine, later.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64 * cpus() as f64)
            }
            _ => None,
        };
        let other = match (machine, daemon, postgres) {
            (Some(m), Some(d), Some(p)) => Some((m - d - p - pgbench - relay).max(0.0)),
            _ => None,
        };
        json!({ "daemon": daemon, "relay": relay, "postgres": postgres, "pgbench": pgbench,
                "machine": machine, "other": other })
    }
}

/// (busy, total) jiffies of the whole machine, from the first line of /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let nums: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = nums.iter().sum();
    // idle and iowait are the 4th and 5th numbers.
    let idle = nums.get(3)? + nums.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// One timed pgbench run via `via`, with where the CPU went over the run.
fn timed_pgbench(lab: &Lab, t: &Target, via: Via, secs: u64, reconnect: bool) -> Result<Value> {
    let secs_s = secs.to_string();
    let mut args = vec!["-S", "-c", CLIENTS, "-j", THREADS, "-T", &secs_s];
    if reconnect {
        args.push("-C");
    }
    let pid = lab.daemon_pid();
    let before = CpuSample::take(pid, t.ep.pid);
    let (wall, text) = pgbench(&t.ep.pg_bindir, &t.libpq_env(via), &args)?;
    // Let the postmaster reap the backends pgbench leaves, so their CPU is counted.
    std::thread::sleep(Duration::from_millis(200));
    let cores = before.cores(&CpuSample::take(pid, t.ep.pid), wall);
    let tps =
        field(&text, "tps = ").with_context(|| format!("no tps in pgbench output:\n{text}"))?;
    let lat = field(&text, "latency average = ");
    let conn_ms = field(&text, "average connection time = ");
    let txns = field(&text, "number of transactions actually processed: ");
    let c = |k: &str| cores[k].as_f64().unwrap_or(f64::NAN);
    progress!(
        "  {:9} {tps:8.0} tps, latency {:.3} ms{}; cores: pgbench {:.2}, postgres {:.2}, \
         daemon {:.2}, relay {:.2}, other {:.2}",
        via.key(),
        lat.unwrap_or(f64::NAN),
        conn_ms.map_or(String::new(), |c| format!(", connection {c:.3} ms")),
        c("pgbench"),
        c("postgres"),
        c("daemon"),
        c("relay"),
        c("other"),
    );
    Ok(json!({
        "via": via.key(), "args": args.join(" "), "tps": tps, "latency_avg_ms": lat,
        "connection_avg_ms": conn_ms, "transactions": txns, "wall_s": wall.as_secs_f64(),
        "cpu_cores": cores, "output": text,
    }))
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// Opens a connection on `path` and runs `SELECT 1`: (connect µs, query µs).
async fn connect_select1(
    cfg: &tokio_postgres::Config,
    tls: &rustls_pg::Rustls,
) -> Result<(u64, u64)> {
    let t = Instant::now();
    let (client, task) = if cfg.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        (client, tokio::spawn(conn))
    } else {
        let (client, conn) = cfg.connect(tls.clone()).await?;
        (client, tokio::spawn(conn))
    };
    let t_conn = t.elapsed();
    let rows = client.simple_query("SELECT 1").await?;
    let t_query = t.elapsed();
    anyhow::ensure!(
        rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("1"))
        ),
        "SELECT 1 did not return 1"
    );
    drop(client);
    let _ = task.await;
    Ok((
        t_conn.as_micros() as u64,
        (t_query - t_conn).as_micros() as u64,
    ))
}

/// A TLS connector for tokio-postgres over the rustls the proxy already links: verifies the
/// server against one trusted certificate (the daemon's own) and offers tls-server-end-point
/// channel binding, as libpq does.
mod rustls_pg {
    use std::future::Future;
    use std::io;
    use std::path::Path;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use anyhow::{Context as _, Result};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

    #[derive(Clone)]
    pub struct Rustls(Arc<ClientConfig>);

    impl Rustls {
        pub fn trusting(cert: &Path) -> Result<Rustls> {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading {}", cert.display()))?
            {
                roots.add(c?)?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Rustls(Arc::new(cfg)))
        }
    }

    pub struct Connect {
        cfg: Arc<ClientConfig>,
        name: ServerName<'static>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for Rustls {
        type Stream = Stream<S>;
        type TlsConnect = Connect;
        type Error = io::Error;

        fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
            // An address is an IP name (the daemon's certificate names 127.0.0.1), else DNS.
            let name = match domain.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(domain.to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            };
            Ok(Connect {
                cfg: self.0.clone(),
                name,
            })
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Connect {
        type Stream = Stream<S>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

        fn connect(self, s: S) -> Self::Future {
            Box::pin(async move {
                let tls = tokio_rustls::TlsConnector::from(self.cfg)
                    .connect(self.name, s)
                    .await?;
                // tls-server-end-point (RFC 5929): the certificate's hash with its signature's
                // hash function, SHA-256 for the certificate the daemon generates.
                let end_point = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| {
                        ring::digest::digest(&ring::digest::SHA256, c.as_ref())
                            .as_ref()
                            .to_vec()
                    });
                Ok(Stream { tls, end_point })
            })
        }
    }

    pub struct Stream<S> {
        tls: tokio_rustls::client::TlsStream<S>,
        end_point: Option<Vec<u8>>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
        fn channel_binding(&self) -> ChannelBinding {
            match &self.end_point {
                Some(h) => ChannelBinding::tls_server_end_point(h.clone()),
                None => ChannelBinding::none(),
            }
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tls).poll_flush(cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
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
    let (ep, _) = lab.start(BRANCH)?;
    let (conn, _) = lab.cli(&["connstr", BRANCH])?;
    let cert = lakelet::proxy::tls::generated_paths(&lab.data_dir).0;
    let tls = rustls_pg::Rustls::trusting(&cert)?;
    let relay = Relay::start(ep.socket_dir.join(format!(".s.PGSQL.{}", ep.port)))?;
    let mut t = Target {
        ep,
        conn,
        relay: relay.addr,
    };
    progress!(
        "compute of {BRANCH}: socket {}; proxy {}:{}; reference relay {}",
        t.ep.socket_dir.display(),
        t.conn["host"].as_str().unwrap_or("?"),
        t.conn["port"],
        t.relay
    );

    // Data: pgbench -i through the proxy (untimed, but its wall time is kept).
    progress!("pgbench -i -s {} through the proxy", cfg.scale);
    let (init_wall, init_text) = pgbench(
        &t.ep.pg_bindir,
        &t.libpq_env(Via::Proxy),
        &["-i", "-s", &cfg.scale.to_string()],
    )?;
    progress!("  {:.1} s", init_wall.as_secs_f64());
    rt.block_on(async {
        let (c, conn) = t
            .pg_config(Via::Direct)?
            .connect(tokio_postgres::NoTls)
            .await?;
        let task = tokio::spawn(conn);
        c.simple_query("CHECKPOINT").await?;
        drop(c);
        let _ = task.await;
        anyhow::Ok(())
    })?;

    // Warm-up, untimed: the first run after the load would otherwise pay for cold caches.
    let warm_secs = cfg.secs.min(5);
    progress!("warm-up: pgbench -S -T {warm_secs} direct and through the proxy");
    for via in [Via::Direct, Via::Proxy] {
        timed_pgbench(lab, &t, via, warm_secs, false)?;
    }

    // 1. select-only, interleaved.
    let n = Via::ALL.len();
    progress!(
        "pgbench -S -c {CLIENTS} -j {THREADS} -T {} x{} rounds: direct, relay, proxy, proxy-tls",
        cfg.secs,
        cfg.rounds
    );
    let mut runs: Vec<Vec<Value>> = vec![Vec::new(); n];
    for r in 0..cfg.rounds {
        progress!("round {}", r + 1);
        for (k, via) in Via::ALL.into_iter().enumerate() {
            runs[k].push(timed_pgbench(lab, &t, via, cfg.secs, false)?);
        }
    }
    progress!("pgbench -S -C (a new connection per transaction): direct, relay, proxy, proxy-tls");
    let mut reconnect = Vec::new();
    for via in Via::ALL {
        reconnect.push(timed_pgbench(lab, &t, via, cfg.secs, true)?);
    }

    // 2. Warm connection setup, interleaved.
    progress!(
        "connect + SELECT 1 x{}: direct, relay, proxy, proxy-tls (compute running)",
        cfg.connects
    );
    let pcfg: Vec<tokio_postgres::Config> = Via::ALL
        .iter()
        .map(|v| t.pg_config(*v))
        .collect::<Result<_>>()?;
    // One of each first, untimed (first-use costs: page faults, the TLS config).
    for c in &pcfg {
        rt.block_on(connect_select1(c, &tls))?;
    }
    let mut conn_us: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut total_us: Vec<Vec<u64>> = vec![Vec::new(); n];
    for _ in 0..cfg.connects {
        for k in 0..n {
            let (c, q) = rt
                .block_on(connect_select1(&pcfg[k], &tls))
                .with_context(|| format!("connect + SELECT 1 ({})", Via::ALL[k].key()))?;
            conn_us[k].push(c);
            total_us[k].push(c + q);
        }
    }
    for (k, via) in Via::ALL.into_iter().enumerate() {
        progress!(
            "  {:9} connect + SELECT 1 p50 {:.2} ms, p95 {:.2} ms",
            via.key(),
            ms(pct(&total_us[k], 0.5)),
            ms(pct(&total_us[k], 0.95))
        );
    }
    drop(relay); // it knows only this compute's socket, which the next part replaces

    // 3. From zero: the proxy's wake-on-connect vs `branch start` + the unix socket.
    progress!(
        "from zero x{}: stop, connect + SELECT 1 through the proxy; stop, branch start, \
         connect + SELECT 1 direct",
        cfg.cold
    );
    let proxy_cfg = t.pg_config(Via::Proxy)?;
    let cold_before = lab.branch_status(BRANCH)?["connections"]["cold_starts"]
        .as_u64()
        .unwrap_or(0);
    let mut cold_proxy: Vec<u64> = Vec::new();
    let mut cold_direct: Vec<u64> = Vec::new();
    let mut cold_direct_start: Vec<u64> = Vec::new();
    for i in 0..cfg.cold {
        lab.stop(BRANCH)?;
        let (c, q) = rt
            .block_on(connect_select1(&proxy_cfg, &tls))
            .context("connect + SELECT 1 through the proxy, compute stopped")?;
        cold_proxy.push(c + q);
        lab.stop(BRANCH)?;
        let t0 = Instant::now();
        let (ep, start_wall) = lab.start(BRANCH)?;
        t.ep = ep;
        rt.block_on(connect_select1(&t.pg_config(Via::Direct)?, &tls))
            .context("connect + SELECT 1 direct after branch start")?;
        cold_direct.push(t0.elapsed().as_micros() as u64);
        cold_direct_start.push(start_wall.as_micros() as u64);
        progress!(
            "  {}: proxy {:.1} ms; branch start + direct {:.1} ms",
            i + 1,
            ms(cold_proxy[i]),
            ms(cold_direct[i])
        );
    }
    let after = lab.branch_status(BRANCH)?;
    let cold_after = after["connections"]["cold_starts"].as_u64().unwrap_or(0);
    if cold_after - cold_before != cfg.cold as u64 {
        progress!(
            "warning: the proxy counted {} cold starts for {} connections to a stopped compute",
            cold_after - cold_before,
            cfg.cold
        );
    }
    let proxy_stats = lab.status()?["proxy"].clone();

    // Summary: ratios against the direct run of the same round.
    let tps: Vec<Vec<f64>> = runs
        .iter()
        .map(|r| {
            r.iter()
                .map(|x| x["tps"].as_f64().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let mut select_only = serde_json::Map::new();
    let mut median_tps = serde_json::Map::new();
    let mut median_lat = serde_json::Map::new();
    for (k, via) in Via::ALL.into_iter().enumerate() {
        select_only.insert(via.key().into(), json!(runs[k]));
        median_tps.insert(via.key().into(), json!(median(&tps[k])));
        let lat: Vec<f64> = runs[k]
            .iter()
            .map(|x| x["latency_avg_ms"].as_f64().unwrap_or(f64::NAN))
            .collect();
        median_lat.insert(via.key().into(), json!(median(&lat)));
        if k > 0 {
            let per_round: Vec<f64> = (0..cfg.rounds)
                .map(|r| ratio(tps[k][r], tps[0][r]))
                .collect();
            select_only.insert(
                format!("ratio_{}_direct", via.key()),
                json!(ratio(median(&tps[k]), median(&tps[0]))),
            );
            select_only.insert(
                format!("per_round_ratio_{}_direct", via.key()),
                json!(per_round),
            );
        }
    }
    select_only.insert("median_tps".into(), Value::Object(median_tps));
    select_only.insert("median_latency_ms".into(), Value::Object(median_lat));
    let mut rc = serde_json::Map::new();
    let mut warm = serde_json::Map::new();
    let f = |v: &Value| v["tps"].as_f64().unwrap_or(f64::NAN);
    for (k, via) in Via::ALL.into_iter().enumerate() {
        rc.insert(via.key().into(), reconnect[k].clone());
        warm.insert(
            via.key().into(),
            json!({ "connect": stats(&conn_us[k]), "total": stats(&total_us[k]) }),
        );
        if k > 0 {
            rc.insert(
                format!("ratio_{}_direct", via.key()),
                json!(ratio(f(&reconnect[k]), f(&reconnect[0]))),
            );
            warm.insert(
                format!("ratio_{}_direct_p50", via.key()),
                json!(ratio(
                    pct(&total_us[k], 0.5) as f64,
                    pct(&total_us[0], 0.5) as f64
                )),
            );
        }
    }
    Ok(json!({
        "config": {
            "secs": cfg.secs, "rounds": cfg.rounds, "scale": cfg.scale,
            "connects": cfg.connects, "cold": cfg.cold,
            "pgbench_clients": CLIENTS, "pgbench_threads": THREADS,
            "lakelet": lab.exe, "pg_bindir": t.ep.pg_bindir, "tmp": lab.tmp.path(),
            "cpus": cpus(), "proxy_relay": relay_mode(),
        },
        "init": { "scale": cfg.scale, "wall_s": init_wall.as_secs_f64(),
                  "pgbench": init_text.lines().find(|l| l.starts_with("done in")) },
        "select_only": select_only,
        "select_only_reconnect": rc,
        "connect_warm": warm,
        "connect_cold": {
            "proxy": stats(&cold_proxy),
            "start_then_direct": stats(&cold_direct),
            "start_cli_wall": stats(&cold_direct_start),
            "ratio_proxy_start_then_direct_p50":
                ratio(pct(&cold_proxy, 0.5) as f64, pct(&cold_direct, 0.5) as f64),
            "proxy_cold_starts_counted": cold_after - cold_before,
        },
        "proxy_stats": proxy_stats,
        "branch_connections": after["connections"],
    }))
}

fn table(r: &Value) -> String {
    let c = &r["config"];
    let so = &r["select_only"];
    let rc = &r["select_only_reconnect"];
    let cw = &r["connect_warm"];
    let cc = &r["connect_cold"];
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let tps = |v: &Value| format!("{:.0} tps", num(v));
    let msv = |v: &Value| format!("{:.2} ms", num(v) / 1000.0);
    let ms2 = |v: &Value| format!("{:.2} ms", num(v));
    let x = |a: &Value, b: &Value| format!("{:.2}×", num(a) / num(b));
    let keys = Via::ALL.map(Via::key);
    // One row: a label, then for each path its figure and (after direct) its ratio to direct.
    let row = |label: String, vals: [&Value; 4], fmt: &dyn Fn(&Value) -> String| {
        let mut cells = vec![label, fmt(vals[0])];
        for v in &vals[1..] {
            cells.push(fmt(v));
            cells.push(x(v, vals[0]));
        }
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = String::from(
        "| measurement | direct (unix socket) | bare relay (TCP) | relay/direct | proxy (TCP) \
         | proxy/direct | proxy + TLS | TLS/direct |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let pgb = format!(
        "pgbench -S -c {CLIENTS} -j {THREADS} -T {}, s={}",
        c["secs"], c["scale"]
    );
    let rounds = c["rounds"].as_u64().unwrap_or(0) as usize;
    for i in 0..rounds {
        out += &row(
            format!("{pgb}, round {}", i + 1),
            keys.map(|k| &so[k][i]["tps"]),
            &tps,
        );
    }
    out += &row(
        format!("{pgb}, median of {rounds}"),
        keys.map(|k| &so["median_tps"][k]),
        &tps,
    );
    out += &row(
        format!("{pgb}, pgbench's latency average, median of {rounds}"),
        keys.map(|k| &so["median_latency_ms"][k]),
        &ms2,
    );
    out += &row(
        format!("{pgb} -C (new connection per transaction)"),
        keys.map(|k| &rc[k]["tps"]),
        &tps,
    );
    out += &row(
        "same -C run: pgbench's average connection time".into(),
        keys.map(|k| &rc[k]["connection_avg_ms"]),
        &ms2,
    );
    for p in ["p50_us", "p95_us"] {
        out += &row(
            format!(
                "tokio-postgres connect + SELECT 1, compute running, {} of {}",
                &p[..3],
                c["connects"]
            ),
            keys.map(|k| &cw[k]["total"][p]),
            &msv,
        );
    }
    for p in ["p50_us", "p95_us"] {
        let (d, q) = (&cc["start_then_direct"][p], &cc["proxy"][p]);
        out += &format!(
            "| from zero (compute stopped), {} of {}: `lakelet branch start` + connect + SELECT 1 \
             direct / connect + SELECT 1 through the proxy | {} | — | — | {} | {} | — | — |\n",
            &p[..3],
            c["cold"],
            msv(d),
            msv(q),
            x(q, d)
        );
    }
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: nothing to run there.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benches/proxy.rs runs only under `cargo bench --bench proxy`");
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
        // `lab` drops here: lakelet down, temporary directory removed.
    });
    finish("proxy", result, table);
}
