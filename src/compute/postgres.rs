//! One Postgres process: initdb, start, readiness, the few SQL calls the daemon makes (CHECKPOINT,
//! counting client sessions), and stop. It knows paths and a user, never pages.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

use super::pg::PgInstall;
use super::user::ComputeUser;

/// util-linux's setpriv (Debian: essential): runs a program as another uid and gid.
const SETPRIV: &str = "/usr/bin/setpriv";

/// Every compute listens on this port number inside its own socket directory.
pub const PORT: u16 = 5432;
/// The superuser lakelet creates with initdb and uses for CHECKPOINT and monitoring.
pub const SUPERUSER: &str = "postgres";

/// Settings appended to postgresql.conf of a cluster lakelet initdb's, sized so dozens of idle
/// computes fit on a laptop (about 40 MB resident each). docs/ARCHITECTURE.md explains each;
/// a user can change them like any Postgres setting (ALTER SYSTEM, postgresql.conf).
pub const TUNED_CONF: &str =
    "\n# --- lakelet defaults: small enough for dozens of computes on one laptop ---\n\
shared_buffers = 32MB\n\
max_connections = 50\n\
max_worker_processes = 4\n\
max_parallel_workers = 2\n\
max_parallel_workers_per_gather = 1\n\
autovacuum_max_workers = 2\n\
maintenance_work_mem = 32MB\n\
min_wal_size = 32MB\n\
max_wal_size = 512MB\n\
huge_pages = off\n\
dynamic_shared_memory_type = posix\n\
# copy-on-write storage: a new WAL segment costs nothing to create, zero-filling or\n\
# recycling one only writes pages that are never read\n\
wal_init_zero = off\n\
wal_recycle = off\n";

fn command(pg: &PgInstall, bin: &str, user: &ComputeUser, log: &Path) -> Result<Command> {
    // The switch to the compute's uid is setpriv's, not a `Command::uid`: with a uid to set,
    // the standard library forks, and a fork copies the daemon's page tables (its RocksDB
    // cache makes them large: 41% of the daemon's CPU in a test-per-branch suite went to
    // `copy_page_range`). Without one it uses posix_spawn (vfork): no copy. setpriv drops the
    // supplementary groups as `Command::uid` does, and execs in place (same pid).
    let mut c = if user.switch {
        let mut c = Command::new(SETPRIV);
        c.arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--clear-groups", "--"])
            .arg(pg.bin(bin));
        c
    } else {
        Command::new(pg.bin(bin))
    };
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening the compute log {}", log.display()))?;
    c.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .current_dir("/")
        .env_remove("PGDATA")
        .env("LC_ALL", "C.UTF-8")
        // Its own process group: stopping the compute can signal every backend at once, and a
        // ^C at the daemon's terminal does not reach it.
        .process_group(0)
        .kill_on_drop(false);
    Ok(c)
}

/// Creates a new cluster in `pgdata` (an empty directory owned by the compute user).
pub async fn initdb(pg: &PgInstall, user: &ComputeUser, pgdata: &Path, log: &Path) -> Result<()> {
    let status = command(pg, "initdb", user, log)?
        .arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            // One store sync afterwards replaces initdb's fsync of every file.
            "--no-sync",
        ])
        .status()
        .await
        .context("running initdb")?;
    if !status.success() {
        bail!(
            "initdb failed ({status}); its output is in {}:\n{}",
            log.display(),
            tail(log, 15)
        );
    }
    let conf = pgdata.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).context("reading postgresql.conf")?;
    text.push_str(TUNED_CONF);
    std::fs::write(&conf, text).context("writing postgresql.conf")?;
    Ok(())
}

/// A running postmaster.
pub struct Postgres {
    child: Child,
    pub pid: u32,
    pub sockdir: PathBuf,
    pub log: PathBuf,
}

