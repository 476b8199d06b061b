//! The `lakelet` command line. Everything that touches branches goes through the daemon's API
//! (`lakelet up` starts it); only `export` and the hidden debug commands open the store
//! directly, and only while no daemon holds it.

mod bench;
mod branch;
mod config;
mod connect;
mod daemon;
mod diff;
mod experiment;
mod migrate;
mod policy;
mod project;
mod refactor;
mod scm;
mod tdd;
mod test;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::api::client::Client;
use crate::api::lakebase::client::TargetKind;
use crate::api::Status;
use crate::compute::tree;
use crate::storage::{At, Durability, Options, Store};

#[derive(Parser)]
#[command(
    name = "lakelet",
    version,
    about = "Local copy-on-write branching Postgres"
)]
pub struct Cli {
    /// Where lakelet keeps its state (default: $LAKELET_DATA_DIR, else ./.lakelet).
    #[arg(
        long,
        global = true,
        env = "LAKELET_DATA_DIR",
        default_value = ".lakelet"
    )]
    data_dir: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Where branch commands go: the local daemon (default) or a Lakebase workspace
    /// (DATABRICKS_HOST, DATABRICKS_TOKEN). lakelet.toml's [target] default applies otherwise.
    #[arg(long, global = true, value_enum, env = "LAKELET_TARGET")]
    target: Option<TargetKind>,
    /// The project (Lakebase target; lakelet.toml's [project] id applies otherwise).
    #[arg(long, global = true, env = "LAKELET_PROJECT")]
    project: Option<String>,
    /// Act as this principal (its secret in LAKELET_SECRET); default: $LAKELET_PRINCIPAL, else
    /// the daemon's owner.
    #[arg(long = "as", global = true, value_name = "PRINCIPAL")]
    as_principal: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the daemon in the background (initdb of `main` on first start) and wait until ready.
    Up(daemon::DaemonArgs),
    /// Stop every compute, unmount every view and stop the daemon.
    Down,
    /// Branches, their computes and their storage.
    Status,
    /// Create, list, delete, reset and inspect branches.
    #[command(subcommand)]
    Branch(branch::BranchCmd),
    /// Print the local API's bearer token (for the Databricks SDK: DATABRICKS_TOKEN).
    Token {
        /// DATABRICKS_HOST=… and DATABRICKS_TOKEN=… lines, for `export $(lakelet token --env)`.
        #[arg(long)]
        env: bool,
    },
    /// The dashboard's address, with a one-use sign-in in its fragment (the token never
    /// reaches a server log): open it in a browser. As a principal, with LAKELET_SECRET.
    Dashboard,
    /// Open psql on a branch (its compute starts if stopped): `lakelet psql NAME -- -c 'select 1'`.
    Psql {
        name: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Print a connection string for a branch, through the proxy.
    Connstr {
        name: String,
        #[arg(long, value_enum, default_value = "url")]
        format: connect::Format,
        /// The database on the branch.
        #[arg(long, default_value = "postgres")]
        database: String,
        /// Put the branch in the database name (DB@BRANCH) instead of `options`, for clients
        /// that can set only host, port, user, password and database.
        #[arg(long)]
        fallback: bool,
    },
    /// Import a cluster as a new root branch: a stopped data directory or a live server.
    Import {
        /// A stopped cluster's data directory.
        #[arg(
            long,
            conflicts_with = "from_url",
            required_unless_present = "from_url"
        )]
        pgdata: Option<PathBuf>,
        /// A live server: pg_basebackup, or pg_dump/pg_restore when replication is refused.
        #[arg(long)]
        from_url: Option<String>,
        /// The root branch to create.
        #[arg(long, default_value = "imported")]
        branch: String,
    },
    /// Write a branch (optionally as of a past lsn) to a new directory. The daemon must be down.
    Export {
        dest: PathBuf,
        #[arg(long, default_value = "main")]
        branch: String,
        /// An lsn as the API writes it (`0/11A0`) or in decimal.
        #[arg(long, value_parser = parse_lsn_arg)]
        lsn: Option<u64>,
    },
    /// Run one full garbage-collection pass now.
    Gc,
    /// Scaffold a project here: lakelet.toml (tiers, roles, masking), migrations/, the CI
    /// workflows (.github/workflows/pr.yml, merge.yml, cleanup-orphans.yml) and the SCM state
    /// (.lakebase/workflow-state.json at scaffold-complete). Existing files are kept.
    Init {
        /// Rewrite lakelet.toml and the workflows (never the state file).
        #[arg(long)]
        force: bool,
    },
    /// The SCM gate engine: one command per transition of scaffold-complete → feature-claimed
    /// → pr-ready → ci-green → merged.
    #[command(subcommand)]
    Scm(scm::ScmCmd),
    /// The opt-in TDD layer (`[tdd] enabled = true`): intake, role steps, gates, the locked
    /// test list, red-green-refactor cycles on their own branches, status.
    #[command(subcommand)]
    Tdd(tdd::TddCmd),
    /// A fresh database per test: the template (migrations + seeds), a warm pool, checkout
    /// and release, and `lakelet test -- CMD` to run a test command with all of it.
    Test(test::TestArgs),
    /// What the CI workflows run (the same on a laptop): ci pr, ci merge, ci cleanup-orphans.
    #[command(subcommand)]
    Ci(scm::CiCmd),
    /// Check, show or apply the policy (lakelet.toml's tiers, roles and masking).
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Principals (humans, agents, CI) and their secrets.
    #[command(subcommand)]
    Principal(policy::PrincipalCmd),
    /// Read the audit trail (also `select … from audit` in the proxy's `lakelet` database).
    Audit(policy::AuditArgs),
    /// Promote a tier into its parent: the migrations FROM verified, applied to its parent
    /// behind a snapshot (`lakelet rollback PARENT` undoes it).
    Promote {
        from: String,
        /// The parent tier (checked; the default).
        to: Option<String>,
        /// Only check the chain and print a one-hour write grant on TO (FROM may be a feature
        /// merging into its tier); apply nothing.
        #[arg(long)]
        grant_only: bool,
    },
    /// Repoint a tier at a pre-migration snapshot (default: its newest). Refused, naming the
    /// tables, when the tier took writes after the change being undone.
    Rollback {
        tier: String,
        #[arg(long, value_name = "SNAPSHOT")]
        to: Option<String>,
        /// Roll back even so; what it discards is kept in a backup snapshot for a week.
        #[arg(long)]
        discard_writes_since: bool,
    },
    /// Who the CLI acts as.
    Whoami,
    /// Versioned migrations (Flyway-compatible): migrate, info, validate, repair, baseline,
    /// undo, rehearse on a throwaway branch, lint.
    Migrate(migrate::MigrateArgs),
    /// Named database refactorings (split-column, rename-column, …) written as expand and
    /// contract migrations, and the transitions in flight.
    #[command(subcommand)]
    Refactor(refactor::RefactorCmd),
    /// A/B designs on parallel branches: fork one per design from a tier, apply each design's
    /// migrations, run the same workload on all, record the figures and the decision in
    /// docs/decisions, keep the chosen branch and soft-delete the others.
    Experiment(experiment::ExperimentArgs),
    /// Semantic schema diff between two branches or databases: changes, hazards, and the
    /// SQL migration from BASE to TARGET.
    Diff(diff::DiffArgs),
    /// Measure branch creation against TEMPLATE, pg_dump | pg_restore and a data directory
    /// copy, and pgbench on a branch vs local disk, in one run on its own daemon; writes a
    /// Markdown report, every raw figure as JSON, and SVG plots.
    Bench(bench::BenchArgs),
    /// Run the daemon in the foreground (what `lakelet up` starts).
    #[command(hide = true)]
    Daemon(daemon::DaemonArgs),
    #[command(hide = true, subcommand)]
    Debug(DebugCmd),
}

