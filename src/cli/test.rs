//! `lakelet test …`: a fresh database per test. `template` finds or builds the template
//! (src/testdb), `pool`/`checkout`/`release`/`stats` talk to the daemon's pools
//! (api/testpool), and `lakelet test -- CMD` runs a test command with all of it ready:
//!
//! 1. the template for the project's migrations and seeds (built once per content);
//! 2. a pool declared for this run (`--pool`, `[test] pool`);
//! 3. one branch checked out for the run itself (`DATABASE_URL`, `PG*`), and the protocol's
//!    variables so each worker or test checks out its own (`LAKELET_API_URL`,
//!    `LAKELET_API_TOKEN`, `LAKELET_TEST_TEMPLATE`, `LAKELET_TEST_RUN`, `LAKELET_PG*`);
//! 4. CMD, in the same process group (a ^C at the terminal reaches both; a SIGINT or SIGTERM
//!    sent to lakelet alone is passed on);
//! 5. whatever happened, the end of the run: every branch it still holds released, the pool
//!    drained, every deletion done — then lakelet exits with CMD's status.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::print;
use crate::api::client::{seg, Client};
use crate::api::lakebase::client::Branches;
use crate::api::testpool::{Checkout, PoolView, RunEnd, TestStats};
use crate::testdb::{self, Spec, Template};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TestArgs {
    #[command(subcommand)]
    cmd: Option<TestCmd>,
    #[command(flatten)]
    template: TemplateArgs,
    /// Branches kept ready for the run (default: [test] pool, else 4).
    #[arg(long)]
    pool: Option<i64>,
    /// The most the ready computes may take together, in MiB (default: [test]
    /// memory_budget_mb, else no bound).
    #[arg(long)]
    memory_budget_mb: Option<u64>,
    /// The test command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args, Clone, Default)]
struct TemplateArgs {
    /// The branch the template forks (default: [test] from, else the root branch).
    #[arg(long)]
    from: Option<String>,
    /// The migrations directory (default: [migrations] dir, else ./migrations).
    #[arg(long)]
    migrations: Option<PathBuf>,
    /// The seeds directory (default: [test] seeds; none if neither is given).
    #[arg(long)]
    seeds: Option<PathBuf>,
    /// Build the template again even if one with the same content exists.
    #[arg(long)]
    rebuild: bool,
}

#[derive(Subcommand)]
enum TestCmd {
    /// Find or build the template for the project's migrations and seeds; print its name.
    Template(TemplateArgs),
    /// Keep SIZE branches of the template ready, outside any run, until `drain`.
    Pool {
        #[arg(long)]
        size: i64,
        #[arg(long)]
        memory_budget_mb: Option<u64>,
        /// The template (default: the one for the project's migrations and seeds).
        #[arg(long)]
        template: Option<String>,
    },
    /// Drain your standing pool of a template (its ready branches are soft-deleted).
    Drain {
        #[arg(long)]
        template: Option<String>,
    },
    /// Take one fresh database; prints its branch and connection string.
    Checkout {
        #[arg(long)]
        template: Option<String>,
        /// What it is for (shown in the audit).
        #[arg(long)]
        label: Option<String>,
    },
    /// Give a checked-out database back (soft-deletes its branch).
    Release { branch: String },
    /// Checkouts, pool hits and misses, wait times, the pools' memory.
    Stats,
}

pub fn run(dd: &Path, json: bool, a: TestArgs) -> Result<()> {
    match a.cmd {
        Some(TestCmd::Template(t)) => {
            let t = template(dd, &t, json)?;
            print(json, &t, |t| t.name.clone());
        }
        Some(TestCmd::Pool {
            size,
            memory_budget_mb,
            template: t,
        }) => {
            let t = template_name(dd, t, json)?;
            let v: PoolView = Client::connect(dd)?.post(
                "/test/pools",
                &serde_json::json!({ "template": t, "size": size, "memory_budget_mb": memory_budget_mb }),
            )?;
            print(json, &v, |v| {
                format!(
                    "pool of {} keeps {} ready ({} now)",
                    v.template, v.size, v.ready
                )
            });
        }
        Some(TestCmd::Drain { template: t }) => {
            let t = template_name(dd, t, json)?;
            let v: serde_json::Value =
                Client::connect(dd)?.delete(&format!("/test/pools/{}", seg(&t)))?;
            print(json, &v, |v| {
                format!(
                    "drained {}: {} branches soft-deleted",
                    t,
                    v["drained"].as_array().map_or(0, Vec::len)
                )
            });
        }
        Some(TestCmd::Checkout { template: t, label }) => {
            let t = template_name(dd, t, json)?;
            let c = Client::connect(dd)?;
            let co: Checkout = c.post(
                "/test/checkout",
                &serde_json::json!({ "template": t, "label": label }),
            )?;
            let info = super::connect::conn_info(dd, &c, &co.branch, &co.database, false)?;
            let out = CheckedOut {
                url: info.url.clone(),
                checkout: co,
            };
            print(json, &out, |o| format!("{}\n{}", o.checkout.branch, o.url));
        }
        Some(TestCmd::Release { branch }) => {
            let v: serde_json::Value = Client::connect(dd)?
                .post("/test/release", &serde_json::json!({ "branch": branch }))?;
            print(json, &v, |_| format!("released {branch} (soft-deleted)"));
        }
        Some(TestCmd::Stats) => {
            let s: TestStats = Client::connect(dd)?.get("/test/stats")?;
            print(json, &s, stats_text);
        }
        None => run_command(dd, json, a)?,
    }
    Ok(())
}

#[derive(Serialize)]
struct CheckedOut {
    #[serde(flatten)]
    checkout: Checkout,
    url: String,
}

/// The template named, else `LAKELET_TEST_TEMPLATE`, else the project's (built if needed).
fn template_name(dd: &Path, named: Option<String>, json: bool) -> Result<String> {
    if let Some(t) = named.or_else(|| std::env::var("LAKELET_TEST_TEMPLATE").ok()) {
        return Ok(t);
    }
    Ok(template(dd, &TemplateArgs::default(), json)?.name)
}

/// The project's template: lakelet.toml's `[migrations]` and `[test]` under the flags.
fn template(dd: &Path, a: &TemplateArgs, json: bool) -> Result<Template> {
    let cfg = super::config::load()?;
    let base = cfg.base_dir();
    let (migrations, settings) = super::migrate::configured(a.migrations.clone())?;
    if !migrations.is_dir() {
        bail!(
            "no migrations directory at {}: a template is the project's migrations applied \
             (set [migrations] dir in lakelet.toml, or pass --migrations DIR)",
            migrations.display()
        );
    }
    let seeds = a
        .seeds
        .clone()
        .or_else(|| cfg.test.seeds.as_ref().map(|s| base.join(s)));
    let ttl = match &cfg.test.template_ttl {
        Some(t) => humantime::parse_duration(t)
            .with_context(|| format!("[test] template_ttl {t:?} is not a duration (7d, 12h)"))?,
        None => Duration::from_secs(7 * 24 * 3600),
    };
    let api = Branches::local(dd)?;
    let from = match a.from.clone().or(cfg.test.from.clone()) {
        Some(f) => f,
        None => api.default_branch()?,
    };
    let spec = Spec {
        from,
        migrations,
        seeds,
        settings,
        ttl,
        rebuild: a.rebuild,
        prefix: crate::api::client::acting_principal()?.map(|(p, _)| p),
    };
    let daemon = Local { dd, api: &api };
    testdb::ensure(&api, &daemon, &spec, &mut |line| {
        if !json {
            eprintln!("{line}");
        }
    })
}

struct Local<'a> {
    dd: &'a Path,
    api: &'a Branches,
}

