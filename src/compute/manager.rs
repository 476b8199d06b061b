//! The computes of every branch: a FUSE view and a postmaster per running branch, started on
//! demand, stopped when idle, and kept out of the way of branch operations that move a name to
//! another timeline.
//!
//! Runtime layout (tmpfs, per data directory; see `run_dir`):
//! ```text
//! RUN/m/<timeline>   mount point of the timeline's view (RUN is 0711: traversable, not listable)
//! RUN/s/<timeline>   the compute's unix socket directory, 0700, owned by the compute user
//! RUN/p/<timeline>   pid of its postmaster and its mount point, to clean up after a crash
//! ```
//! Invariant: at most one view and one postmaster per timeline, and only for the timeline a
//! branch name points at now. Every operation on a branch holds that branch's slot lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use super::pg::{self, PgInstall};
use super::postgres::{self, Postgres};
use super::user::{self, ComputeUser};
use super::wal::{self, WalDirs};
use crate::fs::{self, Mount};
use crate::storage::{self, At, BranchInfo, Store, TimelineId};

/// How the computes behave; `lakelet up` flags set these.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Stop a compute with no client session for this long; zero never stops.
    pub idle_stop: Duration,
    /// Ask a running parent for a CHECKPOINT before branching from its head, so the child's
    /// crash recovery replays little WAL.
    pub checkpoint_before_branch: bool,
    pub start_timeout: Duration,
    /// How long a fast shutdown may take before it becomes an immediate one.
    pub stop_grace: Duration,
    pub pg_bindir: Option<PathBuf>,
    pub compute_user: String,
    pub fuse_threads: usize,
    /// The root branch `lakelet up` creates and initdb's on first start.
    pub root_branch: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            idle_stop: Duration::from_secs(300),
            checkpoint_before_branch: true,
            start_timeout: Duration::from_secs(300),
            stop_grace: Duration::from_secs(30),
            pg_bindir: None,
            compute_user: "lakelet".into(),
            fuse_threads: 4,
            root_branch: "main".into(),
        }
    }
}

/// A request the compute layer will not carry out because of the branch's state (a snapshot
/// has no compute, a root branch no parent, the default branch stays). The caller's to fix,
/// not a failure of lakelet: the API answers it with 400.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A request that collides with a branch that exists in another state (a soft-deleted branch
/// still holds its name). The API answers it with 409.
#[derive(Debug)]
pub struct Conflict(pub String);

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Conflict {}

/// Where a client reaches a running compute.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub branch: String,
    pub socket_dir: PathBuf,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub pid: u32,
    pub pg_bindir: PathBuf,
    /// Whether this call started the compute (a wake from zero).
    #[serde(default)]
    pub cold: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ComputeStatus {
    /// "running" or "stopped".
    pub state: String,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub idle_seconds: Option<u64>,
    pub socket_dir: Option<PathBuf>,
    /// Why the last start failed or the compute died, if it did.
    pub last_error: Option<String>,
    /// What the compute asked of its view since it started.
    #[serde(default)]
    pub view: Option<ViewCounters>,
}

/// FUSE requests that reached the store (page-cache hits never do).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ViewCounters {
    pub reads: u64,
    pub metadata: u64,
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    /// setattr requests: with the writeback cache, mostly the kernel sending times back.
    #[serde(default)]
    pub setattrs: u64,
    /// Files unlinked while the kernel still held them, and how many of those were freed.
    #[serde(default)]
    pub orphaned: u64,
    #[serde(default)]
    pub orphans_freed: u64,
    pub errors: u64,
    /// Whether the kernel granted the writeback cache.
    #[serde(default)]
    pub writeback_cache: bool,
}

struct Running {
    pg: Postgres,
    /// The uid this compute runs as, its own while it runs (user.rs). Ended after the
    /// postmaster stops and before the view is unmounted: whatever a session left running
    /// under the uid is killed and cannot hold the mount busy.
    lease: user::Lease,
    mount: Mount,
    tl: TimelineId,
    started_at: SystemTime,
    last_active: Instant,
    install: PgInstall,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    last_error: Option<String>,
}