#[derive(Subcommand)]
enum DebugCmd {
    /// Write and sync in a loop, printing each synced sequence number (the crash test's child).
    CrashWriter,
}

pub(crate) fn print<T: serde::Serialize>(json: bool, v: &T, text: impl FnOnce(&T) -> String) {
    let out = if json {
        serde_json::to_string_pretty(v).expect("serializable")
    } else {
        text(v)
    };
    // `lakelet branch list | head`: a reader that stopped early is not an error (as in rg).
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{out}").and_then(|_| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("writing to stdout: {e}");
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

impl Cli {
    pub fn is_daemon(&self) -> bool {
        matches!(self.cmd, Cmd::Daemon(_))
    }

    pub fn json(&self) -> bool {
        self.json
    }
}

/// An error as `--json` reports it, on stderr: the Databricks shape the API answers with
/// (`error_code`, `message`), plus the policy rule when a rule refused it. The code is the
/// server's when the server answered; a refusal is PERMISSION_DENIED; anything else, which
/// happened here, is INTERNAL_ERROR only if nothing better is known: CLI_ERROR.
pub fn error_json(e: &anyhow::Error) -> serde_json::Value {
    let message = format!("{e:#}");
    let mut v = serde_json::json!({ "error_code": "CLI_ERROR", "message": message });
    if let Some(f) = e.downcast_ref::<crate::api::client::ApiFailure>() {
        v["error_code"] = f.code.clone().into();
        v["status"] = f.status.into();
        // The server's words carry the rule: "refused by policy rule R: …".
        if let Some(rule) = f
            .message
            .split("policy rule ")
            .nth(1)
            .and_then(|r| r.split([':', ')']).next())
        {
            v["rule"] = rule.trim().into();
        }
    } else if let Some(r) = e.downcast_ref::<crate::policy::Refusal>() {
        v["error_code"] = "PERMISSION_DENIED".into();
        v["rule"] = r.rule.clone().into();
    }
    v
}

pub fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    let dd = &cli.data_dir;
    if let Some(p) = &cli.as_principal {
        // Read by the API client (and passed to psql as the proxy user).
        std::env::set_var("LAKELET_PRINCIPAL", p);
    }
    match cli.cmd {
        Cmd::Up(args) => daemon::up(dd, json, &args)?,
        Cmd::Down => daemon::down(dd, json)?,
        Cmd::Daemon(args) => daemon::foreground(dd, &args)?,
        Cmd::Status => {
            let s: Status = Client::connect(dd)?.get("/status")?;
            print(json, &s, status_text);
        }
        Cmd::Branch(b) => {
            let api = config::branches(dd, cli.target, cli.project.as_deref())?;
            branch::run(dd, json, &api, b)?
        }
        Cmd::Token { env } => daemon::token(dd, json, env)?,
        Cmd::Dashboard => daemon::dashboard(dd, json)?,
        Cmd::Psql { name, args } => {
            let api = config::branches(dd, cli.target, cli.project.as_deref())?;
            connect::psql(dd, &api, &name, &args)?
        }
        Cmd::Connstr {
            name,
            format,
            database,
            fallback,
        } => {
            let api = config::branches(dd, cli.target, cli.project.as_deref())?;
            connect::connstr(dd, &api, json, &name, format, &database, fallback)?
        }
        Cmd::Import {
            pgdata,
            from_url,
            branch,
        } => daemon::import(dd, json, pgdata, from_url, &branch)?,
        Cmd::Export { dest, branch, lsn } => {
            let args = serde_json::json!({ "dest": dest, "lsn": lsn });
            let s = open_offline(dd, "export", &branch, &args)?;
            let r = (|| {
                let tl = s.branch_timeline(&branch)?;
                let mut c = tree::export(&s, tl, lsn, &dest, &mut |_| {})?;
                // Once a compute ran, the branch's WAL lives beside the store
                // (compute/wal.rs): a data directory needs it to start. A past --lsn gets what
                // the store held then (the WAL beside it is newer than that lsn).
                if lsn.is_none() {
                    c.bytes += crate::compute::wal::export_live(dd, tl, &dest.join("pg_wal"))?;
                }
                anyhow::Ok(c)
            })();
            offline_audit(dd, "export", &branch, args, &r.as_ref().map(|_| ()))?;
            let c = r?;
            print(json, &c, |c| {
                format!(
                    "exported '{branch}' to {}: {} files, {} bytes",
                    dest.display(),
                    c.files,
                    c.bytes
                )
            });
        }
        Cmd::Gc => {
            let r: crate::storage::GcReport =
                Client::connect(dd)?.post("/gc", &serde_json::json!({}))?;
            print(json, &r, |r| {
                format!(
                    "gc: scanned {} versions, deleted {} ({} bytes), removed {} timelines",
                    r.scanned, r.deleted_versions, r.deleted_bytes, r.removed_timelines
                )
            });
        }
        Cmd::Debug(DebugCmd::CrashWriter) => crash_writer(dd)?,
        Cmd::Init { force } => project::init(dd, json, cli.target, cli.project.as_deref(), force)?,
        Cmd::Scm(c) => scm::scm(dd, json, cli.target, cli.project.as_deref(), c)?,
        Cmd::Tdd(c) => tdd::run(dd, json, cli.target, cli.project.as_deref(), c)?,
        Cmd::Test(a) => test::run(dd, json, a)?,
        Cmd::Ci(c) => scm::ci(dd, json, cli.target, cli.project.as_deref(), c)?,
        Cmd::Rollback {
            tier,
            to,
            discard_writes_since,
        } => scm::rollback(
            dd,
            json,
            cli.target,
            cli.project.as_deref(),
            &tier,
            to.as_deref(),
            discard_writes_since,
        )?,
        Cmd::Policy(c) => policy::policy(dd, json, c)?,
        Cmd::Principal(c) => policy::principal(dd, json, c)?,
        Cmd::Audit(a) => policy::audit(dd, json, a)?,
        Cmd::Promote {
            from,
            to,
            grant_only: true,
        } => {
            let to = to.context("--grant-only needs TO")?;
            policy::promote(dd, json, &from, &to)?
        }
        Cmd::Promote { from, to, .. } => scm::promote(
            dd,
            json,
            cli.target,
            cli.project.as_deref(),
            &from,
            to.as_deref(),
        )?,
        Cmd::Whoami => policy::whoami(dd, json)?,
        Cmd::Migrate(a) => migrate::run(dd, json, cli.target, cli.project.as_deref(), a)?,
        Cmd::Refactor(c) => refactor::run(dd, json, cli.target, cli.project.as_deref(), c)?,
        Cmd::Experiment(a) => experiment::run(dd, json, cli.target, cli.project.as_deref(), a)?,
        Cmd::Diff(a) => diff::run(dd, json, cli.target, cli.project.as_deref(), a)?,
        Cmd::Bench(a) => bench::run(json, a)?,
    }
    Ok(())
}

