//! `.lakebase/workflow-state.json`: the SCM machine's one piece of state, in the Lakebase App
//! Dev Kit's version-1 format so a project moves between lakelet and the kit unchanged.
//!
//! The JSON Schema next to this file is the format's only definition: every read and every
//! write is checked against it (a hand-edited file that breaks it blocks the next gate), and
//! writes are atomic (temp file + rename), so a crash leaves the old state or the new one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The draft-07 schema, shipped with the binary (`lakelet scm state --schema` prints it).
pub const SCHEMA: &str = include_str!("workflow-state.schema.json");

/// Where the state lives, relative to the project.
pub const FILE: &str = ".lakebase/workflow-state.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    ScaffoldComplete,
    FeatureClaimed,
    PrReady,
    CiGreen,
    Merged,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::ScaffoldComplete => "scaffold-complete",
            Phase::FeatureClaimed => "feature-claimed",
            Phase::PrReady => "pr-ready",
            Phase::CiGreen => "ci-green",
            Phase::Merged => "merged",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the state file. Field order is the kit's output order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// The kit writes a `$schema` pointer; kept when present, never added.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub version: u32,
    pub state: Phase,
    pub tier_topology: u8,
    pub project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_id: Option<String>,
    /// The feature's git branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The tier the feature forked from (its git branch and database branch share the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_branch: Option<String>,
    /// The uid of the feature's database branch: a name can be reused, the uid cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lakebase_branch_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_green_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_run_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_completed_at: Option<String>,
}

impl WorkflowState {
    /// What `lakelet init` writes.
    pub fn scaffold(project_id: &str, tier_topology: u8) -> WorkflowState {
        WorkflowState {
            schema: None,
            version: 1,
            state: Phase::ScaffoldComplete,
            tier_topology,
            project_id: project_id.to_string(),
            feature_id: None,
            branch: None,
            parent_branch: None,
            lakebase_branch_uid: None,
            claimed_at: None,
            pr_url: None,
            pushed_at: None,
            ci_run_url: None,
            ci_green_at: None,
            merged_at: None,
            migrate_run_url: None,
            migrate_completed_at: None,
        }
    }

    /// Back to scaffold-complete: every feature field goes (abandon, recovery).
    pub fn cleared(&self) -> WorkflowState {
        WorkflowState {
            schema: self.schema.clone(),
            ..WorkflowState::scaffold(&self.project_id, self.tier_topology)
        }
    }

    /// A field the state's phase guarantees (the schema checked it on read).
    pub fn get(&self, field: &str) -> &str {
        let v = match field {
            "feature_id" => &self.feature_id,
            "branch" => &self.branch,
            "parent_branch" => &self.parent_branch,
            "lakebase_branch_uid" => &self.lakebase_branch_uid,
            "pr_url" => &self.pr_url,
            "ci_run_url" => &self.ci_run_url,
            _ => &None,
        };
        v.as_deref().unwrap_or_else(|| {
            panic!(
                "{field} is required in state {} and was validated",
                self.state
            )
        })
    }
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| crate::util::draft7(SCHEMA))
}

/// Every way `v` breaks the schema, as `path: message` lines (empty when it conforms).
pub fn violations(v: &serde_json::Value) -> Vec<String> {
    crate::util::violations(validator(), v)
}

pub fn path(project: &Path) -> PathBuf {
    project.join(FILE)
}

/// Reads and validates the state. A missing file says how to create one; a file that breaks
/// the schema names every violation and blocks whoever asked.
pub fn load(project: &Path) -> Result<WorkflowState> {
    let p = path(project);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no SCM state in {}: run `lakelet init` to scaffold the project (or `lakelet scm \
             doctor` to see what is missing)",
            p.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    parse(&text).with_context(|| {
        format!(
            "{} is not a valid workflow state, so no gate can trust it; fix it by hand (the \
             schema is `lakelet scm state --schema`), or put back the last good copy",
            p.display()
        )
    })
}

