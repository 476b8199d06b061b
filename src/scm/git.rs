//! The few git operations the gates need, through the `git` command: the user's own git, with
//! their configuration, hooks and credentials, doing exactly what they would type.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub struct Git {
    pub dir: PathBuf,
}

impl Git {
    /// The repository that holds `dir`.
    pub fn open(dir: &Path) -> Result<Git> {
        let g = Git {
            dir: dir.to_path_buf(),
        };
        let top = g.out(&["rev-parse", "--show-toplevel"]).with_context(|| {
            format!(
                "{} is not in a git repository; the SCM workflow pairs git branches with \
                 database branches (`git init` first)",
                dir.display()
            )
        })?;
        Ok(Git { dir: top.into() })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.dir).args(args);
        c
    }

    /// Runs git; its stdout, trimmed. A failure carries git's own message.
    pub fn out(&self, args: &[&str]) -> Result<String> {
        let o = self
            .cmd(args)
            .output()
            .context("running git (is it installed?)")?;
        if !o.status.success() {
            bail!(
                "`git {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// Whether git succeeds (for questions like "does this ref exist").
    pub fn ok(&self, args: &[&str]) -> bool {
        self.cmd(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn current_branch(&self) -> Result<String> {
        let b = self.out(&["symbolic-ref", "--quiet", "--short", "HEAD"]);
        b.context("HEAD is detached; check out a branch first")
    }

    pub fn head(&self) -> Result<String> {
        self.out(&["rev-parse", "HEAD"])
    }

    pub fn rev(&self, rev: &str) -> Option<String> {
        self.out(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .ok()
    }

    pub fn has_branch(&self, b: &str) -> bool {
        self.ok(&[
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{b}"),
        ])
    }

    pub fn has_remote(&self, r: &str) -> bool {
        self.ok(&["remote", "get-url", r])
    }

    /// The branch's commit on the remote, asked of the remote itself (not a stale
    /// remote-tracking ref); None when the remote has no such branch.
    pub fn remote_head(&self, remote: &str, b: &str) -> Result<Option<String>> {
        let out = self.out(&["ls-remote", "--heads", remote, &format!("refs/heads/{b}")])?;
        Ok(out.split_whitespace().next().map(str::to_string))
    }

    /// Uncommitted changes outside `.lakebase/` (the workflow's own files), as `git status`
    /// lines. Untracked files count: a migration never committed would never reach CI.
    pub fn dirty(&self) -> Result<Vec<String>> {
        let out = self.out(&["status", "--porcelain", "--untracked-files=all"])?;
        Ok(out
            .lines()
            .filter(|l| {
                let p = l.get(3..).unwrap_or("");
                !p.starts_with(".lakebase/") && !p.starts_with("\".lakebase/")
            })
            .map(str::to_string)
            .collect())
    }

    /// Whether merging `from` into `into` would conflict, decided without touching the work
    /// tree or any ref (`git merge-tree --write-tree`, git ≥ 2.38).
    pub fn merges_cleanly(&self, into: &str, from: &str) -> Result<bool> {
        let o = self
            .cmd(&["merge-tree", "--write-tree", "--no-messages", into, from])
            .output()?;
        match o.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!(
                "`git merge-tree` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        }
    }

    /// Where lakelet keeps repository-local records (pull requests and CI runs of the local
    /// forge): inside the git directory, so they are never committed and every worktree of
    /// the repository sees the same ones.
    pub fn records_dir(&self) -> Result<PathBuf> {
        let common = self.out(&["rev-parse", "--git-common-dir"])?;
        let p = PathBuf::from(common);
        let p = if p.is_absolute() { p } else { self.dir.join(p) };
        Ok(p.join("lakelet"))
    }
}