type SlotRef = Arc<tokio::sync::Mutex<Slot>>;

/// Why a branch may not start, if it may not (`Computes::refuse_start_when`).
pub type StartCheck = Box<dyn Fn(&BranchInfo) -> Option<String> + Send + Sync>;

/// A branch's slot, held (`Computes::locked`): its compute can be stopped and started again,
/// and nothing else happens to the branch meanwhile.
pub struct BranchLock<'a> {
    c: &'a Computes,
    name: &'a str,
    slot: tokio::sync::OwnedMutexGuard<Slot>,
}

impl BranchLock<'_> {
    pub fn name(&self) -> &str {
        self.name
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.c.store
    }

    /// Stops the compute if it runs; whether it did.
    pub async fn stop(&mut self) -> bool {
        match self.slot.running.take() {
            Some(r) => {
                self.c.teardown(r).await;
                true
            }
            None => false,
        }
    }

    /// Stops the compute if it runs, without a shutdown checkpoint: for a branch whose data is
    /// thrown away (its next start, if any, is a crash recovery). Whether it ran.
    pub async fn stop_immediately(&mut self) -> bool {
        match self.slot.running.take() {
            Some(r) => {
                self.c.teardown_with(r, true).await;
                true
            }
            None => false,
        }
    }

    /// Starts the compute (on the timeline the name points at now).
    pub async fn start(&mut self) -> Result<Endpoint> {
        self.c
            .ensure_running_locked(self.name, &mut self.slot)
            .await
    }
}

pub struct Computes {
    store: Arc<Store>,
    data_dir: PathBuf,
    run_dir: PathBuf,
    installs: Vec<PgInstall>,
    user: ComputeUser,
    settings: Settings,
    slots: Mutex<HashMap<String, SlotRef>>,
    /// Every timeline's WAL on local disk (wal.rs).
    wal: WalDirs,
    /// Why a branch may not start (lifecycle/ sets it).
    start_check: std::sync::OnceLock<StartCheck>,
    /// When archives were last pruned (at most once a minute: it reads pg_control at every
    /// retained point).
    pruned_at: Mutex<Option<Instant>>,
}

/// Leaves no trace in the runtime directory once nothing runs from it: a clean shutdown, or
/// `lakelet bench` after `clear_stale` on its killed daemon. Only empty directories are
/// removed (never recursively: a directory that is still a mount point would lead into a
/// branch).
pub fn remove_run_dir(run_dir: &Path) {
    for sub in ["m", "s", "p", "w", "x"] {
        let d = run_dir.join(sub);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&d);
    }
    let _ = std::fs::remove_dir(run_dir);
}