impl testdb::template::Daemon for Local<'_> {
    fn url(&self, branch: &str) -> Result<String> {
        Ok(super::connect::target_info(self.dd, self.api, branch, "postgres", false)?.url)
    }

    fn stop(&self, branch: &str) -> Result<()> {
        let _: serde_json::Value = Client::connect(self.dd)?.post(
            &format!("/branches/{}/stop", seg(branch)),
            &serde_json::json!({}),
        )?;
        Ok(())
    }
}

fn stats_text(s: &TestStats) -> String {
    let mut out = format!("{} checked out, {} releasing\n", s.checked_out, s.releasing);
    if s.pools.is_empty() {
        out += "no pools";
    }
    for p in &s.pools {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        out += &format!(
            "{} ({}): size {}, ready {}, filling {}; {} checkouts, {} hits, {} misses; wait p50 {}, p95 {}, max {}{}{}\n",
            p.template,
            p.principal,
            p.size,
            p.ready,
            p.filling,
            p.checkouts,
            p.hits,
            p.misses,
            ms(p.wait_ms.p50),
            ms(p.wait_ms.p95),
            ms(p.wait_ms.max),
            p.pss_bytes
                .map(|b| format!("; ready computes {}", super::mib(b)))
                .unwrap_or_default(),
            p.last_error
                .as_ref()
                .map(|e| format!("; last fill error: {e}"))
                .unwrap_or_default(),
        );
    }
    out.trim_end().to_string()
}