fn parse_lsn_arg(s: &str) -> Result<u64, String> {
    crate::api::lakebase::validate::parse_lsn("--lsn", s)
}

/// Opens the store without a daemon (export, debugging). RocksDB's lock makes this fail while
/// a daemon runs; say so instead of RocksDB's message.
/// Opens the store with the daemon down, for the data directory's owner only. This path
/// bypasses the daemon, so the policy cannot mediate it: a principal (LAKELET_PRINCIPAL or
/// `--as`) is refused, and both the refusal and the owner's action go into the audit log.
fn open_offline(
    data_dir: &Path,
    action: &str,
    target: &str,
    args: &serde_json::Value,
) -> Result<Store> {
    if let Some(info) = crate::api::client::running_daemon(data_dir) {
        bail!(
            "the lakelet daemon (pid {}) holds the store in {}; run `lakelet down` first",
            info.pid,
            data_dir.display()
        );
    }
    let p = data_dir.join("store");
    if !p.exists() {
        bail!(
            "no lakelet store in {}; `lakelet up` creates one",
            data_dir.display()
        );
    }
    crate::util::private_dir(data_dir, "the data directory")?;
    if let Ok(who) = std::env::var("LAKELET_PRINCIPAL") {
        if !who.is_empty() {
            let why = format!(
                "`lakelet {action}` reads the page store directly, where no policy applies: only \
                 the data directory's owner runs it (without LAKELET_PRINCIPAL or --as); \
                 principal {} may not",
                crate::util::quoted_bounded(&who)
            );
            let e = crate::policy::audit::Entry {
                principal: who,
                via: "cli".into(),
                action: action.into(),
                target: target.into(),
                args: args.clone(),
                allowed: false,
                rule: "offline-owner-only".into(),
                reason: why.clone(),
                ..Default::default()
            };
            crate::policy::audit::AuditLog::open(data_dir)?.append(e)?;
            return Err(crate::policy::Refusal {
                rule: "offline-owner-only".into(),
                reason: why,
            }
            .into());
        }
    }
    Ok(Store::open(&p, Options::default())?)
}

