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
        // Only the end: leading spaces carry meaning (`git status --porcelain`'s " M").
        Ok(String::from_utf8_lossy(&o.stdout).trim_end().to_string())
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

    /// Switches to branch `b` as origin has it (fetched already): the local branch moved up
    /// to `origin/b` (fast-forward only: local work on it is never dropped), or made to
    /// track it.
    pub fn switch_to_origins(&self, b: &str) -> Result<()> {
        let remote = format!("origin/{b}");
        if self.has_branch(b) {
            self.out(&["switch", "--quiet", b])?;
            self.out(&["merge", "--quiet", "--ff-only", &remote])?;
        } else {
            self.out(&["switch", "--quiet", "--track", "-c", b, &remote])?;
        }
        Ok(())
    }

    /// Uncommitted changes outside `.lakebase/` (the workflow's own files), as `git status`
    /// lines. Untracked files count: a migration never committed would never reach CI.
    pub fn dirty(&self) -> Result<Vec<String>> {
        // NUL-separated: paths are not quoted, and a rename's old path is its own entry.
        let out = self.out(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?;
        Ok(parse_status_z(&out))
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

/// `git status --porcelain=v1 -z` as "XY path" lines, without the workflow's own files: the
/// state under `.lakebase/`, and `.sftdd/`, which the App Dev Kit's prepare-pr also leaves
/// out (the artifacts of a TDD layer, where one runs, change as the workflow moves).
fn parse_status_z(out: &str) -> Vec<String> {
    let mut entries = out.split('\0').filter(|e| !e.is_empty());
    let mut dirty = vec![];
    while let Some(e) = entries.next() {
        let (xy, path) = (e.get(..2).unwrap_or(""), e.get(3..).unwrap_or(""));
        if xy.starts_with('R') || xy.starts_with('C') {
            entries.next(); // the old path
        }
        if !path.starts_with(".lakebase/") && !path.starts_with(".sftdd/") {
            dirty.push(format!("{xy} {path}"));
        }
    }
    dirty
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committed, modified state file is the workflow's own, whatever its position in the
    /// output (the first line's leading space was once trimmed away, so it counted as dirty).
    #[test]
    fn the_state_file_is_never_a_dirty_change() {
        let tmp = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .current_dir(tmp.path())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        git(&["init", "-q"]);
        std::fs::create_dir(tmp.path().join(".lakebase")).unwrap();
        std::fs::write(tmp.path().join(".lakebase/workflow-state.json"), "{}").unwrap();
        std::fs::write(tmp.path().join("a b.sql"), "x").unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "init"]);
        let g = Git::open(tmp.path()).unwrap();
        assert!(g.dirty().unwrap().is_empty());
        std::fs::write(
            tmp.path().join(".lakebase/workflow-state.json"),
            "{\"state\":1}",
        )
        .unwrap();
        assert_eq!(g.dirty().unwrap(), Vec::<String>::new());
        std::fs::create_dir(tmp.path().join(".sftdd")).unwrap();
        std::fs::write(tmp.path().join(".sftdd/workflow-state.json"), "{}").unwrap();
        assert_eq!(g.dirty().unwrap(), Vec::<String>::new());
        std::fs::write(tmp.path().join("a b.sql"), "y").unwrap();
        git(&["mv", "a b.sql", "c.sql"]);
        std::fs::write(tmp.path().join("new.sql"), "z").unwrap();
        assert_eq!(g.dirty().unwrap(), vec!["RM c.sql", "?? new.sql"]);
    }
}