/// The last SIGINT or SIGTERM lakelet got while the test command ran (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM (a handler, not SIG_IGN: the command must not inherit an
/// ignored ^C, and an exec resets handlers to the default).
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[derive(Serialize)]
struct RunReport {
    template: Template,
    run: String,
    branch: String,
    exit_code: i32,
    end: Option<RunEnd>,
}

fn run_command(dd: &Path, json: bool, a: TestArgs) -> Result<()> {
    let Some(program) = a.command.first() else {
        bail!("name the test command after `--`: lakelet test -- pytest -n 4");
    };
    let cfg = super::config::load()?;
    let c = Client::connect(dd)?;
    let size = a.pool.or(cfg.test.pool).unwrap_or(4);
    if size < 1 {
        bail!(
            "a pool of {size} keeps no branch ready: give --pool 1 or more (each test then takes \
             a branch already started)"
        );
    }
    let t = template(dd, &a.template, json)?;
    let run = format!(
        "run-{}",
        crate::util::hex(&crate::util::random_bytes::<4>())
    );
    let budget = a.memory_budget_mb.or(cfg.test.memory_budget_mb);
    catch_signals();
    let end =
        || -> Result<RunEnd> { c.post(&format!("/test/runs/{run}/end"), &serde_json::json!({})) };
    let started = (|| -> Result<(Checkout, std::process::ExitStatus)> {
        let _: PoolView = c.post(
            "/test/pools",
            &serde_json::json!({ "template": t.name, "size": size, "memory_budget_mb": budget, "run": run }),
        )?;
        let co: Checkout = c.post(
            "/test/checkout",
            &serde_json::json!({ "template": t.name, "run": run, "label": "run" }),
        )?;
        let info = super::connect::conn_info(dd, &c, &co.branch, &co.database, false)?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(&a.command[1..]);
        cmd.envs(info.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.env("DATABASE_URL", &info.url)
            .env(
                "LAKELET_API_URL",
                format!("http://{}/lakelet/v1", c.daemon().api),
            )
            .env("LAKELET_API_TOKEN", c.bearer())
            .env("LAKELET_TEST_TEMPLATE", &t.name)
            .env("LAKELET_TEST_RUN", &run)
            .env("LAKELET_PGHOST", &info.host)
            .env("LAKELET_PGPORT", info.port.to_string())
            .env("LAKELET_PGUSER", &info.user)
            .env("LAKELET_PGDATABASE", &info.database);
        match &info.password {
            Some(p) => cmd.env("LAKELET_PGPASSWORD", p),
            None => cmd.env_remove("LAKELET_PGPASSWORD"),
        };
        if SIGNALLED.load(Ordering::SeqCst) != 0 {
            bail!("interrupted before the test command started");
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the test command {program:?}"))?;
        let mut passed_on = false;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            let sig = SIGNALLED.load(Ordering::SeqCst);
            if sig != 0 && !passed_on {
                // A ^C at the terminal reached the command too; a signal sent to lakelet
                // alone did not. Once is enough either way.
                unsafe { libc::kill(child.id() as i32, sig) };
                passed_on = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok((co, status))
    })();
    let ended = end();
    let (co, status) = match started {
        Ok(x) => x,
        Err(e) => {
            if let Err(end_err) = &ended {
                eprintln!("lakelet test: ending run {run} failed too: {end_err:#}");
            }
            return Err(e);
        }
    };
    let ended =
        ended.with_context(|| format!("ending run {run} (its branches expire in a day)"))?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let report = RunReport {
        template: t,
        run,
        branch: co.branch,
        exit_code: code,
        end: Some(ended),
    };
    let summary = |r: &RunReport| {
        let e = r.end.as_ref().unwrap();
        format!(
            "lakelet test: {} exited {}; run {} released {} branches, drained {}",
            program,
            r.exit_code,
            r.run,
            e.released.len(),
            e.drained.len()
        )
    };
    if json {
        print(true, &report, |_| String::new());
    } else {
        eprintln!("{}", summary(&report));
    }
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
