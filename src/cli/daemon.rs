//! `lakelet up`, `down`, the foreground daemon, and `import` (a long operation with progress).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::api::client::{alive, running_daemon, Client};
use crate::api::daemon::DaemonConfig;
use crate::api::{ImportRequest, Operation};
use crate::compute::Settings;
use crate::proxy::{AuthMode, ProxyConfig, Relay};

fn auth_name(m: AuthMode) -> &'static str {
    match m {
        AuthMode::Scram => "scram",
        AuthMode::Password => "password",
        AuthMode::Trust => "trust",
    }
}

/// How the daemon runs; `lakelet up` passes these on to it.
#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// Port of the control API on 127.0.0.1 (0 picks a free one; the CLI finds it in
    /// DATA/daemon.json).
    #[arg(long, default_value_t = 0)]
    api_port: u16,
    /// Stop a compute after this long without a client session ("0s" never stops).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    idle_stop: Duration,
    /// Do not ask a running parent for a CHECKPOINT before branching from it.
    #[arg(long)]
    no_checkpoint_before_branch: bool,
    /// Directory with the Postgres binaries (default: pg_config on PATH, /usr/lib/postgresql/*).
    #[arg(long, env = "LAKELET_PG_BINDIR")]
    pg_bindir: Option<PathBuf>,
    /// The unprivileged user computes run as when the daemon runs as root (created if missing).
    #[arg(long, env = "LAKELET_COMPUTE_USER", default_value = "lakelet")]
    compute_user: String,
    /// How long a compute may take to start (crash recovery included).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    start_timeout: Duration,
    /// Port of the Postgres proxy, the one address for every branch (0 picks a free one).
    #[arg(long, env = "LAKELET_PROXY_PORT", default_value_t = 5432)]
    proxy_port: u16,
    /// Address the proxy listens on. Anything but loopback exposes every branch to the network
    /// (behind the proxy's authentication).
    #[arg(long, default_value = "127.0.0.1")]
    proxy_host: std::net::IpAddr,
    /// How the proxy authenticates clients.
    #[arg(long, value_enum, default_value_t = AuthMode::Scram)]
    auth: AuthMode,
    /// TLS certificate (PEM) for the proxy; default: a self-signed one in DATA/tls/.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a client may take from connecting to being authenticated.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, hide = true)]
    proxy_handshake_timeout: Duration,
    /// Where the proxy copies a plain (non-TLS) session's bytes once it has started: `auto`
    /// relays them inside the kernel (eBPF sockmap) where the kernel and privileges allow,
    /// else in the daemon; `user` always in the daemon.
    #[arg(long, value_enum, default_value_t = Relay::Auto)]
    proxy_relay: Relay,
    /// How long a connecting client waits for its branch's compute to start.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    proxy_start_wait: Duration,
    /// How often the idle reaper checks computes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, hide = true)]
    reap_every: Duration,
    /// The project id the Lakebase-shaped API serves (default: lakelet.toml's [project] id,
    /// else `local`).
    #[arg(long = "api-project")]
    api_project: Option<String>,
    /// How long history is kept for point-in-time branches and undelete (the GC window; the
    /// project's history_retention_duration).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    history_retention: Duration,
    /// Every state newer than this can be a point-in-time branch point (the store's fine
    /// window); older ones only at restore points.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    fine_window: Duration,
    /// The lakelet.toml whose policy (tiers, roles, masking) the daemon enforces. Default: the
    /// nearest lakelet.toml, if it declares one. The root tier names the root branch.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// How often each branch's storage is sampled for the dashboard's history plot.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, hide = true)]
    storage_sample_every: Duration,
    /// How often background GC runs (tests lengthen it to observe GC on demand).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, hide = true)]
    gc_every: Duration,
}

