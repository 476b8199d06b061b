//! Everything one `lakelet bench` run starts, and its teardown: a private daemon (its own data
//! directory, a free API port and a free proxy port) and native Postgres clusters on the same
//! disk, all under one work directory that is removed at the end, whatever happened.
//!
//! The daemon is a child `lakelet up` started from inside the work directory, so a
//! lakelet.toml where the user stands (a policy, a Lakebase target) cannot change what is
//! measured, and the user's own daemon is never touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::Command;

use crate::api::lakebase::client::Branches;
use crate::compute::pg::PgInstall;
use crate::compute::postgres::{self, Postgres};
use crate::compute::user::ComputeUser;

/// How the bench reaches a branch through the proxy: (daemon data dir, branch, database) →
/// a libpq URL. The CLI supplies it, so connection details have one definition.
pub type UrlFn = dyn Fn(&Path, &str, &str) -> Result<String>;

pub struct Lab {
    /// The work directory: `<--work>/lakelet-bench-<random>`, removed by `cleanup`.
    pub root: PathBuf,
    exe: PathBuf,
    pub data_dir: PathBuf,
    daemon_started: bool,
    api: Option<Arc<Branches>>,
    pub pg: PgInstall,
    user: ComputeUser,
    /// Native servers by name; `cleanup` stops every one still running.
    natives: Vec<Native>,
    url: Box<UrlFn>,
}

/// A native Postgres cluster on local disk, run by the compute user with the daemon's initdb
/// flags and postgresql.conf additions, reachable only on its own unix socket.
pub struct Native {
    pub name: String,
    /// `data/` (PGDATA), `sock/`, `log`.
    pub dir: PathBuf,
    server: Option<Postgres>,
}

impl Native {
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The postmaster's pid while the cluster runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(|p| p.pid)
    }

    /// A session as the superuser on `db`.
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut c = postgres::config(&self.sock());
        c.dbname(db).application_name("lakelet-bench");
        c
    }
}

