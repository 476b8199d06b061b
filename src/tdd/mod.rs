//! The opt-in TDD layer (`lakelet tdd …`): spec-first test-driven development in the
//! Lakebase App Dev Kit's formats (the kit calls it SFTDD), so a team moves between the kit
//! and lakelet with the same `.sftdd/` directory.
//!
//! A feature goes intake → role steps (spec-author, architect-reviewer, test-strategist) →
//! the spec gate → the test_list gate, which locks the test list and its test code →
//! red-green-refactor cycles (navigator, driver), each on its own database branch → review,
//! and only then may `lakelet scm prepare-pr` move the SCM state to pr-ready.
//!
//! **Boundary:** tdd knows scm's branch primitive ([`crate::scm::Env::fork`]) and its state
//! file; scm knows nothing of tdd but one named check (`crate::scm::Check`, named "tdd") that
//! the CLI hands to prepare-pr when `[tdd] enabled = true`. lakelet itself is the scrum master:
//! a deterministic coordinator (`tdd advance`), not an agent.
//!
//! - `schema.rs`: the embedded draft-07 schemas and reading an artifact (missing, malformed, ok)
//! - `intake.rs`: a feature request becomes feature-spec.json, the phase and the pipeline
//! - `roles.rs`: the roles, their inputs and outputs, who may act, the anti-self-grading rule
//! - `gates.rs`: the spec and test_list gates, approvals (gates.json), `advance`, the PR check
//! - `lock.rs`: the locked test list: per-item and per-test-code hashes, deleted and weakened
//! - `cycle.rs`: red-green-refactor on a cycle branch; `status.rs`: what blocks

pub mod cycle;
pub mod gates;
pub mod intake;
pub mod lock;
pub mod roles;
pub mod schema;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub use roles::Role;

/// The artifact root inside the project, as the kit names it.
pub const ROOT: &str = ".sftdd";

/// `[tdd]` in lakelet.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Off unless set: without it `lakelet tdd …` refuses and scm behaves as it always did.
    pub enabled: bool,
    /// Run by `sh -c` in the project for each cycle step, with `{test}` replaced by the
    /// item's test name (else its id), `{file}` by its test file, and DATABASE_URL set to
    /// the cycle's branch. Red needs it to fail, green and refactor to pass.
    pub test_command: Option<String>,
    /// role → principal globs (`*` any run, as in the policy). A role not listed may be taken
    /// by any principal.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Pairs of roles one principal may not both hold on the same story, e.g.
    /// `[["test-strategist", "driver"]]`: whoever wrote a story's tests does not make them pass.
    pub separate: Vec<Vec<String>>,
}

impl Config {
    /// Every role name known and every pair a pair; the error names the key.
    pub fn check(&self) -> Result<()> {
        for r in self.roles.keys() {
            Role::parse(r).with_context(|| format!("[tdd.roles] {r}"))?;
        }
        for pair in &self.separate {
            if pair.len() != 2 {
                bail!("[tdd] separate: each entry is a pair of roles, got {pair:?}");
            }
            for r in pair {
                Role::parse(r).with_context(|| format!("[tdd] separate {pair:?}"))?;
            }
        }
        Ok(())
    }
}

/// The TDD layer of one project, as the acting principal sees it.
pub struct Tdd {
    /// The project root (where lakelet.toml is).
    pub dir: PathBuf,
    pub cfg: Config,
    /// Who acts: `--as` / LAKELET_PRINCIPAL, else the owner. File-only steps take this claim
    /// as given (the artifacts and the ledger are committed and reviewed); steps that reach
    /// the daemon are authenticated by it as this principal too.
    pub principal: String,
}

/// Says how to turn TDD on, when it is off.
pub fn require_enabled(cfg: &Config, toml: Option<&Path>) -> Result<()> {
    if !cfg.enabled {
        bail!(
            "TDD is off for this project; add\n\n[tdd]\nenabled = true\n\nto {} to turn it on \
             (artifacts then live under {ROOT}/, and `lakelet scm prepare-pr` requires the \
             feature's TDD gates)",
            toml.map_or("lakelet.toml".into(), |p| p.display().to_string())
        );
    }
    cfg.check()
}

impl Tdd {
    pub fn root(&self) -> PathBuf {
        self.dir.join(ROOT)
    }
    pub fn feature_dir(&self, f: &str) -> PathBuf {
        self.root().join("features").join(f)
    }
    pub fn story_dir(&self, f: &str, s: &str) -> PathBuf {
        self.feature_dir(f).join("stories").join(s)
    }
    pub fn cycles_dir(&self, f: &str) -> PathBuf {
        self.root().join("cycles").join(f)
    }
    /// A path relative to the project, for messages.
    pub fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.dir).unwrap_or(p).display().to_string()
    }

    /// The feature must have gone through intake.
    pub fn feature(&self, f: &str) -> Result<()> {
        check_id("feature", "F", f)?;
        if !self.feature_dir(f).join("feature-spec.json").is_file() {
            bail!(
                "feature {f} has no {}; `lakelet tdd intake FILE --feature {f}` first",
                self.rel(&self.feature_dir(f).join("feature-spec.json"))
            );
        }
        Ok(())
    }
}

/// The kit's id pattern: the prefix, a number, and an optional lowercase slug
/// (`F1-stock-visibility`, `S2`, `AC3-empty-state`, `T5`).
pub fn valid_id(prefix: &str, id: &str) -> bool {
    let Some(rest) = id.strip_prefix(prefix) else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    match &rest[digits..] {
        "" => true,
        slug => {
            slug.len() > 1
                && slug.starts_with('-')
                && slug[1..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
    }
}

pub fn check_id(what: &str, p: &str, id: &str) -> Result<()> {
    if !valid_id(p, id) {
        bail!(
            "{what} id {id:?} is invalid: {p}<number> with an optional lowercase slug, e.g. {p}1-short-name"
        );
    }
    Ok(())
}

/// Writes pretty JSON atomically, creating the directory.
pub fn write_json(p: &Path, v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    write_text(p, &s)
}

pub fn write_text(p: &Path, s: &str) -> Result<()> {
    std::fs::create_dir_all(p.parent().expect("a file"))
        .with_context(|| format!("creating {}", p.parent().unwrap().display()))?;
    crate::util::write_atomically(p, s.as_bytes(), 0o644)
}

/// Now, as the artifacts write time (RFC 3339, UTC, seconds).
pub fn now() -> String {
    crate::scm::state::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_kit_pattern() {
        for ok in ["F1", "F12-stock-visibility", "F1-a"] {
            assert!(valid_id("F", ok), "{ok}");
        }
        for bad in ["F", "F-x", "F1-", "F1-Stock", "f1", "F1_x", "S1"] {
            assert!(!valid_id("F", bad), "{bad}");
        }
        assert!(valid_id("AC", "AC2-file-new"));
        assert!(check_id("ac", "AC", "AC2").is_ok());
        assert!(check_id("story", "S", "S2x").is_err());
    }
}
