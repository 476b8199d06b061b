//! Importing a cluster as a new root branch, as a long-running operation with progress:
//! a stopped data directory is copied straight into the store; a live server is copied with
//! pg_basebackup into the branch's view, or, when the server refuses replication, dumped with
//! pg_dump and restored into a fresh cluster.
//!
//! Either way the branch exists only if the import finished: a failure deletes it.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use tokio::io::AsyncReadExt;

use super::daemon::Daemon;
use super::http::ApiError;
use super::{ImportRequest, Operation};
use crate::compute::{postgres, tree};

pub(super) async fn start(
    State(d): State<Arc<Daemon>>,
    Extension(c): Extension<super::http::Caller>,
    Json(req): Json<ImportRequest>,
) -> Result<(StatusCode, Json<Operation>), ApiError> {
    let from = if req.url.is_some() { "url" } else { "pgdata" };
    let permit = d.admin(
        &c,
        "import",
        "import a cluster",
        &req.branch,
        serde_json::json!({ "from": from }),
    )?;
    let checked = (|| {
        let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", m);
        crate::storage::validate_branch_name(&req.branch)?;
        if d.computes.store().branch(&req.branch).is_ok() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!(
                    "branch '{}' already exists; import into a new name with --branch",
                    req.branch
                ),
            ));
        }
        match (&req.pgdata, &req.url) {
            (Some(p), None) => check_stopped_cluster(p).map_err(|e| bad(format!("{e:#}"))),
            (None, Some(_)) => Ok(()),
            _ => Err(bad("give exactly one of pgdata and url".into())),
        }
    })();
    if let Err(e) = checked {
        return permit.finish(Err(e));
    }
    let name = d.new_op("import");
    let op = d.ops.lock().unwrap()[&name].clone();
    let d2 = d.clone();
    let name2 = name.clone();
    tokio::spawn(async move {
        // Audited with the import's real outcome, once it has one.
        let r = permit.finish(run(&d2, &name2, &req).await);
        if r.is_err() {
            // Leave nothing half-imported behind.
            let _ = d2.computes.stop(&req.branch).await;
            if d2.computes.store().delete_branch(&req.branch).is_ok() {
                let _ = d2.computes.store().sync();
            }
        }
        d2.update_op(&name2, |op| {
            op.done = true;
            match r {
                Ok(v) => op.response = Some(v),
                Err(e) => {
                    tracing::error!(branch = req.branch, "import failed: {e:#}");
                    op.error = Some(super::ErrorBody {
                        error_code: "IMPORT_FAILED".into(),
                        message: format!("{e:#}"),
                    })
                }
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(op)))
}

/// A data directory we can copy: it has PG_VERSION and no live postmaster.
fn check_stopped_cluster(p: &Path) -> Result<()> {
    if !p.join("PG_VERSION").is_file() {
        bail!(
            "{} is not a Postgres data directory (no PG_VERSION)",
            p.display()
        );
    }
    if let Ok(text) = std::fs::read_to_string(p.join("postmaster.pid")) {
        let pid: i32 = text
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .parse()
            .unwrap_or(0);
        if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
            bail!(
                "the cluster in {} is running (postmaster pid {pid}); stop it first, or import \
                 it live with --from-url",
                p.display()
            );
        }
    }
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

async fn run(d: &Arc<Daemon>, op: &str, req: &ImportRequest) -> Result<serde_json::Value> {
    let store = d.computes.store().clone();
    let user = d.computes.user().clone();
    let t = std::time::Instant::now();
    if let Some(src) = req.pgdata.clone() {
        let total = dir_size(&src);
        d.update_op(op, |o| {
            o.progress.step = "copying the data directory".into();
            o.progress.total_bytes = Some(total);
        });
        let info = store.create_root_branch(&req.branch, user.uid, user.gid)?;
        let tl = store.branch_timeline(&info.name)?;
        let d2 = d.clone();
        let op2 = op.to_string();
        let copied = tokio::task::spawn_blocking(move || {
            let mut last = std::time::Instant::now();
            let c = tree::import(&store, tl, &src, Some((user.uid, user.gid)), &mut |c| {
                if last.elapsed().as_millis() >= 200 {
                    last = std::time::Instant::now();
                    d2.update_op(&op2, |o| {
                        o.progress.bytes = c.bytes;
                        o.progress.files = c.files;
                    });
                }
            })?;
            store.sync()?;
            anyhow::Ok(c)
        })
        .await??;
        d.update_op(op, |o| {
            o.progress.bytes = copied.bytes;
            o.progress.files = copied.files;
        });
        return Ok(serde_json::json!({
            "branch": req.branch, "method": "copy", "files": copied.files,
            "bytes": copied.bytes, "elapsed_ms": t.elapsed().as_millis() as u64,
        }));
    }
    let url = req.url.as_deref().unwrap();
    match basebackup(d, op, req, url).await {
        Ok(bytes) => Ok(serde_json::json!({
            "branch": req.branch, "method": "pg_basebackup", "bytes": bytes,
            "elapsed_ms": t.elapsed().as_millis() as u64,
        })),
        Err(e) if is_replication_refused(&format!("{e:#}")) => {
            tracing::warn!("pg_basebackup refused ({e:#}); falling back to pg_dump/pg_restore");
            if store.delete_branch(&req.branch).is_ok() {
                store.sync()?;
            }
            let bytes = dump_restore(d, op, req, url).await?;
            Ok(serde_json::json!({
                "branch": req.branch, "method": "pg_dump", "bytes": bytes,
                "elapsed_ms": t.elapsed().as_millis() as u64,
            }))
        }
        Err(e) => Err(e),
    }
}

fn is_replication_refused(msg: &str) -> bool {
    [
        "replication",
        "pg_hba.conf",
        "permission denied",
        "must be superuser",
    ]
    .iter()
    .any(|s| msg.contains(s))
}

/// pg_basebackup into the new branch's view, as the compute user (so the files are its own).
async fn basebackup(d: &Arc<Daemon>, op: &str, req: &ImportRequest, url: &str) -> Result<u64> {
    let store = d.computes.store();
    let user = d.computes.user();
    let pg = &d.computes.installs()[0];
    let info = store.create_root_branch(&req.branch, user.uid, user.gid)?;
    let tl = store.branch_timeline(&info.name)?;
    let mount = d.computes.mount_for_import(&req.branch, tl)?;
    d.update_op(op, |o| o.progress.step = "pg_basebackup".into());
    let mut cmd = tokio::process::Command::new(pg.bin("pg_basebackup"));
    if user.switch {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd.arg("-D")
        .arg(mount.path())
        .args([
            "-d",
            url,
            "-X",
            "stream",
            "-c",
            "fast",
            "--progress",
            "--no-sync",
        ])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("running pg_basebackup")?;
    let mut err = child.stderr.take().unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let mut bytes = 0;
    loop {
        let n = err.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        // "  123456/987654 kB (12%), 0/1 tablespace" — repainted with \r.
        let text = String::from_utf8_lossy(&all);
        if let Some((done, total)) = text.rsplit(['\r', '\n']).find_map(parse_kb_progress) {
            bytes = done * 1024;
            d.update_op(op, |o| {
                o.progress.bytes = done * 1024;
                o.progress.total_bytes = Some(total * 1024);
            });
        }
    }
    let st = child.wait().await?;
    let r = if st.success() {
        // --no-sync: what pg_basebackup wrote may still be in the kernel's writeback cache.
        mount.sync()?;
        Ok(bytes)
    } else {
        let text = String::from_utf8_lossy(&all).replace('\r', "\n");
        let msg: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("error") || l.contains("FATAL"))
            .collect();
        Err(anyhow::anyhow!(
            "pg_basebackup failed ({st}): {}",
            msg.join("; ")
        ))
    };
    tokio::task::spawn_blocking(move || mount.unmount()).await??;
    r
}

fn parse_kb_progress(line: &str) -> Option<(u64, u64)> {
    let field = line.split_whitespace().next()?;
    let (a, b) = field.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// pg_dump of the URL's database, restored into a fresh cluster on the new branch.
async fn dump_restore(d: &Arc<Daemon>, op: &str, req: &ImportRequest, url: &str) -> Result<u64> {
    let store = d.computes.store();
    let user = d.computes.user();
    let pg = d.computes.installs()[0].clone();
    let info = store.create_root_branch(&req.branch, user.uid, user.gid)?;
    let tl = store.branch_timeline(&info.name)?;
    d.update_op(op, |o| o.progress.step = "initdb".into());
    {
        let mount = d.computes.mount_for_import(&req.branch, tl)?;
        let r = postgres::initdb(&pg, user, mount.path(), &d.computes.log_of(&req.branch)).await;
        tokio::task::spawn_blocking(move || mount.unmount()).await??;
        r?;
    }
    let ep = d.computes.ensure_running(&req.branch).await?;
    d.update_op(op, |o| o.progress.step = "pg_dump | pg_restore".into());
    let mut dump = tokio::process::Command::new(pg.bin("pg_dump"))
        .args(["-Fc", "--no-owner", "--no-acl", "-d", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running pg_dump")?;
    let target = format!(
        "host={} port={} user={} dbname=postgres",
        ep.socket_dir.display(),
        ep.port,
        ep.user
    );
    let mut restore = tokio::process::Command::new(pg.bin("pg_restore"))
        .args([
            "--create",
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "-d",
            &target,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running pg_restore")?;
    let mut from = dump.stdout.take().unwrap();
    let mut to = restore.stdin.take().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        tokio::io::AsyncWriteExt::write_all(&mut to, &buf[..n]).await?;
        bytes += n as u64;
        d.update_op(op, |o| o.progress.bytes = bytes);
    }
    drop(to);
    let dout = dump.wait_with_output().await?;
    let rout = restore.wait_with_output().await?;
    if !dout.status.success() {
        bail!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&dout.stderr).trim()
        );
    }
    if !rout.status.success() {
        bail!(
            "pg_restore failed: {}",
            String::from_utf8_lossy(&rout.stderr).trim()
        );
    }
    store.sync()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn basebackup_progress_lines_parse() {
        assert_eq!(
            super::parse_kb_progress("  123456/987654 kB (12%), 0/1 tablespace"),
            Some((123456, 987654))
        );
        assert_eq!(super::parse_kb_progress("pg_basebackup: error: x"), None);
    }
}
