//! The unprivileged users computes run as. Postgres refuses to run as root, so a daemon running
//! as root creates system users without a login shell; a daemon running as anyone else runs
//! computes as itself.
//!
//! **One uid per running compute.** A superuser session on a branch can run programs as its
//! compute's uid (`COPY … FROM PROGRAM`). If two computes shared a uid, that program could
//! connect to the other's socket (Postgres trusts its own uid there), signal it, or read its
//! files. So a root daemon never runs two computes as one uid: each start leases a pool user
//! (`lakelet-c0`, `lakelet-c1`, …, created on first need) for as long as the compute runs. The
//! lease is an exclusive `flock` on `/run/lakelet/uids/<user>`, so it holds across every daemon
//! on the machine and ends with its holder, even a killed one. Nothing runs as a pool uid
//! without its lease: taking a lease and ending one both kill whatever still runs as that uid
//! (a `COPY … FROM PROGRAM 'sleep 1d &'` left behind), so the next compute to get the uid meets
//! no stranger, and what the uid left in /tmp, /var/tmp or /dev/shm, and its System V IPC
//! objects, are removed for the same reason. The compute's files carry its uid (its socket
//! directory, its WAL; its view presents every file as the lease's), all 0700/0600: another
//! uid reaches none of them.
//!
//! The base user (`lakelet`) runs only short tools (initdb, pg_basebackup) and owns the files
//! in the store; views present them as the lease's.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ComputeUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether the daemon must switch to this user to start a process.
    pub switch: bool,
}

fn lookup(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // getpwnam_r: leases look users up from many tasks at once.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() {
        return None;
    }
    Some((pw.pw_uid, pw.pw_gid))
}

fn current_name(uid: u32) -> String {
    let pw = unsafe { libc::getpwuid(uid) };
    if pw.is_null() {
        return uid.to_string();
    }
    unsafe { CStr::from_ptr((*pw).pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// The user computes run as: `name` (created if missing) when we are root, else ourselves.
pub fn ensure(name: &str) -> Result<ComputeUser> {
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(ComputeUser {
            name: current_name(euid),
            uid: euid,
            gid: unsafe { libc::getegid() },
            switch: false,
        });
    }
    let (uid, gid) = create(name)?;
    if uid == 0 {
        bail!("the compute user '{name}' is root; Postgres refuses to run as root. Pick another with --compute-user");
    }
    Ok(ComputeUser {
        name: name.to_string(),
        uid,
        gid,
        switch: true,
    })
}

/// Creates system user `name` (and its group) unless it exists; its uid and gid.
///
/// Machine-wide, one lakelet daemon at a time (an flock on `/run/lakelet/useradd.lock`), and
/// the user is looked up under the same lock. useradd writes /etc/passwd before /etc/group;
/// when another useradd holds the group file's lock, it fails and takes the passwd line back
/// out. A lookup between the two saw a user that then vanished, and initdb, run as its uid,
/// failed with "could not look up effective user ID" (seen on a fresh machine, with test
/// daemons starting side by side).
fn create(name: &str) -> Result<(u32, u32)> {
    let _serial = useradd_lock()?;
    let mut tries = 0;
    while lookup(name).is_none() {
        tracing::info!(user = name, "creating a system user computes run as");
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "lakelet computes",
                name,
            ])
            .output()
            .context("running useradd (package passwd) to create the compute user")?;
        // Another daemon may have created it at the same moment: only a missing user is fatal.
        if !out.status.success() && lookup(name).is_none() {
            tries += 1;
            if tries >= 50 {
                bail!(
                    "could not create the compute user '{name}': {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    lookup(name).with_context(|| format!("user '{name}' vanished"))
}

/// The machine-wide lock around creating and looking up compute users (see `create`).
fn useradd_lock() -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = Path::new(LEASES).parent().expect("LEASES has a parent");
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let path = dir.join("useradd.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("locking {}", path.display()));
    }
    Ok(f)
}

/// Where leases are taken, machine-wide (root daemons only).
const LEASES: &str = "/run/lakelet/uids";
/// More computes than this at once on one machine is a runaway, not a workload.
const MAX_POOL: u32 = 512;

/// A uid of its own for one running compute (module doc). Dropping it kills whatever still
/// runs as that uid, then frees the uid for the next compute.
#[derive(Debug)]
pub struct Lease {
    pub user: ComputeUser,
    /// The flock; None for a daemon that is not root (computes run as the daemon itself).
    lock: Option<std::fs::File>,
}

impl ComputeUser {
    /// Leases a pool user for one compute; `self` is the base user (its name is the pool's
    /// prefix). A daemon that is not root cannot switch users: its computes share its uid.
    pub fn lease(&self) -> Result<Lease> {
        if !self.switch {
            return Ok(Lease {
                user: self.clone(),
                lock: None,
            });
        }
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        // Its parent, /run/lakelet, is made (0711) with the daemon's runtime directory
        // (`Computes::open`); the leases in it are root's alone.
        match std::fs::DirBuilder::new().mode(0o700).create(LEASES) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {LEASES}")),
        }
        for i in 0..MAX_POOL {
            let name = format!("{}-c{i}", self.name);
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(Path::new(LEASES).join(&name))
                .with_context(|| format!("opening the lease of {name} in {LEASES}"))?;
            use std::os::fd::AsRawFd;
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue; // a running compute (of this or another daemon) holds it
            }
            let (uid, gid) = create(&name)?;
            if uid == 0 || uid == self.uid {
                bail!("pool user '{name}' has uid {uid}; remove it (`userdel {name}`)");
            }
            // The lease was free, so whatever runs as this uid outlived its compute's daemon.
            kill_all(uid, &name);
            sweep_shared_dirs(uid, &name);
            sweep_ipc(uid, &name);
            return Ok(Lease {
                user: ComputeUser {
                    name,
                    uid,
                    gid,
                    switch: true,
                },
                lock: Some(f),
            });
        }
        bail!("all {MAX_POOL} compute users are leased; stop some computes (`lakelet branch stop`)")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.lock.is_some() {
            kill_all(self.user.uid, &self.user.name);
            sweep_shared_dirs(self.user.uid, &self.user.name);
            sweep_ipc(self.user.uid, &self.user.name);
        }
    }
}

/// Removes the System V shared memory segments, semaphore sets and message queues `uid` owns
/// (a stopped compute's are its leftovers: Postgres removes its own at a clean shutdown), for
/// the same reason as `sweep_shared_dirs`.
fn sweep_ipc(uid: u32, name: &str) {
    // (file under /proc/sysvipc, column of the id, column of the owner's uid)
    for (kind, id_col, uid_col) in [("shm", 1, 7), ("sem", 1, 4), ("msg", 1, 7)] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(owner)) = (
                cols.get(id_col).and_then(|c| c.parse::<i32>().ok()),
                cols.get(uid_col).and_then(|c| c.parse::<u32>().ok()),
            ) else {
                continue;
            };
            if owner != uid {
                continue;
            }
            let r = unsafe {
                match kind {
                    "shm" => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    "sem" => libc::semctl(id, 0, libc::IPC_RMID),
                    _ => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                }
            };
            if r == 0 {
                tracing::info!(
                    user = name,
                    kind,
                    id,
                    "removed a System V object a compute left"
                );
            }
        }
    }
}

