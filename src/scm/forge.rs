//! The local forge: pull requests and CI runs as records in the repository's git directory,
//! for laptops and CI runners with no GitHub. A record's `file://` URL is what the state file
//! carries as `pr_url`, `ci_run_url` and `migrate_run_url`, so every gate can re-read what
//! it points at instead of trusting the state file's word.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pr {
    pub number: u64,
    pub url: String,
    /// The feature's git branch.
    pub head: String,
    /// The tier it merges into (git branch and database branch of that name).
    pub base: String,
    /// The feature's database branch, deleted when the PR is merged or closed.
    pub database_branch: Option<String>,
    /// open, merged or closed.
    pub state: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// `pr-7-1`: the PR and the run's sequence number, or `merge-pr-7-1`.
    pub id: String,
    pub url: String,
    pub kind: String,
    pub pr: u64,
    /// The commit that was tested (or merged).
    pub sha: String,
    /// success or failure.
    pub conclusion: String,
    pub started_at: String,
    pub finished_at: String,
    /// Each step and what came of it.
    pub steps: Vec<Step>,
    /// The schema-diff comment, Markdown.
    pub comment: Option<PathBuf>,
    /// A pre-migration snapshot, if the run took one and kept it.
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Run {
    pub fn green(&self) -> bool {
        self.conclusion == "success"
    }
}

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

pub struct Forge {
    dir: PathBuf,
}

fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

impl Forge {
    pub fn at(records: PathBuf) -> Forge {
        Forge { dir: records }
    }

    fn prs(&self) -> PathBuf {
        self.dir.join("prs")
    }

    fn runs(&self) -> PathBuf {
        self.dir.join("runs")
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
        let m: Option<Made> = read(&self.made_dir().join(format!("{name}.json")))?;
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

    /// Opens a PR: the next number, claimed with `create_new` so two at once cannot share it.
    pub fn open(&self, head: &str, base: &str, database_branch: &str) -> Result<Pr> {
        std::fs::create_dir_all(self.prs())?;
        let mut n = self.list()?.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        loop {
            let p = self.prs().join(format!("{n}.json"));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
            {
                Ok(_) => {
                    let pr = Pr {
                        number: n,
                        url: url(&p),
                        head: head.into(),
                        base: base.into(),
                        database_branch: Some(database_branch.into()),
                        state: "open".into(),
                        opened_at: super::state::now(),
                        closed_at: None,
                    };
                    self.save(&pr)?;
                    return Ok(pr);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
    }

    pub fn save(&self, pr: &Pr) -> Result<()> {
        let p = self.prs().join(format!("{}.json", pr.number));
        crate::util::write_atomically(&p, &serde_json::to_vec_pretty(pr)?, 0o644)
    }

    pub fn pr(&self, n: u64) -> Result<Option<Pr>> {
        read(&self.prs().join(format!("{n}.json")))
    }

    /// The PR a state file's `pr_url` names.
    pub fn pr_at(&self, url: &str) -> Result<Pr> {
        let path = url.strip_prefix("file://").with_context(|| {
            format!(
                "pr_url {url} is not a local pull request; this project's PRs live on a remote \
                 forge, which lakelet cannot reach offline"
            )
        })?;
        read(Path::new(path))?
            .with_context(|| format!("the pull request {url} does not exist (was .git cleaned?)"))
    }

    pub fn list(&self) -> Result<Vec<Pr>> {
        list(&self.prs())
    }

    pub fn set_state(&self, pr: &mut Pr, state: &str) -> Result<()> {
        pr.state = state.into();
        pr.closed_at = Some(super::state::now());
        self.save(pr)
    }

    /// Records a finished run under the next sequence number for its PR.
    pub fn record(&self, mut run: Run) -> Result<Run> {
        std::fs::create_dir_all(self.runs())?;
        let prefix = format!("{}-pr-{}-", run.kind, run.pr);
        let seq = self
            .all_runs()?
            .iter()
            .filter_map(|r| r.id.strip_prefix(&prefix)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        run.id = format!("{prefix}{seq}");
        let p = self.runs().join(format!("{}.json", run.id));
        run.url = url(&p);
        crate::util::write_atomically(&p, &serde_json::to_vec_pretty(&run)?, 0o644)?;
        Ok(run)
    }

    pub fn run_at(&self, url: &str) -> Result<Run> {
        let path = url
            .strip_prefix("file://")
            .with_context(|| format!("ci_run_url {url} is not a local CI run"))?;
        read(Path::new(path))?.with_context(|| format!("the CI run {url} does not exist"))
    }

    pub fn all_runs(&self) -> Result<Vec<Run>> {
        list(&self.runs())
    }

    /// The newest CI run of `pr` that tested `sha`.
    pub fn latest_ci(&self, pr: u64, sha: &str) -> Result<Option<Run>> {
        let mut runs: Vec<Run> = self
            .all_runs()?
            .into_iter()
            .filter(|r| r.kind == "ci" && r.pr == pr && r.sha == sha)
            .collect();
        runs.sort_by(|a, b| a.finished_at.cmp(&b.finished_at).then(a.id.cmp(&b.id)));
        Ok(runs.pop())
    }
}

fn read<T: for<'de> Deserialize<'de>>(p: &Path) -> Result<Option<T>> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{} is not a lakelet record", p.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

fn list<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>> {
    let mut out = vec![];
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in rd {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            // An empty file is a PR number claimed a moment before its record is written.
            if std::fs::metadata(&p)?.len() == 0 {
                continue;
            }
            match read(&p)? {
                Some(v) => out.push(v),
                None => bail!("{} vanished while listing", p.display()),
            }
        }
    }
    Ok(out)
}
