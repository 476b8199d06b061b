//! The forge the gates use: pull requests and CI runs. Against a local daemon they are the
//! daemon's (one numbering for every clone and principal of the project, decided and audited
//! there); against Lakebase, with no daemon, they are records in the repository's git
//! directory. A record's URL is what the state file carries as `pr_url`, `ci_run_url` and
//! `migrate_run_url`, so every gate re-reads what it points at instead of trusting the state
//! file's word.
//!
//! The ledger of database branches the workflow made stays in the git directory: it is this
//! clone's, and what this clone's cleanups may touch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::api::client::Client;
use crate::api::records::{id_of, next_seq, read, Records, Urls};
pub use crate::api::records::{Pr, Run, Step};

/// A database branch the workflow made (the ledger): what its cleanups may touch, and only
/// while the name still holds the same branch (same uid).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Made {
    pub name: String,
    pub uid: Option<String>,
    /// The gate that made it (`scm.claim`).
    pub by: String,
    pub at: String,
}

/// What a PR is opened with.
#[derive(Debug, Clone, Serialize)]
pub struct Opening {
    pub head: String,
    pub base: String,
    pub database_branch: String,
    pub title: String,
    pub body: String,
    pub diff: Option<String>,
}

enum Backend {
    /// The git directory's records (a project against Lakebase).
    Local(Records),
    /// The daemon of this data directory.
    Daemon(PathBuf),
}

pub struct Forge {
    backend: Backend,
    /// The git directory's `lakelet/`: the ledger and the logs.
    dir: PathBuf,
}

impl Forge {
    /// PRs and runs in `records` (the git directory's `lakelet/`).
    pub fn at(records: PathBuf) -> Forge {
        Forge {
            backend: Backend::Local(Records::at(records.clone(), Urls::Files)),
            dir: records,
        }
    }

    /// PRs and runs kept by the daemon of `data_dir`; the ledger and logs in `records`.
    pub fn daemon(data_dir: PathBuf, records: PathBuf) -> Forge {
        Forge {
            backend: Backend::Daemon(data_dir),
            dir: records,
        }
    }