/// Where any uid can leave a file for the next holder of the same uid to find.
const SHARED_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// Removes what `uid` left in the machine's shared writable directories (a `COPY … TO
/// '/tmp/x'`): the next compute to lease the uid would read it as its own. Only entries owned
/// by `uid` go; it descends only into directories `uid` owns or anyone may write, and stays on
/// each directory's file system.
fn sweep_shared_dirs(uid: u32, name: &str) {
    use std::os::unix::fs::MetadataExt;
    fn sweep(dir: &Path, dev: u64, uid: u32, removed: &mut usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.dev() != dev {
                continue;
            }
            let mine = m.uid() == uid;
            if m.is_dir() {
                if mine || m.mode() & 0o002 != 0 {
                    sweep(&p, dev, uid, removed);
                }
                if mine && std::fs::remove_dir(&p).is_ok() {
                    *removed += 1;
                }
            } else if mine && std::fs::remove_file(&p).is_ok() {
                *removed += 1;
            }
        }
    }
    for d in SHARED_DIRS {
        let Ok(m) = std::fs::metadata(d) else {
            continue;
        };
        let mut removed = 0;
        sweep(Path::new(d), m.dev(), uid, &mut removed);
        if removed > 0 {
            tracing::info!(
                user = name,
                dir = d,
                removed,
                "removed what a compute left in a shared directory"
            );
        }
    }
}

/// SIGKILLs every process running as `uid` until none is left (a zombie only waits for its
/// parent). Only for pool uids: nothing runs as one without its lease.
fn kill_all(uid: u32, name: &str) {
    use std::os::unix::fs::MetadataExt;
    for round in 0..200 {
        let mut left = 0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if e.metadata().map(|m| m.uid()).ok() != Some(uid) {
                continue;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            if state == Some('Z') || state.is_none() {
                continue;
            }
            if round == 0 {
                tracing::warn!(
                    pid,
                    user = name,
                    "killing a process left under a compute uid"
                );
            }
            unsafe { libc::kill(pid, libc::SIGKILL) };
            left += 1;
        }
        if left == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::error!(
        user = name,
        "processes under this compute uid survive SIGKILL"
    );
}