impl Lab {
    pub fn new(work: &Path, exe: PathBuf, pg: PgInstall, url: Box<UrlFn>) -> Result<Lab> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(work)
            .with_context(|| format!("creating the work directory {}", work.display()))?;
        let work = work
            .canonicalize()
            .with_context(|| format!("resolving {}", work.display()))?;
        let root = work.join(format!(
            "lakelet-bench-{}",
            crate::util::hex(&crate::util::random_bytes::<4>())
        ));
        std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
        // The compute user must traverse to its clusters.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        // A socket path is limited to 107 bytes: <root>/<name>/sock/.s.PGSQL.5432.
        if root.as_os_str().len() + 40 > 107 {
            let _ = std::fs::remove_dir(&root);
            bail!(
                "the work directory {} is too long for Postgres' socket paths (107 bytes); \
                 pass a shorter --work",
                work.display()
            );
        }
        let user = crate::compute::user::ensure("lakelet")?;
        Ok(Lab {
            data_dir: root.join("lakelet"),
            root,
            exe,
            daemon_started: false,
            api: None,
            pg,
            user,
            natives: Vec::new(),
            url,
        })
    }

    /// `lakelet up` on free ports, computes never stopped for idleness (a stop in the middle
    /// of a measurement would be measured).
    pub async fn up(&mut self) -> Result<()> {
        self.daemon_started = true; // a failed `up` may still have left a daemon to stop
        let mut c = self.lakelet();
        c.args([
            "up",
            "--api-port",
            "0",
            "--proxy-port",
            "0",
            "--idle-stop",
            "0s",
            "--pg-bindir",
        ])
        .arg(&self.pg.bindir);
        run(c, "lakelet up (the bench's own daemon)").await?;
        self.api = Some(Arc::new(Branches::local(&self.data_dir)?));
        Ok(())
    }

    fn lakelet(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("--data-dir")
            .arg(&self.data_dir)
            .current_dir(&self.root)
            .env_remove("LAKELET_TARGET")
            .env_remove("LAKELET_PRINCIPAL")
            .env_remove("LAKELET_SECRET")
            .kill_on_drop(true);
        c
    }

    /// The daemon's Branches client (after `up`).
    pub fn api(&self) -> Arc<Branches> {
        self.api.clone().expect("the daemon is up")
    }

    /// A libpq URL for `branch`'s `db` through the proxy.
    pub fn url(&self, branch: &str, db: &str) -> Result<String> {
        (self.url)(&self.data_dir, branch, db)
    }

    /// initdb a native cluster `name` in the work directory and start it.
    pub async fn native(&mut self, name: &str) -> Result<usize> {
        let n = Native {
            name: name.to_string(),
            dir: self.root.join(name),
            server: None,
        };
        self.private_dir(&n.dir)?;
        self.private_dir(&n.sock())?;
        postgres::initdb(&self.pg, &self.user, &n.data(), &n.dir.join("log")).await?;
        self.natives.push(n);
        let i = self.natives.len() - 1;
        self.start(i).await?;
        Ok(i)
    }

    /// A cluster whose data directory is already in place (a copy), registered for cleanup.
    pub fn adopt(&mut self, name: &str, dir: PathBuf) -> Result<usize> {
        let n = Native {
            name: name.to_string(),
            dir,
            server: None,
        };
        self.private_dir(&n.sock())?;
        self.natives.push(n);
        Ok(self.natives.len() - 1)
    }

    /// A directory only the compute user may enter (PGDATA's parent, a socket directory).
    fn private_dir(&self, d: &Path) -> Result<()> {
        use std::os::unix::fs::{chown, PermissionsExt};
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        chown(d, Some(self.user.uid), Some(self.user.gid))
            .with_context(|| format!("handing {} to {}", d.display(), self.user.name))
    }

    pub fn cluster(&self, i: usize) -> &Native {
        &self.natives[i]
    }

    /// Starts cluster `i` and waits until it answers (crash recovery included).
    pub async fn start(&mut self, i: usize) -> Result<()> {
        let n = &mut self.natives[i];
        assert!(n.server.is_none(), "{} already running", n.name);
        let mut p = Postgres::spawn(
            &self.pg,
            &self.user,
            &n.data(),
            &n.sock(),
            &n.dir.join("log"),
            &format!("bench/{}", n.name),
            &[],
        )?;
        let ready = p.wait_ready(Duration::from_secs(600)).await;
        n.server = Some(p); // registered before `?`: a failed start is still stopped
        ready.with_context(|| format!("starting native cluster {}", n.name))
    }

    /// Fast shutdown of cluster `i` (a checkpoint, as `docker stop` gives Postgres).
    pub async fn stop(&mut self, i: usize) -> Result<()> {
        if let Some(p) = self.natives[i].server.take() {
            p.stop(Duration::from_secs(120)).await?;
        }
        Ok(())
    }

    /// Stops cluster `i` and removes its directory.
    pub async fn drop_cluster(&mut self, i: usize) -> Result<()> {
        self.stop(i).await?;
        let dir = self.natives[i].dir.clone();
        tokio::fs::remove_dir_all(&dir)
            .await
            .with_context(|| format!("removing {}", dir.display()))
    }

    /// Stops every native server, stops the daemon (its computes and views with it) and
    /// removes the work directory. Never fails: what it cannot remove it names on stderr.
    pub async fn cleanup(&mut self) {
        for n in &mut self.natives {
            if let Some(p) = n.server.take() {
                if let Err(e) = p.stop(Duration::from_secs(30)).await {
                    eprintln!("warning: stopping native cluster {}: {e:#}", n.name);
                }
            }
        }
        if self.daemon_started {
            let mut c = self.lakelet();
            c.arg("down");
            let down = tokio::time::timeout(Duration::from_secs(180), run(c, "lakelet down"));
            if !matches!(down.await, Ok(Ok(_))) {
                self.kill_daemon().await;
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!(
                "warning: could not remove the bench's work directory {}: {e}; check \
                 `grep {} /proc/mounts`, then remove it",
                self.root.display(),
                self.root.display()
            );
        }
    }
}

impl Lab {
    /// The daemon did not stop when asked: SIGTERM, then SIGKILL, then what the next `up`
    /// would do after a crash — kill the computes it left, detach their views — since there
    /// will be no next `up` on this data directory.
    async fn kill_daemon(&self) {
        let Some(info) = crate::api::client::running_daemon(&self.data_dir) else {
            return;
        };
        for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGKILL, "SIGKILL")] {
            eprintln!(
                "warning: the bench's daemon (pid {}) did not stop; sending {name}",
                info.pid
            );
            unsafe { libc::kill(info.pid as i32, sig) };
            for _ in 0..100 {
                if !crate::api::client::alive(info.pid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !crate::api::client::alive(info.pid) {
                break;
            }
        }
        if let Ok(dd) = self.data_dir.canonicalize() {
            let run = crate::compute::run_dir(&dd);
            if let Err(e) = crate::compute::clear_stale(&run) {
                eprintln!("warning: clearing {}: {e:#}", run.display());
            }
            crate::compute::remove_run_dir(&run);
        }
    }
}

/// Runs a command to completion; its output in the error if it fails.
pub async fn run(mut c: Command, what: &str) -> Result<std::process::Output> {
    let out = c
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
