//! Pull requests and CI runs as JSON records in a directory: the daemon keeps one set for every
//! clone and principal of its project (DATA/forge), and a project against Lakebase, with no
//! daemon, keeps its own in the git directory. One numbering per directory: a PR number is
//! claimed with `create_new`, so two openers at once never share one.
//!
//! This is storage only; who may open, record on, merge or close a PR is the routes' to
//! decide (`forge.rs`).

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
    /// The feature's database branch.
    pub database_branch: Option<String>,
    /// open, merged or closed.
    pub state: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// The principal that opened it; `None` in a record written before the daemon kept PRs.
    #[serde(default)]
    pub opened_by: Option<String>,
    /// The principal that merged or closed it.
    #[serde(default)]
    pub closed_by: Option<String>,
    /// The schema diff against the base, Markdown: what a reviewer reads.
    #[serde(default)]
    pub diff: Option<String>,
    /// Reviewers' approvals, each of the head it looked at.
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub by: String,
    /// The head commit approved.
    pub sha: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// `ci-pr-7-1`: the kind, the PR and the run's sequence number.
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
    /// The database branch the run used (`ci-pr-7-2`), forked for it alone.
    #[serde(default)]
    pub branch: Option<String>,
    /// Who recorded it, and that principal's role: a merge trusts only runs recorded by a
    /// role that may merge (or by the merger itself).
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub by_role: Option<String>,
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

/// How a record's URL is written: a `file://` path, or the daemon's API route.
#[derive(Debug, Clone)]
pub enum Urls {
    Files,
    /// `http://127.0.0.1:PORT/lakelet/v1`.
    Api(String),
}

/// The number or id at the end of a record's URL (`…/prs/7`, `…/runs/ci-pr-7-1`,
/// `file://…/prs/7.json`).
pub fn id_of(url: &str) -> &str {
    let tail = url.rsplit('/').next().unwrap_or(url);
    tail.strip_suffix(".json").unwrap_or(tail)
}

pub struct Records {
    dir: PathBuf,
    urls: Urls,
}

impl Records {
    pub fn at(dir: PathBuf, urls: Urls) -> Records {
        Records { dir, urls }
    }

    fn prs(&self) -> PathBuf {
        self.dir.join("prs")
    }

    fn runs(&self) -> PathBuf {
        self.dir.join("runs")
    }

    fn url(&self, kind: &str, id: &str) -> String {
        match &self.urls {
            Urls::Files => format!("file://{}", self.dir.join(kind).join(id).display()) + ".json",
            Urls::Api(base) => format!("{base}/{kind}/{id}"),
        }
    }

    /// Opens `pr` under the next number (its `number` and `url` are set here).
    pub fn open(&self, mut pr: Pr) -> Result<Pr> {
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
                    pr.number = n;
                    pr.url = self.url("prs", &n.to_string());
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

    pub fn list(&self) -> Result<Vec<Pr>> {
        let mut v: Vec<Pr> = list(&self.prs())?;
        v.sort_by_key(|p| p.number);
        Ok(v)
    }

    /// The next sequence number of `kind` runs of PR `pr` (1 for the first).
    pub fn next_seq(&self, kind: &str, pr: u64) -> Result<u64> {
        Ok(next_seq(&self.all_runs()?, kind, pr))
    }

    /// Records a finished run under the next sequence number for its PR and kind.
    pub fn record(&self, mut run: Run) -> Result<Run> {
        std::fs::create_dir_all(self.runs())?;
        let mut seq = self.next_seq(&run.kind, run.pr)?;
        loop {
            run.id = format!("{}-pr-{}-{seq}", run.kind, run.pr);
            let p = self.runs().join(format!("{}.json", run.id));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
            {
                Ok(_) => {
                    run.url = self.url("runs", &run.id);
                    crate::util::write_atomically(&p, &serde_json::to_vec_pretty(&run)?, 0o644)?;
                    return Ok(run);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => seq += 1,
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
    }

    pub fn run(&self, id: &str) -> Result<Option<Run>> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            bail!("{id:?} is not a run id");
        }
        read(&self.runs().join(format!("{id}.json")))
    }

    pub fn all_runs(&self) -> Result<Vec<Run>> {
        list(&self.runs())
    }

    pub fn runs_of(&self, pr: u64) -> Result<Vec<Run>> {
        let mut v: Vec<Run> = self
            .all_runs()?
            .into_iter()
            .filter(|r| r.pr == pr)
            .collect();
        v.sort_by(|a, b| a.finished_at.cmp(&b.finished_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }
}

/// The sequence number after the highest of the `kind` runs of PR `pr` among `runs` (their
/// ids are `KIND-pr-PR-SEQ`), 1 for the first.
pub fn next_seq(runs: &[Run], kind: &str, pr: u64) -> u64 {
    let prefix = format!("{kind}-pr-{pr}-");
    runs.iter()
        .filter_map(|r| r.id.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1
}

/// A record, `None` when there is none (or only its claimed, still empty, file).
pub fn read<T: for<'de> Deserialize<'de>>(p: &Path) -> Result<Option<T>> {
    match std::fs::read(p) {
        // An empty file is a number claimed a moment before its record is written.
        Ok(b) if b.is_empty() => Ok(None),
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
            if let Some(v) = read(&p)? {
                out.push(v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(head: &str) -> Pr {
        Pr {
            number: 0,
            url: String::new(),
            head: head.into(),
            base: "staging".into(),
            database_branch: None,
            state: "open".into(),
            opened_at: String::new(),
            closed_at: None,
            title: String::new(),
            body: String::new(),
            opened_by: None,
            closed_by: None,
            diff: None,
            approvals: vec![],
        }
    }

    #[test]
    fn openers_at_once_never_share_a_number() {
        let tmp = tempfile::tempdir().unwrap();
        let r = std::sync::Arc::new(Records::at(
            tmp.path().to_path_buf(),
            Urls::Api("http://x/lakelet/v1".into()),
        ));
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let r = r.clone();
                std::thread::spawn(move || r.open(pr(&format!("feature/f{i}"))).unwrap().number)
            })
            .collect();
        let mut n: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        n.sort();
        assert_eq!(n, (1..=8).collect::<Vec<_>>());
        let p = r.pr(3).unwrap().unwrap();
        assert_eq!(p.url, "http://x/lakelet/v1/prs/3");
        assert_eq!(id_of(&p.url), "3");
        assert_eq!(id_of("file:///a/prs/12.json"), "12");
    }
}