impl DaemonArgs {
    fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            format!("--api-port={}", self.api_port),
            format!("--idle-stop={}s", self.idle_stop.as_secs()),
            format!("--compute-user={}", self.compute_user),
            format!("--start-timeout={}s", self.start_timeout.as_secs()),
            format!("--reap-every={}ms", self.reap_every.as_millis()),
            format!("--gc-every={}s", self.gc_every.as_secs()),
            format!(
                "--storage-sample-every={}ms",
                self.storage_sample_every.as_millis()
            ),
            format!("--proxy-port={}", self.proxy_port),
            format!("--proxy-host={}", self.proxy_host),
            format!("--auth={}", auth_name(self.auth)),
            format!(
                "--proxy-handshake-timeout={}ms",
                self.proxy_handshake_timeout.as_millis()
            ),
            format!("--proxy-start-wait={}ms", self.proxy_start_wait.as_millis()),
            format!(
                "--proxy-relay={}",
                match self.proxy_relay {
                    Relay::Auto => "auto",
                    Relay::User => "user",
                }
            ),
            format!("--history-retention={}s", self.history_retention.as_secs()),
            format!("--fine-window={}ms", self.fine_window.as_millis()),
        ];
        if let Some(p) = &self.api_project {
            v.push(format!("--api-project={p}"));
        }
        if let Some(p) = &self.policy {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            v.push(format!("--policy={}", abs.display()));
        }
        if let (Some(c), Some(k)) = (&self.tls_cert, &self.tls_key) {
            // The daemon runs from another directory: pass absolute paths.
            let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            v.push(format!("--tls-cert={}", abs(c).display()));
            v.push(format!("--tls-key={}", abs(k).display()));
        }
        if self.no_checkpoint_before_branch {
            v.push("--no-checkpoint-before-branch".into());
        }
        if let Some(d) = &self.pg_bindir {
            v.push(format!("--pg-bindir={}", d.display()));
        }
        v
    }

    fn config(&self, data_dir: &Path) -> DaemonConfig {
        // The root branch is the policy's root tier: the file given, else the active one.
        let root = [self.policy.clone(), Some(data_dir.join("policy.toml"))]
            .into_iter()
            .flatten()
            .find_map(|p| {
                let text = std::fs::read_to_string(&p).ok()?;
                crate::policy::file::parse(&p.display().to_string(), &text)
                    .ok()
                    .map(|pol| pol.root)
            })
            .unwrap_or_else(|| Settings::default().root_branch);
        DaemonConfig {
            policy: self.policy.clone(),
            data_dir: data_dir.to_path_buf(),
            api_port: self.api_port,
            settings: Settings {
                idle_stop: self.idle_stop,
                checkpoint_before_branch: !self.no_checkpoint_before_branch,
                start_timeout: self.start_timeout,
                pg_bindir: self.pg_bindir.clone(),
                compute_user: self.compute_user.clone(),
                root_branch: root,
                ..Settings::default()
            },
            gc_every: self.gc_every,
            sample_every: self.storage_sample_every,
            reap_every: self.reap_every,
            project: self.api_project.clone().unwrap_or_else(|| "local".into()),
            history_retention: self.history_retention,
            fine_window: self.fine_window,
            proxy: ProxyConfig {
                listen: std::net::SocketAddr::new(self.proxy_host, self.proxy_port),
                auth: self.auth,
                tls: self.tls_cert.clone().zip(self.tls_key.clone()),
                handshake_timeout: self.proxy_handshake_timeout,
                start_wait: self.proxy_start_wait,
                relay: self.proxy_relay,
                ..ProxyConfig::local(self.proxy_port)
            },
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    crate::util::private_dir(p, "the data directory")?;
    p.canonicalize()
        .with_context(|| format!("resolving {}", p.display()))
}

pub fn foreground(data_dir: &Path, args: &DaemonArgs) -> Result<()> {
    let data_dir = absolute(data_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::api::daemon::run(args.config(&data_dir)))
}

pub fn up(data_dir: &Path, json: bool, args: &DaemonArgs) -> Result<()> {
    let data_dir = absolute(data_dir)?;
    // Resolved here, where lakelet.toml is (the daemon runs from elsewhere).
    let mut args = args.clone();
    args.api_project = Some(super::config::project_id(args.api_project.as_deref())?);
    if args.policy.is_none() {
        args.policy = super::config::policy_file()?;
    }
    if let Some(p) = &args.policy {
        // Refused here, with the line and field, rather than in the daemon's log.
        super::policy::check_file(p)?;
    }
    let args = &args;
    if let Some(info) = running_daemon(&data_dir) {
        if crate::api::client::answers(&info.api) {
            crate::cli::print(json, &info, |i| {
                format!(
                    "lakelet is already running (pid {}, API http://{})",
                    i.pid, i.api
                )
            });
            return Ok(());
        }
        // Recorded but silent: a daemon being torn down (just SIGKILLed) or a hung one.
        let t = Instant::now();
        while alive(info.pid) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(info.pid) {
            bail!(
                "lakelet (pid {}) holds the data directory {} but its API at {} does not answer; \
                 stop it (`kill {}`) and run `lakelet up` again",
                info.pid,
                data_dir.display(),
                info.api,
                info.pid
            );
        }
    }
    let _ = std::fs::remove_file(crate::api::info_path(&data_dir));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir.join("logs"))?;
    }
    let log_path = data_dir.join("logs").join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the lakelet executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own session: closing the terminal or ^C here does not reach it.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the lakelet daemon")?;
    let t = Instant::now();
    let mut said = false;
    loop {
        if let Some(st) = child.try_wait()? {
            bail!(
                "the lakelet daemon exited during startup ({st}); last lines of {}:\n{}",
                log_path.display(),
                crate::compute::postgres::tail(&log_path, 20)
            );
        }
        if let Some(info) = running_daemon(&data_dir) {
            if info.pid == child.id() {
                crate::cli::print(json, &info, |i| {
                    format!(
                        "lakelet is up: Postgres on {} (every branch; `lakelet connstr main`), \
                         pid {}, API http://{}, data {}, log {}",
                        i.proxy.as_deref().unwrap_or("-"),
                        i.pid,
                        i.api,
                        i.data_dir.display(),
                        log_path.display()
                    )
                });
                return Ok(());
            }
        }
        if !said && t.elapsed() > Duration::from_secs(2) && !json {
            eprintln!("waiting for the daemon (the first start runs initdb for 'main')...");
            said = true;
        }
        if t.elapsed() > Duration::from_secs(600) {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            bail!(
                "the lakelet daemon did not become ready in 10 minutes; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `lakelet token`: the local API's bearer token, alone or as the SDK's environment.
/// `lakelet dashboard`: the page's address; the fragment `#token=` is read by the page, sent
/// once to open a cookie session, and removed from the address bar.
pub fn dashboard(data_dir: &Path, json: bool) -> Result<()> {
    let info = running_daemon(data_dir).with_context(|| {
        format!(
            "no daemon is running for {} (start it with `lakelet up{}`)",
            data_dir.display(),
            crate::api::client::data_dir_flag(data_dir)
        )
    })?;
    let secret = match std::env::var("LAKELET_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(s) => s,
        None => std::fs::read_to_string(crate::api::token_path(data_dir))
            .context("reading the API token (are you the user who ran `lakelet up`?)")?
            .trim()
            .to_string(),
    };
    let base = format!("http://{}/ui/", info.api);
    let url = format!("{base}#token={secret}");
    let v = serde_json::json!({ "url": url, "page": base });
    crate::cli::print(json, &v, |_| url.clone());
    Ok(())
}

pub fn token(data_dir: &Path, json: bool, env: bool) -> Result<()> {
    let path = crate::api::token_path(data_dir);
    let token = std::fs::read_to_string(&path)
        .with_context(|| {
            format!(
                "reading {} (`lakelet up{}` creates it; are you the user who ran it?)",
                path.display(),
                crate::api::client::data_dir_flag(data_dir)
            )
        })?
        .trim()
        .to_string();
    let host = running_daemon(data_dir).map(|i| format!("http://{}", i.api));
    let v = serde_json::json!({ "token": token, "host": host });
    crate::cli::print(json, &v, |_| {
        if env {
            let mut out = String::new();
            if let Some(h) = &host {
                out += &format!(
                    "DATABRICKS_HOST={h}
"
                );
            }
            out + &format!("DATABRICKS_TOKEN={token}")
        } else {
            token.clone()
        }
    });
    Ok(())
}

pub fn down(data_dir: &Path, json: bool) -> Result<()> {
    let Some(info) = running_daemon(data_dir) else {
        crate::cli::print(json, &serde_json::json!({ "running": false }), |_| {
            "lakelet is not running".to_string()
        });
        return Ok(());
    };
    let c = Client::connect(data_dir)?;
    let _: serde_json::Value = c.post("/shutdown", &serde_json::json!({}))?;
    let t = Instant::now();
    while alive(info.pid) {
        // Reap it if we are its parent (tests); otherwise just wait for it to go.
        unsafe { libc::waitpid(info.pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        if t.elapsed() > Duration::from_secs(180) {
            bail!(
                "the lakelet daemon (pid {}) did not stop within 3 minutes; see {}",
                info.pid,
                data_dir.join("logs").join("daemon.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::cli::print(
        json,
        &serde_json::json!({ "running": false, "pid": info.pid }),
        |_| format!("lakelet stopped (pid {})", info.pid),
    );
    Ok(())
}

pub fn import(
    data_dir: &Path,
    json: bool,
    pgdata: Option<PathBuf>,
    url: Option<String>,
    branch: &str,
) -> Result<()> {
    let c = Client::connect(data_dir)?;
    let pgdata = pgdata.map(|p| p.canonicalize().unwrap_or(p));
    let req = ImportRequest {
        branch: branch.to_string(),
        pgdata,
        url,
    };
    let mut op: Operation = c.post("/import", &req)?;
    let id = op.name.trim_start_matches("operations/").to_string();
    let t = Instant::now();
    let tty = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_line = Instant::now();
    while !op.done {
        std::thread::sleep(Duration::from_millis(200));
        op = c.get(&format!("/operations/{id}"))?;
        let p = &op.progress;
        let line = match p.total_bytes {
            Some(total) if total > 0 => {
                let pct = (p.bytes as f64 / total as f64 * 100.0).min(100.0);
                let bar = "#".repeat((pct / 5.0) as usize);
                format!(
                    "{:<26} [{bar:<20}] {pct:5.1}% {} / {} MiB",
                    p.step,
                    p.bytes >> 20,
                    total >> 20
                )
            }
            _ => format!("{:<26} {} MiB", p.step, p.bytes >> 20),
        };
        if tty {
            eprint!("\r{line}");
            std::io::stderr().flush().ok();
        } else if !json && last_line.elapsed() > Duration::from_secs(5) {
            eprintln!("{line}");
            last_line = Instant::now();
        }
    }
    if tty {
        eprintln!();
    }
    if let Some(e) = &op.error {
        bail!("import into '{branch}' failed: {}", e.message);
    }
    let r = op.response.clone().unwrap_or_default();
    crate::cli::print(json, &r, |r| {
        format!(
            "imported into new root branch '{branch}' by {} : {} MiB in {:.1?}",
            r["method"].as_str().unwrap_or("?"),
            r["bytes"].as_u64().unwrap_or(0) >> 20,
            t.elapsed()
        )
    });
    Ok(())
}