/// Audits what the owner did on the store offline (`open_offline`), with its real outcome.
fn offline_audit(
    data_dir: &Path,
    action: &str,
    target: &str,
    args: serde_json::Value,
    r: &Result<(), &anyhow::Error>,
) -> Result<()> {
    let e = crate::policy::audit::Entry {
        principal: crate::policy::OWNER.into(),
        // As the daemon records its owner (policy::Governor::owner).
        role: "platform".into(),
        via: "cli".into(),
        action: action.into(),
        target: target.into(),
        args,
        allowed: true,
        rule: "offline-owner-only".into(),
        reason: "the data directory's owner, with the daemon down".into(),
        result: match r {
            Ok(()) => "ok".into(),
            Err(e) => format!("error: {e:#}"),
        },
    };
    crate::policy::audit::AuditLog::open(data_dir)?
        .append(e)
        .context("writing the audit record")?;
    Ok(())
}

fn status_text(s: &Status) -> String {
    let mut out = format!(
        "lakelet {} (pid {}), API http://{}, Postgres proxy {} ({} auth), data {}\ncomputes run as '{}', stop after {} s idle; {}\n\n",
        s.daemon.version,
        s.daemon.pid,
        s.daemon.api,
        s.daemon.proxy.as_deref().unwrap_or("-"),
        s.daemon.auth.as_deref().unwrap_or("-"),
        s.daemon.data_dir.display(),
        s.compute_user,
        s.idle_stop_seconds,
        s.postgres
            .iter()
            .map(|p| format!("PostgreSQL {} in {}", p.major, p.bindir.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out += &format!(
        "{:<24} {:<16} {:<9} {:>8} {:>12} {:>12} {:>7} {:>7}",
        "BRANCH", "PARENT", "COMPUTE", "PID", "OWN", "SHARED", "CONNS", "TOTAL"
    );
    for b in &s.branches {
        let u = b.usage.unwrap_or_default();
        out += &format!(
            "\n{:<24} {:<16} {:<9} {:>8} {:>12} {:>12} {:>7} {:>7}",
            b.info.name,
            b.info.parent.as_deref().unwrap_or("-"),
            if b.info.snapshot {
                "snapshot"
            } else {
                &b.compute.state
            },
            b.compute.pid.map(|p| p.to_string()).unwrap_or("-".into()),
            mib(u.own_bytes),
            mib(u.shared_bytes),
            b.connections.active,
            b.connections.total
        );
    }
    out
}

/// The crash test's child: appends numbered records to `log`, creates a file and a branch now
/// and then, runs GC steps, and prints each sequence number only after `sync` returned.
fn crash_writer(data_dir: &std::path::Path) -> Result<()> {
    use crate::storage::{NewNode, ROOT_INO};
    use std::io::Write;
    let p = data_dir.join("store");
    let opts = Options {
        durability: Durability::Fsync,
        ..Options::default()
    };
    let s = Store::open(&p, opts)?;
    if s.branches().is_empty() {
        s.create_root_branch("main", 0, 0)?;
    }
    let tl = s.branch_timeline("main")?;
    let r = s.reader(tl, None)?;
    let log = match r.lookup(ROOT_INO, b"log")? {
        Some(i) => i,
        None => {
            s.create(tl, ROOT_INO, b"log", NewNode::File, 0o600, 0, 0)?
                .0
        }
    };
    drop(r);
    let mut seq = s.reader(tl, None)?.getattr(log)?.size / 100;
    let mut out = std::io::stdout().lock();
    loop {
        let rec = crash_record(seq);
        s.write(tl, log, seq * 100, &rec)?;
        if seq % 7 == 0 {
            let name = format!("f{seq}");
            let (f, _) = s.create(tl, ROOT_INO, name.as_bytes(), NewNode::File, 0o600, 0, 0)?;
            s.write(tl, f, 0, &rec)?;
        }
        if seq % 13 == 0 {
            s.create_branch(&format!("b{seq}"), "main", At::Head)?;
        }
        if seq % 5 == 0 {
            s.gc_step(64)?;
        }
        s.sync()?;
        writeln!(out, "{seq}")?;
        out.flush()?;
        seq += 1;
    }
}

/// The 100-byte record the crash writer stores for sequence number `seq`.
pub fn crash_record(seq: u64) -> Vec<u8> {
    let mut r = format!("record {seq:020} ").into_bytes();
    r.resize(100, b'a' + (seq % 26) as u8);
    r
}