    fn client(dd: &Path) -> Result<Client> {
        Client::connect(dd)
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn made_dir(&self) -> PathBuf {
        self.dir.join("branches")
    }

    /// Records that the workflow made database branch `name` (uid `uid`).
    pub fn made(&self, name: &str, uid: Option<&str>, by: &str) -> Result<()> {
        std::fs::create_dir_all(self.made_dir())?;
        let m = Made {
            name: name.into(),
            uid: uid.map(str::to_string),
            by: by.into(),
            at: super::state::now(),
        };
        let p = self.made_dir().join(format!("{name}.json"));
        crate::util::write_atomically(&p, &serde_json::to_vec_pretty(&m)?, 0o644)
    }

    /// Whether the workflow made `name` as the branch that now has `uid`.
    pub fn made_it(&self, name: &str, uid: Option<&str>) -> Result<bool> {
        let p = self.made_dir().join(format!("{name}.json"));
        let m: Option<Made> = read(&p)?;
        Ok(m.is_some_and(|m| m.uid.is_some() && m.uid.as_deref() == uid))
    }

    /// Forgets `name` (its branch is gone).
    pub fn unmade(&self, name: &str) -> Result<()> {
        match std::fs::remove_file(self.made_dir().join(format!("{name}.json"))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a PR under the project's next number.
    pub fn open(&self, o: Opening) -> Result<Pr> {
        match &self.backend {
            Backend::Local(r) => r.open(Pr {
                number: 0,
                url: String::new(),
                head: o.head,
                base: o.base,
                database_branch: Some(o.database_branch),
                state: "open".into(),
                opened_at: super::state::now(),
                closed_at: None,
                title: o.title,
                body: o.body,
                opened_by: None,
                closed_by: None,
                diff: o.diff,
                approvals: vec![],
            }),
            Backend::Daemon(dd) => Self::client(dd)?.post("/prs", &o),
        }
    }

    pub fn pr(&self, n: u64) -> Result<Option<Pr>> {
        match &self.backend {
            Backend::Local(r) => r.pr(n),
            Backend::Daemon(dd) => match Self::client(dd)?.get(&format!("/prs/{n}")) {
                Ok(p) => Ok(Some(p)),
                Err(e) if crate::api::client::is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// The PR a state file's `pr_url` names.
    pub fn pr_at(&self, url: &str) -> Result<Pr> {
        if let Some(path) = url.strip_prefix("file://") {
            return read(Path::new(path))?.with_context(|| {
                format!("the pull request {url} does not exist (was .git cleaned?)")
            });
        }
        let n: u64 = match (&self.backend, url.starts_with("http")) {
            (Backend::Daemon(_), true) => id_of(url).parse().ok(),
            _ => None,
        }
        .with_context(|| {
            format!(
                "pr_url {url} is not a pull request lakelet keeps; this project's PRs live on \
                 a remote forge, which lakelet cannot reach offline"
            )
        })?;
        self.pr(n)?
            .with_context(|| format!("the pull request {url} does not exist on this daemon"))
    }

    pub fn list(&self) -> Result<Vec<Pr>> {
        match &self.backend {
            Backend::Local(r) => r.list(),
            Backend::Daemon(dd) => Self::client(dd)?.get("/prs"),
        }
    }

    /// Marks `pr` merged or closed (the daemon decides whether the caller may).
    pub fn set_state(&self, pr: &mut Pr, state: &str) -> Result<()> {
        match &self.backend {
            Backend::Local(r) => {
                pr.state = state.into();
                pr.closed_at = Some(super::state::now());
                r.save(pr)
            }
            Backend::Daemon(dd) => {
                *pr = Self::client(dd)?.post(
                    &format!("/prs/{}/state", pr.number),
                    &serde_json::json!({ "state": state }),
                )?;
                Ok(())
            }
        }
    }

    /// Approves PR `n` at head `sha` (the daemon decides whether the caller may).
    pub fn approve(&self, n: u64, sha: &str) -> Result<Pr> {
        match &self.backend {
            Backend::Local(_) => anyhow::bail!(
                "approvals are kept by a lakelet daemon; against Lakebase, review on your forge"
            ),
            Backend::Daemon(dd) => Self::client(dd)?.post(
                &format!("/prs/{n}/approvals"),
                &serde_json::json!({ "sha": sha }),
            ),
        }
    }

    /// The sequence number the next `kind` run of `pr` will get.
    pub fn next_seq(&self, kind: &str, pr: u64) -> Result<u64> {
        match &self.backend {
            Backend::Local(r) => r.next_seq(kind, pr),
            Backend::Daemon(_) => Ok(next_seq(&self.runs_of(pr)?, kind, pr)),
        }
    }

    /// Records a finished run under the next sequence number for its PR.
    pub fn record(&self, run: Run) -> Result<Run> {
        match &self.backend {
            Backend::Local(r) => r.record(run),
            Backend::Daemon(dd) => Self::client(dd)?.post(
                &format!("/prs/{}/runs", run.pr),
                &serde_json::json!({
                    "kind": run.kind, "sha": run.sha, "conclusion": run.conclusion,
                    "started_at": run.started_at, "finished_at": run.finished_at,
                    "steps": run.steps, "comment": run.comment, "snapshot": run.snapshot,
                    "branch": run.branch,
                }),
            ),
        }
    }

    pub fn run_at(&self, url: &str) -> Result<Run> {
        if let Some(path) = url.strip_prefix("file://") {
            return read(Path::new(path))?
                .with_context(|| format!("the CI run {url} does not exist"));
        }
        match &self.backend {
            Backend::Daemon(dd) if url.starts_with("http") => {
                Self::client(dd)?.get(&format!("/runs/{}", id_of(url)))
            }
            _ => anyhow::bail!("ci_run_url {url} is not a CI run lakelet keeps"),
        }
    }

    /// Every run of `pr`, oldest first.
    pub fn runs_of(&self, pr: u64) -> Result<Vec<Run>> {
        match &self.backend {
            Backend::Local(r) => r.runs_of(pr),
            Backend::Daemon(dd) => Self::client(dd)?.get(&format!("/prs/{pr}/runs")),
        }
    }

    /// The newest CI run of `pr` that tested `sha`.
    pub fn latest_ci(&self, pr: u64, sha: &str) -> Result<Option<Run>> {
        Ok(self
            .runs_of(pr)?
            .into_iter()
            .rfind(|r| r.kind == "ci" && r.sha == sha))
    }
}
