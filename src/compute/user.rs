//! The unprivileged user computes run as. Postgres refuses to run as root, so a daemon running
//! as root creates (once) a system user without a login shell and runs every compute as it; a
//! daemon running as anyone else runs computes as itself.

use std::ffi::{CStr, CString};
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
    // getpwnam is not thread-safe; this runs once at daemon start, before threads use it.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
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
    if lookup(name).is_none() {
        tracing::info!(user = name, "creating the system user computes run as");
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
            bail!(
                "could not create the compute user '{name}': {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let (uid, gid) = lookup(name).with_context(|| format!("user '{name}' vanished"))?;
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