pub fn parse(text: &str) -> Result<WorkflowState> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| anyhow!("not JSON: {e}"))?;
    let bad = violations(&v);
    if !bad.is_empty() {
        bail!("it breaks the schema:\n  {}", bad.join("\n  "));
    }
    Ok(serde_json::from_value(v)?)
}

/// Validates and writes the state atomically. An invalid state is a bug in a gate: refused
/// before anything reaches the disk.
pub fn save(project: &Path, s: &WorkflowState) -> Result<()> {
    let v = serde_json::to_value(s)?;
    let bad = violations(&v);
    if !bad.is_empty() {
        bail!(
            "refusing to write an invalid workflow state (a lakelet bug):\n  {}",
            bad.join("\n  ")
        );
    }
    let p = path(project);
    std::fs::create_dir_all(p.parent().expect("FILE has a directory"))
        .with_context(|| format!("creating {}", p.display()))?;
    // From the struct, not the Value: the kit's field order, not the map's sorted one.
    let text = serde_json::to_string_pretty(s)? + "\n";
    crate::util::write_atomically(&p, text.as_bytes(), 0o644)
}

/// Now, as the state file writes times (RFC 3339, seconds, UTC).
pub fn now() -> String {
    let secs = crate::util::now_nanos() / 1_000_000_000;
    crate::storage::format_time(secs * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claimed() -> serde_json::Value {
        json!({
            "version": 1, "state": "feature-claimed", "tier_topology": 2, "project_id": "p",
            "feature_id": "split-code", "branch": "feature/split-code", "parent_branch": "staging",
            "lakebase_branch_uid": "br-0123", "claimed_at": "2026-11-21T10:00:00Z"
        })
    }

    #[test]
    fn the_schema_holds_each_state_to_its_fields() {
        assert!(violations(&claimed()).is_empty());
        let mut v = claimed();
        v["state"] = json!("pr-ready");
        let bad = violations(&v).join("\n");
        assert!(bad.contains("pr_url") && bad.contains("pushed_at"), "{bad}");
        v["pr_url"] = json!("file:///x");
        v["pushed_at"] = json!("2026-11-21T11:00:00Z");
        assert!(violations(&v).is_empty());
        // The kit's own pointer is allowed; anything else is not.
        v["$schema"] = json!("./scm-workflow-state.schema.json");
        assert!(violations(&v).is_empty());
        v["reviewer"] = json!("bob");
        assert!(!violations(&v).is_empty());
    }

    #[test]
    fn hand_edits_that_break_the_format_are_named() {
        for (field, value, needle) in [
            ("version", json!(2), "version"),
            ("state", json!("shipped"), "state"),
            ("tier_topology", json!(4), "tier_topology"),
            ("project_id", json!(""), "project_id"),
            ("claimed_at", json!("yesterday"), "claimed_at"),
            ("feature_id", json!(7), "feature_id"),
        ] {
            let mut v = claimed();
            v[field] = value;
            let bad = violations(&v).join("\n");
            assert!(bad.contains(needle), "{field}: {bad}");
            assert!(parse(&v.to_string()).is_err());
        }
        assert!(parse("{ not json").is_err());
        // A missing state is one violation, not every field of every state.
        let bad = violations(&json!({"version": 1, "tier_topology": 1, "project_id": "p"}));
        assert_eq!(bad.len(), 1, "{bad:?}");
    }

    #[test]
    fn a_round_trip_keeps_the_kit_order_and_nothing_else() {
        let s = parse(&claimed().to_string()).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.starts_with(r#"{"version":1,"state":"feature-claimed","tier_topology":2"#));
        assert_eq!(parse(&text).unwrap(), s);
        assert!(violations(&serde_json::to_value(s.cleared()).unwrap()).is_empty());
        assert!(
            violations(&json!({"version":1,"state":"merged","tier_topology":1,"project_id":"p"}))
                .len()
                >= 8
        );
        assert!(now().ends_with('Z') && !now().contains('.'), "{}", now());
    }
}
