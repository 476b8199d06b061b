//! `lakelet init`: the files a project needs for the workflow. Existing files are kept
//! (`--force` rewrites lakelet.toml and the workflows, never a state file: a feature in flight
//! is not reset by re-scaffolding).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::state::{self, WorkflowState};
use super::Project;

/// The workflow templates, by path.
pub const WORKFLOWS: [(&str, &str); 4] = [
    (".github/workflows/pr.yml", include_str!("templates/pr.yml")),
    (
        ".github/workflows/promote.yml",
        include_str!("templates/promote.yml"),
    ),
    (
        ".github/workflows/merge.yml",
        include_str!("templates/merge.yml"),
    ),
    (
        ".github/workflows/cleanup-orphans.yml",
        include_str!("templates/cleanup-orphans.yml"),
    ),
];

/// Every scaffolded path (relative) and whether it exists.
pub fn files(dir: &Path) -> Vec<(String, bool)> {
    let mut v = vec![
        (
            "lakelet.toml".to_string(),
            dir.join("lakelet.toml").is_file(),
        ),
        ("migrations/".to_string(), dir.join("migrations").is_dir()),
    ];
    for (rel, _) in WORKFLOWS {
        v.push((rel.to_string(), dir.join(rel).is_file()));
    }
    v.push((state::FILE.to_string(), state::path(dir).is_file()));
    v
}

/// Writes one scaffolded file of an existing project (`doctor --fix`).
pub fn write_one(p: &Project, rel: &str) -> Result<()> {
    let path = p.dir.join(rel.trim_end_matches('/'));
    if rel == "migrations/" {
        return std::fs::create_dir_all(&path).with_context(|| format!("creating {rel}"));
    }
    if rel == state::FILE {
        return state::save(&p.dir, &WorkflowState::scaffold(&p.id, p.tier_topology()?));
    }
    let text = WORKFLOWS
        .iter()
        .find(|(r, _)| *r == rel)
        .map(|(_, t)| *t)
        .with_context(|| format!("{rel} is not written by the scaffold; see `lakelet init`"))?;
    write(&path, text)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("a file"))?;
    crate::util::write_atomically(path, text.as_bytes(), 0o644)
}

#[derive(Debug, Serialize)]
pub struct Scaffolded {
    pub written: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
    pub state: WorkflowState,
}

/// Scaffolds `dir`. `project_id` replaces the starter's when lakelet.toml is written;
/// `load` reads the project back from the lakelet.toml that is then in place.
pub fn init(
    dir: &Path,
    project_id: Option<&str>,
    force: bool,
    load: &dyn Fn() -> Result<Project>,
) -> Result<Scaffolded> {
    let mut written = vec![];
    let mut kept = vec![];
    let toml = dir.join("lakelet.toml");
    if !toml.exists() || force {
        let mut text = crate::policy::STARTER.to_string();
        if let Some(id) = project_id {
            text = text.replacen("id = \"my-app\"", &format!("id = \"{id}\""), 1);
        }
        write(&toml, &text)?;
        written.push(toml);
    } else {
        kept.push(toml);
    }
    // Read back before anything else is written: a broken lakelet.toml stops here.
    let p = load()?;
    let topology = p.tier_topology()?;
    let migrations = dir.join("migrations");
    if !migrations.is_dir() {
        std::fs::create_dir_all(&migrations)?;
        written.push(migrations);
    }
    for (rel, text) in WORKFLOWS {
        let path = dir.join(rel);
        if !path.exists() || force {
            write(&path, text)?;
            written.push(path);
        } else {
            kept.push(path);
        }
    }
    let state = match state::load(dir) {
        Ok(s) => {
            kept.push(state::path(dir));
            s
        }
        Err(_) if state::path(dir).exists() => {
            // An invalid state file is the user's to fix; never overwrite it silently.
            state::load(dir)?
        }
        Err(_) => {
            let s = WorkflowState::scaffold(&p.id, topology);
            state::save(dir, &s)?;
            written.push(state::path(dir));
            s
        }
    };
    Ok(Scaffolded {
        written,
        kept,
        state,
    })
}