/// Kills postmasters recorded in RUN/p whose command line still names our mount, then
/// detaches every mount under RUN/m. After a daemon crash their views answer ENOTCONN, so
/// those servers are already failing; the store holds everything they had synced. Also what
/// `lakelet bench` does after it had to SIGKILL its own daemon.
pub fn clear_stale(run_dir: &Path) -> Result<()> {
    let pdir = run_dir.join("p");
    for e in std::fs::read_dir(&pdir)?.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut lines = text.lines();
        let pid: i32 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let mnt = lines.next().unwrap_or("");
        if pid > 0 && !mnt.is_empty() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(mnt) {
                tracing::warn!(
                    pid,
                    mount = mnt,
                    "killing a compute left by a previous daemon"
                );
                postgres::kill_tree(pid as u32);
                let t = Instant::now();
                while Path::new(&format!("/proc/{pid}")).exists()
                    && t.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
    for m in fs::mounts_under(&run_dir.join("m"))? {
        tracing::warn!(mount = %m.display(), "detaching a view left by a previous daemon");
        fs::detach(&m)?;
    }
    // The WAL directory's bind mount (wal.rs), and those of `Computes::expose`.
    for m in fs::mounts_under(&run_dir.join("w"))?
        .into_iter()
        .chain(fs::mounts_under(&run_dir.join("x"))?)
    {
        fs::detach(&m)?;
    }
    // Socket directories of dead computes hold stale sockets and lock files.
    if let Ok(rd) = std::fs::read_dir(run_dir.join("s")) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

/// The runtime directory of a data directory: on tmpfs, short enough for socket paths (108
/// bytes), and traversable by the compute user whatever the data directory's parents allow.
pub fn run_dir(data_dir: &Path) -> PathBuf {
    let key = format!(
        "{:08x}",
        crc32fast::hash(data_dir.as_os_str().as_encoded_bytes())
    );
    let euid = unsafe { libc::geteuid() };
    let base = if euid == 0 {
        PathBuf::from("/run/lakelet")
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(x).join("lakelet")
    } else {
        PathBuf::from(format!("/tmp/lakelet-{euid}"))
    };
    base.join(key)
}

fn short(tl: TimelineId) -> String {
    tl.to_string()[..16].to_string()
}

/// Creates `p` (and its parents) and sets its mode.
pub(super) fn mkdir(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", p.display()))
}

fn fmt_time(t: SystemTime) -> String {
    let ns = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    storage::format_time(ns)
}

/// A daemon that failed after opening its computes (a taken port) leaves no bind mount and no
/// runtime directory; after `shutdown` this finds nothing left to do.
impl Drop for Computes {
    fn drop(&mut self) {
        self.wal.close();
        for m in fs::mounts_under(&self.run_dir.join("x")).unwrap_or_default() {
            if let Err(e) = fs::detach(&m) {
                tracing::warn!("detaching {}: {e}", m.display());
            }
        }
        remove_run_dir(&self.run_dir);
    }
}

impl Computes {
    /// Prepares the runtime directory, clears what a killed daemon left (postmasters, mounts),
    /// finds Postgres and the compute user. Does not start any compute.
    pub fn open(store: Arc<Store>, data_dir: &Path, settings: Settings) -> Result<Computes> {
        let installs = pg::discover(settings.pg_bindir.as_deref())?;
        let user = user::ensure(&settings.compute_user)?;
        let run_dir = run_dir(data_dir);
        // The base (/run/lakelet) too: the daemon's umask (077) would make a missing one 0700,
        // and a compute's uid could then reach neither its socket nor its view.
        if let Some(base) = run_dir.parent() {
            mkdir(base, 0o711)?;
        }
        mkdir(&run_dir, 0o711)?;
        mkdir(&run_dir.join("m"), 0o711)?;
        mkdir(&run_dir.join("s"), 0o711)?;
        mkdir(&run_dir.join("p"), 0o700)?;
        mkdir(&data_dir.join("logs"), 0o700)?;
        clear_stale(&run_dir)?;
        let wal = WalDirs::open(data_dir, &run_dir, &user)?;
        Ok(Computes {
            store,
            data_dir: data_dir.to_path_buf(),
            run_dir,
            installs,
            user,
            settings,
            slots: Mutex::new(HashMap::new()),
            wal,
            start_check: Default::default(),
            pruned_at: Mutex::new(None),
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn installs(&self) -> &[PgInstall] {
        &self.installs
    }

    pub fn user(&self) -> &ComputeUser {
        &self.user
    }

    /// Whether each compute runs under a uid of its own (a root daemon; user.rs). Otherwise
    /// every compute runs as the daemon's own user.
    pub fn isolated(&self) -> bool {
        self.user.switch
    }

    /// A uid of its own for a compute (a branch's at its start, the system database's).
    pub async fn lease(&self) -> Result<user::Lease> {
        let base = self.user.clone();
        tokio::task::spawn_blocking(move || base.lease()).await?
    }

    /// `DATA/<name>` (made 0700 if missing) where a compute's uid reaches it: a root daemon's
    /// data directory is 0700, so the directory is bind-mounted at `RUN/x/<name>` (as `DATA/wal`
    /// is at `RUN/w`); a daemon that is not root runs computes as itself and uses it in place.
    pub fn expose(&self, name: &str) -> Result<PathBuf> {
        let src = self.data_dir.join(name);
        if !src.is_dir() {
            mkdir(&src, 0o700)?;
        }
        if unsafe { libc::geteuid() } != 0 {
            return Ok(src);
        }
        let dst = self.run_dir.join("x").join(name);
        if fs::mounts_under(&dst)?.iter().any(|m| m == &dst) {
            return Ok(dst);
        }
        mkdir(&self.run_dir.join("x"), 0o711)?;
        mkdir(&dst, 0o700)?;
        wal::bind(&src, &dst)?;
        Ok(dst)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn slot(&self, name: &str) -> SlotRef {
        self.slots
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Every slot, copied out so no slot lock is awaited under the map's lock.
    fn all_slots(&self) -> Vec<(String, SlotRef)> {
        let m = self.slots.lock().unwrap();
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.data_dir
            .join("logs")
            .join(format!("{}.log", name.replace('/', "%2F")))
    }

    /// Mounts `tl`'s view; `wal_out`: with `pg_wal` redirected to the timeline's local WAL
    /// directory (every compute), or not (initdb and imports write a whole data directory, WAL
    /// included, into the store; the first start moves it out).
    fn mount_view(
        &self,
        name: &str,
        tl: TimelineId,
        wal_out: bool,
        owner: Option<fs::Owner>,
    ) -> Result<Mount> {
        let mp = self.run_dir.join("m").join(short(tl));
        mkdir(&mp, 0o755)?;
        let redirect = wal_out.then(|| fs::Redirect {
            name: wal::PG_WAL.to_vec(),
            target: self.wal.link_target(tl),
        });
        let m = fs::mount(
            self.store.clone(),
            tl,
            &mp,
            name,
            self.settings.fuse_threads,
            redirect,
            owner,
        )?;
        Ok(m)
    }

    /// The Postgres install for the cluster on `tl` (its PG_VERSION, read from the store).
    fn install_of(&self, tl: TimelineId) -> Result<&PgInstall> {
        let r = self.store.reader(tl, None)?;
        let ino = r
            .lookup(storage::ROOT_INO, b"PG_VERSION")?
            .context("the branch holds no Postgres cluster (no PG_VERSION)")?;
        let v = String::from_utf8_lossy(&r.read(ino, 0, 16)?)
            .trim()
            .to_string();
        let major: u32 = v
            .parse()
            .with_context(|| format!("PG_VERSION says {v:?}"))?;
        pg::for_major(&self.installs, major)
    }

    /// Seeds the WAL of `name`'s new timeline from `from`'s after a cut `at` (wal.rs); a past
    /// cut's WAL ends at its time.
    pub fn seed_wal(&self, name: &str, from: &str, at: At) -> Result<()> {
        let parent = self.store.branch_timeline(from)?;
        let child = self.store.branch_timeline(name)?;
        let lsn = self.store.branch(name)?.branch_lsn.unwrap_or(0);
        let stop_at = match at {
            At::Head => None,
            At::Time(t) => Some(t),
            At::Lsn(l) => Some(
                self.store
                    .time_of_lsn(from, l)
                    .unwrap_or_else(|| self.store.now()),
            ),
        };
        let t = Instant::now();
        let waldump = self.install_of(child)?.bin("pg_waldump");
        let s = self
            .wal
            .seed(&self.store, parent, child, lsn, stop_at, &waldump)?;
        tracing::debug!(branch = name, segments = s.segments, linked = s.linked, bytes = s.bytes, elapsed = ?t.elapsed(), "seeded WAL");
        Ok(())
    }

    /// Creates and initdb's the root branch on first start. An interrupted first start leaves
    /// a root branch without PG_VERSION and no children: it is recreated.
    pub async fn bootstrap(&self) -> Result<()> {
        let name = self.settings.root_branch.clone();
        if let Ok(tl) = self.store.branch_timeline(&name) {
            let r = self.store.reader(tl, None)?;
            if r.resolve("PG_VERSION")?.is_some() {
                return Ok(());
            }
            let has_children = self
                .store
                .branches()
                .iter()
                .any(|c| c.parent.as_deref() == Some(name.as_str()));
            if has_children {
                bail!("root branch '{name}' has no PG_VERSION but has children; refusing to re-initialise it");
            }
            tracing::warn!(
                branch = name,
                "recreating a root branch whose initdb never finished"
            );
            drop(r);
            self.store.delete_branch(&name)?;
        }
        let pg = &self.installs[0];
        tracing::info!(
            branch = name,
            version = pg.version,
            "initdb of the root branch"
        );
        let info = self
            .store
            .create_root_branch(&name, self.user.uid, self.user.gid)?;
        let tl = self.store.branch_timeline(&info.name)?;
        let mount = self.mount_view(&name, tl, false, None)?;
        let r = postgres::initdb(pg, &self.user, mount.path(), &self.log_path(&name)).await;
        tokio::task::spawn_blocking(move || mount.unmount()).await??;
        let _ = std::fs::remove_dir(self.run_dir.join("m").join(short(tl)));
        r?;
        self.store.sync()?;
        Ok(())
    }

    /// Runs `op` to completion on its own task. An API caller that disconnects drops its
    /// future; a start, stop or repoint dropped half-way would leave a postmaster running on
    /// an unmounted view, or a mount no slot remembers. Detached, the operation finishes and
    /// its slot records the outcome whatever the caller does.
    async fn detached<T, F>(self: &Arc<Self>, name: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                &'a Computes,
                &'a str,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>,
            > + Send
            + 'static,
    {
        let me = self.clone();
        let name = name.to_string();
        tokio::spawn(async move { op(&me, &name).await })
            .await
            .context("a compute operation panicked")?
    }

    /// The compute of `name`, started if it is not running.
    pub async fn ensure_running(self: &Arc<Self>, name: &str) -> Result<Endpoint> {
        self.detached(name, |c, n| {
            Box::pin(async move {
                let slot = c.slot(n);
                let mut s = slot.lock().await;
                c.ensure_running_locked(n, &mut s).await
            })
        })
        .await
    }

    async fn ensure_running_locked(&self, name: &str, s: &mut Slot) -> Result<Endpoint> {
        self.clear_if_exited(name, s).await;
        let cold = s.running.is_none();
        if cold {
            match self.start(name).await {
                Ok(r) => {
                    s.running = Some(r);
                    s.last_error = None;
                }
                Err(e) => {
                    s.last_error = Some(format!("{e:#}"));
                    return Err(e);
                }
            }
        }
        let r = s.running.as_mut().unwrap();
        r.last_active = Instant::now();
        Ok(Endpoint {
            branch: name.to_string(),
            socket_dir: r.pg.sockdir.clone(),
            port: postgres::PORT,
            user: postgres::SUPERUSER.into(),
            database: "postgres".into(),
            pid: r.pg.pid,
            pg_bindir: r.install.bindir.clone(),
            cold,
        })
    }

    /// If the slot's postmaster died, records why and tears down its view. Returns whether it
    /// did.
    async fn clear_if_exited(&self, name: &str, s: &mut Slot) -> bool {
        let Some(r) = s.running.as_mut() else {
            return false;
        };
        let Some(st) = r.pg.exited() else {
            return false;
        };
        let msg = format!("postgres exited ({st}); see {}", r.pg.log.display());
        tracing::error!(branch = name, "{msg}");
        s.last_error = Some(msg);
        let r = s.running.take().unwrap();
        self.teardown(r).await;
        true
    }

    async fn start(&self, name: &str) -> Result<Running> {
        let info = self.store.branch(name)?;
        if info.snapshot {
            return Err(Refused(format!("'{name}' is a snapshot: it is never written, so it has no compute; create a branch from it")).into());
        }
        if let Some(why) = self.start_check.get().and_then(|f| f(&info)) {
            return Err(Refused(why).into());
        }
        let tl = self.store.branch_timeline(name)?;
        let t0 = Instant::now();
        let install = self
            .install_of(tl)
            .with_context(|| format!("branch '{name}'"))?
            .clone();
        let lease = self.lease().await?;
        let t_lease = t0.elapsed();
        let run_as = (lease.user.uid, lease.user.gid);
        self.wal.prepare(&self.store, tl, run_as)?;
        let t_wal = t0.elapsed();
        let owner = fs::Owner {
            stored: (self.user.uid, self.user.gid),
            presented: run_as,
        };
        let mount = self.mount_view(name, tl, true, Some(owner))?;
        let t_mount = t0.elapsed();
        let pgdata = mount.path().to_path_buf();
        // A branch inherits its parent's postmaster.pid; the pid in it may be the parent's live
        // postmaster, which would make this one refuse to start. No postmaster runs on this
        // timeline (we hold its slot), so the file is stale by construction.
        match std::fs::remove_file(pgdata.join("postmaster.pid")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("removing the stale postmaster.pid"),
        }
        let sockdir = self.run_dir.join("s").join(short(tl));
        let _ = std::fs::remove_dir_all(&sockdir);
        mkdir(&sockdir, 0o700)?;
        std::os::unix::fs::chown(&sockdir, Some(run_as.0), Some(run_as.1))
            .context("handing the socket directory to the compute's user")?;
        let log = self.log_path(name);
        let pidfile = self.run_dir.join("p").join(short(tl));
        // Every compute archives its WAL (wal.rs).
        let mut extra = self.wal.settings(tl);
        // Crash recovery first fsyncs every file of the data directory, one FUSE round trip and
        // store sync each (~170 ms for a fresh cluster), to make durable what a crashed
        // incarnation wrote but never fsynced. A fresh view holds nothing of the kind: every
        // byte it shows came out of the store, and the first fsync after start syncs the
        // store's whole ordered log, so one syncfs (which also covers the real disk under
        // pg_wal) keeps Postgres's contract. docs/ARCHITECTURE.md, "Compute defaults".
        extra.push("recovery_init_sync_method=syncfs".into());
        let mut pg = Postgres::spawn(&install, &lease.user, &pgdata, &sockdir, &log, name, &extra)?;
        std::fs::write(&pidfile, format!("{}\n{}\n", pg.pid, pgdata.display()))?;
        let t_spawn = t0.elapsed();
        if let Err(e) = pg.wait_ready(self.settings.start_timeout).await {
            let _ = pg.stop(Duration::from_secs(1)).await;
            let _ = std::fs::remove_file(&pidfile);
            tokio::task::spawn_blocking(move || {
                drop(lease);
                mount.unmount()
            })
            .await??;
            return Err(e.context(format!("starting the compute of branch '{name}'")));
        }
        // Where a start's time goes (docs/BENCHMARKS.md, "A fresh database per test").
        tracing::info!(branch = name, pid = pg.pid, elapsed = ?t0.elapsed(), lease = ?t_lease,
            wal = ?t_wal, mount = ?t_mount, spawned = ?t_spawn, "compute started");
        Ok(Running {
            pg,
            lease,
            mount,
            tl,
            started_at: SystemTime::now(),
            last_active: Instant::now(),
            install,
        })
    }

    /// Stops the postmaster, unmounts the view, forgets the pid file.
    async fn teardown(&self, r: Running) {
        self.teardown_with(r, false).await
    }

    /// `teardown`; `immediately`: without the shutdown checkpoint (`Postgres::stop_immediately`).
    async fn teardown_with(&self, r: Running, immediately: bool) {
        let Running {
            pg,
            lease,
            mount,
            tl,
            ..
        } = r;
        let stopped = if immediately {
            pg.stop_immediately().await
        } else {
            pg.stop(self.settings.stop_grace).await
        };
        if let Err(e) = stopped {
            tracing::error!(timeline = %tl, "stopping postgres: {e:#}");
        }
        let _ = std::fs::remove_file(self.run_dir.join("p").join(short(tl)));
        let _ = std::fs::remove_dir_all(self.run_dir.join("s").join(short(tl)));
        let unmounted = tokio::task::spawn_blocking(move || {
            drop(lease);
            mount.unmount()
        });
        match unmounted.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(timeline = %tl, "unmounting: {e}"),
            Err(e) => tracing::error!(timeline = %tl, "unmounting: {e}"),
        }
        let _ = std::fs::remove_dir(self.run_dir.join("m").join(short(tl)));
        if let Err(e) = self.store.sync() {
            tracing::error!("syncing the store after a compute stopped: {e}");
        }
    }

    /// Stops `name`'s compute if it runs. Returns whether it was running.
    pub async fn stop(self: &Arc<Self>, name: &str) -> Result<bool> {
        self.detached(name, |c, n| Box::pin(c.stop_now(n))).await
    }

    async fn stop_now(&self, name: &str) -> Result<bool> {
        let slot = self.slot(name);
        let mut s = slot.lock().await;
        match s.running.take() {
            Some(r) => {
                self.teardown(r).await;
                tracing::info!(branch = name, "compute stopped");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Asks `name`'s compute for a CHECKPOINT if it runs. Failure is logged, not fatal: the
    /// branch is still crash-consistent, its recovery is just longer.
    pub async fn checkpoint_if_running(&self, name: &str) {
        if !self.settings.checkpoint_before_branch {
            return;
        }
        let slot = self.slot(name);
        let s = slot.lock().await;
        if let Some(r) = s.running.as_ref() {
            let t = Instant::now();
            match postgres::query_one(&r.pg.sockdir, "CHECKPOINT").await {
                Ok(_) => {
                    tracing::debug!(branch = name, elapsed = ?t.elapsed(), "checkpoint before branching")
                }
                Err(e) => {
                    tracing::warn!(branch = name, "CHECKPOINT before branching failed: {e:#}")
                }
            }
        }
    }

    /// Runs `op` with `name`'s slot held, on its own task (it finishes whatever the caller
    /// does). What changes a branch's lifecycle runs here (lifecycle/), so no start, stop or
    /// other change of the branch interleaves with its read-modify-write.
    pub async fn locked<T, F>(self: &Arc<Self>, name: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                BranchLock<'a>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>,
            > + Send
            + 'static,
    {
        self.detached(name, move |c, n| {
            Box::pin(async move {
                let slot = c.slot(n).lock_owned().await;
                op(BranchLock { c, name: n, slot }).await
            })
        })
        .await
    }

    /// Forgets the slot of a branch whose name is gone (purged).
    pub fn forget(&self, name: &str) {
        self.slots.lock().unwrap().remove(name);
    }

    /// Has `refuse` say why a branch may not start (a soft-deleted one, say: lifecycle/), before
    /// anything is mounted. Set once, at daemon start.
    pub fn refuse_start_when(&self, refuse: StartCheck) {
        let _ = self.start_check.set(refuse);
    }

    pub async fn status(&self, name: &str) -> ComputeStatus {
        let slot = self.slot(name);
        let s = slot.lock().await;
        match s.running.as_ref() {
            Some(r) => ComputeStatus {
                state: "running".into(),
                pid: Some(r.pg.pid),
                started_at: Some(fmt_time(r.started_at)),
                idle_seconds: Some(r.last_active.elapsed().as_secs()),
                socket_dir: Some(r.pg.sockdir.clone()),
                last_error: s.last_error.clone(),
                view: Some({
                    use std::sync::atomic::Ordering::Relaxed;
                    let v = &r.mount.stats;
                    ViewCounters {
                        reads: v.reads.load(Relaxed),
                        metadata: v.metadata.load(Relaxed),
                        writes: v.writes.load(Relaxed),
                        bytes_written: v.bytes_written.load(Relaxed),
                        syncs: v.syncs.load(Relaxed),
                        setattrs: v.setattrs.load(Relaxed),
                        orphaned: v.orphaned.load(Relaxed),
                        orphans_freed: v.orphans_freed.load(Relaxed),
                        errors: v.errors.load(Relaxed),
                        writeback_cache: v.writeback_cache.load(Relaxed),
                    }
                }),
            },
            None => ComputeStatus {
                state: "stopped".into(),
                pid: None,
                started_at: None,
                idle_seconds: None,
                socket_dir: None,
                last_error: s.last_error.clone(),
                view: None,
            },
        }
    }

    /// One pass of the idle reaper: notes activity, stops computes idle past `idle_stop`, and
    /// clears computes whose postmaster died.
    pub async fn reap_idle(&self) {
        let slots = self.all_slots();
        for (name, slot) in slots {
            // A slot busy with a start, stop or branch operation is not idle.
            let Ok(mut s) = slot.try_lock() else { continue };
            if self.clear_if_exited(&name, &mut s).await {
                continue;
            }
            let Some(r) = s.running.as_mut() else {
                continue;
            };
            match postgres::client_sessions(&r.pg.sockdir).await {
                Ok(n) if n > 0 => r.last_active = Instant::now(),
                Ok(_) => {}
                Err(e) => tracing::debug!(branch = name, "activity check: {e:#}"),
            }
            let idle = r.last_active.elapsed();
            if !self.settings.idle_stop.is_zero() && idle >= self.settings.idle_stop {
                tracing::info!(branch = name, ?idle, "stopping an idle compute");
                let r = s.running.take().unwrap();
                self.teardown(r).await;
            }
        }
        self.sweep_wal();
    }

    /// Stops every compute (concurrently) and unmounts every view.
    pub async fn shutdown(self: &Arc<Self>) {
        let slots = self.all_slots();
        let mut tasks = tokio::task::JoinSet::new();
        for (name, slot) in slots {
            let me = self.clone();
            tasks.spawn(async move {
                let mut s = slot.lock().await;
                if let Some(r) = s.running.take() {
                    me.teardown(r).await;
                    tracing::info!(branch = name, "compute stopped");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        self.wal.close();
        remove_run_dir(&self.run_dir);
    }

    /// Names of branches with a running compute.
    pub async fn running(&self) -> Vec<String> {
        let slots = self.all_slots();
        let mut out = Vec::new();
        for (name, slot) in slots {
            if slot.lock().await.running.is_some() {
                out.push(name);
            }
        }
        out.sort();
        out
    }

    /// Mounts the view of `name` (timeline `tl`) with no compute on it: imports write into it.
    pub fn mount_for_import(&self, name: &str, tl: TimelineId) -> Result<Mount> {
        self.mount_view(name, tl, false, None)
    }

    /// Removes the WAL of timelines no name points at any more, and archived WAL no retained
    /// point can need (archive.rs).
    pub fn sweep_wal(&self) {
        let named = || {
            self.store
                .branches()
                .iter()
                .filter_map(|b| b.timeline.parse().ok())
                .collect()
        };
        if let Err(e) = self.wal.sweep(named) {
            tracing::warn!("sweeping WAL directories: {e:#}");
        }
        {
            let mut at = self.pruned_at.lock().unwrap();
            if at.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
                return;
            }
            *at = Some(Instant::now());
        }
        for b in self.store.branches().iter().filter(|b| !b.snapshot) {
            let Ok(tl) = b.timeline.parse() else { continue };
            match super::archive::prune(&self.wal, &self.store, &b.name, tl) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(branch = b.name, segments = n, "pruned archived WAL"),
                Err(e) => tracing::warn!(branch = b.name, "pruning archived WAL: {e:#}"),
            }
        }
    }

    /// Makes the kernel push what a running compute of `name` wrote into the store (syncfs):
    /// the daemon measures the store, and the writeback cache may still hold the newest pages.
    pub async fn push_writes(&self, name: &str) -> Result<()> {
        let slot = self.slot(name);
        let s = slot.lock().await;
        if let Some(r) = s.running.as_ref() {
            r.mount.sync()?;
        }
        Ok(())
    }

    /// `sweep_wal` now, archives included (an explicit `lakelet gc`).
    pub fn sweep_wal_now(&self) {
        *self.pruned_at.lock().unwrap() = None;
        self.sweep_wal();
    }

    /// Bytes of WAL kept for `name` (its pg_wal and archive, on local disk).
    pub fn wal_bytes(&self, name: &str) -> Result<u64> {
        Ok(self.wal.bytes(self.store.branch_timeline(name)?))
    }

    pub fn log_of(&self, name: &str) -> PathBuf {
        self.log_path(name)
    }
}