/// The last `n` lines of a log, for error messages.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Postgres {
    /// Starts the postmaster on `pgdata`, listening only on a unix socket in `sockdir`.
    pub fn spawn(
        pg: &PgInstall,
        user: &ComputeUser,
        pgdata: &Path,
        sockdir: &Path,
        log: &Path,
        name: &str,
        extra: &[String],
    ) -> Result<Postgres> {
        let mut cmd = command(pg, "postgres", user, log)?;
        for e in extra {
            cmd.arg("-c").arg(e);
        }
        let child = cmd
            .arg("-D")
            .arg(pgdata)
            .arg("-p")
            .arg(PORT.to_string())
            .arg("-c")
            .arg("listen_addresses=")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", sockdir.display()))
            .arg("-c")
            .arg("unix_socket_permissions=0700")
            .arg("-c")
            .arg("logging_collector=off")
            .arg("-c")
            .arg(format!("cluster_name=lakelet/{name}"))
            .spawn()
            .with_context(|| format!("starting {}", pg.bin("postgres").display()))?;
        let pid = child.id().context("postgres exited at once")?;
        Ok(Postgres {
            child,
            pid,
            sockdir: sockdir.to_path_buf(),
            log: log.to_path_buf(),
        })
    }

    pub fn config(&self) -> tokio_postgres::Config {
        config(&self.sockdir)
    }

    /// Waits until the server answers a query (crash recovery included), it exits, or `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last_err = String::new();
        while start.elapsed() < timeout {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "postgres exited during startup ({st}); last lines of {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 15)
                );
            }
            // The socket appears once the postmaster listens; until then a connect is a
            // wasted round trip, and a stat is cheap enough to ask every 2 ms. (Reading
            // postmaster.pid's status line instead, as `pg_ctl -w` does, raced the
            // postmaster's own rewrites of it through the view: see docs/ARCHITECTURE.md.)
            if !self.sockdir.join(format!(".s.PGSQL.{PORT}")).exists() {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            match query_one(&self.sockdir, "SELECT 1").await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    // Any answer from the server other than "starting up" means it accepts
                    // connections: a cluster without our superuser or database still runs.
                    let code = e
                        .downcast_ref::<tokio_postgres::Error>()
                        .and_then(|e| e.code().cloned());
                    match code {
                        Some(c) if c != tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW => {
                            tracing::warn!(log = %self.log.display(), "compute is up but answers: {e:#}");
                            return Ok(());
                        }
                        _ => last_err = format!("{e:#}"),
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!(
            "postgres did not become ready within {timeout:?} (last error: {last_err}); see {}",
            self.log.display()
        )
    }

    /// Whether the postmaster has exited (and reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the server: fast shutdown (SIGINT: roll back sessions, checkpoint), then immediate
    /// (SIGQUIT) after `grace`, then SIGKILL to the whole process group.
    pub async fn stop(self, grace: Duration) -> Result<()> {
        self.stop_with(&[
            (libc::SIGINT, grace),
            (libc::SIGQUIT, Duration::from_secs(5)),
        ])
        .await
    }

    /// Immediate shutdown (SIGQUIT, then SIGKILL): no shutdown checkpoint, and no switch to a
    /// new WAL segment (with archiving on, a fast shutdown writes the rest of its 16 MiB
    /// segment as zeros). What is left is a state a crash could have left; the next start
    /// recovers it. For branches whose data nobody waits for (a released test database).
    pub async fn stop_immediately(self) -> Result<()> {
        self.stop_with(&[(libc::SIGQUIT, Duration::from_secs(5))])
            .await
    }

    async fn stop_with(mut self, steps: &[(libc::c_int, Duration)]) -> Result<()> {
        let pid = self.pid as i32;
        for &(sig, wait) in steps {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            unsafe { libc::kill(pid, sig) };
            if tokio::time::timeout(wait, self.child.wait()).await.is_ok() {
                return Ok(());
            }
            tracing::warn!(pid, signal = sig, "postgres did not stop in {wait:?}");
        }
        kill_tree(self.pid);
        self.child.wait().await?;
        Ok(())
    }
}

/// SIGKILLs a postmaster and its children. Postgres puts every child in a session of its own
/// (setsid), so signalling the postmaster's process group does not reach them, and a child
/// whose files went away (a dead view) may never notice its postmaster died.
pub fn kill_tree(postmaster: u32) {
    let children = children_of(postmaster);
    unsafe { libc::kill(postmaster as i32, libc::SIGKILL) };
    for c in children {
        unsafe { libc::kill(c, libc::SIGKILL) };
    }
}

/// The processes whose parent is `pid` (a postmaster's backends and workers).
pub fn children_of(pid: u32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| parent_of(*p) == Some(pid as i32))
        .collect()
}

/// The parent pid from /proc/PID/stat ("pid (comm) state ppid …"; comm may hold spaces).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How the daemon reaches a compute: its private socket, as the superuser.
pub fn config(sockdir: &Path) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host_path(sockdir)
        .port(PORT)
        .user(SUPERUSER)
        .dbname("postgres")
        .application_name("lakelet")
        .connect_timeout(Duration::from_secs(5));
    c
}

/// Runs one statement and returns the first column of the first row as text, if any.
pub async fn query_one(sockdir: &Path, sql: &str) -> Result<Option<String>> {
    let (client, conn) = config(sockdir)
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to the compute at {}", sockdir.display()))?;
    let task = tokio::spawn(conn);
    let rows = client.simple_query(sql).await;
    drop(client);
    let _ = task.await;
    let rows = rows.with_context(|| format!("running {sql:?}"))?;
    for r in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = r {
            return Ok(row.get(0).map(str::to_string));
        }
    }
    Ok(None)
}

/// Client sessions connected now (the daemon's own monitoring session excluded).
pub async fn client_sessions(sockdir: &Path) -> Result<u64> {
    let n = query_one(
        sockdir,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .await?;
    Ok(n.and_then(|s| s.parse().ok()).unwrap_or(0))
}
