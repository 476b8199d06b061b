//! The draft-07 schemas of the TDD artifacts, shipped with the binary (`lakelet tdd schema
//! KIND` prints one). They are lakelet's own text; their required fields, enums and id
//! patterns follow the App Dev Kit's published schemas so the artifacts move between the two.
//!
//! An artifact is read as one of three things, and every gate treats a malformed one as
//! missing: it never fills in placeholders, and it names the file and each violation.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FeatureSpec,
    Story,
    Ac,
    Architecture,
    TestList,
    Pipeline,
    WorkflowState,
    Cycle,
}

pub const ALL: [Kind; 8] = [
    Kind::FeatureSpec,
    Kind::Story,
    Kind::Ac,
    Kind::Architecture,
    Kind::TestList,
    Kind::Pipeline,
    Kind::WorkflowState,
    Kind::Cycle,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FeatureSpec => "feature-spec",
            Kind::Story => "story",
            Kind::Ac => "ac",
            Kind::Architecture => "architecture",
            Kind::TestList => "test-list",
            Kind::Pipeline => "story-pipeline",
            Kind::WorkflowState => "workflow-state",
            Kind::Cycle => "cycle",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn text(self) -> &'static str {
        match self {
            Kind::FeatureSpec => include_str!("schemas/feature-spec.schema.json"),
            Kind::Story => include_str!("schemas/story.schema.json"),
            Kind::Ac => include_str!("schemas/ac.schema.json"),
            Kind::Architecture => include_str!("schemas/architecture.schema.json"),
            Kind::TestList => include_str!("schemas/test-list.schema.json"),
            Kind::Pipeline => include_str!("schemas/story-pipeline.schema.json"),
            Kind::WorkflowState => include_str!("schemas/workflow-state.schema.json"),
            Kind::Cycle => include_str!("schemas/cycle.schema.json"),
        }
    }

    fn validator(self) -> &'static jsonschema::Validator {
        static V: OnceLock<Vec<jsonschema::Validator>> = OnceLock::new();
        let all = V.get_or_init(|| ALL.iter().map(|k| crate::util::draft7(k.text())).collect());
        &all[ALL.iter().position(|k| *k == self).expect("listed")]
    }
}

/// Every way `v` breaks the kind's schema (empty when it conforms).
pub fn violations(kind: Kind, v: &Value) -> Vec<String> {
    crate::util::violations(kind.validator(), v)
}

/// An artifact as a gate sees it.
pub enum Artifact {
    Missing(PathBuf),
    /// Not JSON, or breaks the schema: the reasons.
    Malformed(PathBuf, Vec<String>),
    Ok(Value),
}

impl Artifact {
    pub fn ok(&self) -> Option<&Value> {
        match self {
            Artifact::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// Why a gate refuses it, naming the file (relative to `base`) and the schema; None when
    /// it is valid.
    pub fn problem(&self, kind: Kind, base: &Path) -> Option<String> {
        let rel = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
        match self {
            Artifact::Ok(_) => None,
            Artifact::Missing(p) => Some(format!("{} is missing", rel(p))),
            Artifact::Malformed(p, why) => Some(format!(
                "{} is malformed (treated as missing): it breaks the {} schema: {}",
                rel(p),
                kind.name(),
                why.join("; ")
            )),
        }
    }
}

pub fn read(kind: Kind, p: &Path) -> Artifact {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Artifact::Missing(p.to_path_buf())
        }
        Err(e) => return Artifact::Malformed(p.to_path_buf(), vec![format!("unreadable: {e}")]),
    };
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Artifact::Malformed(p.to_path_buf(), vec![format!("not JSON: {e}")]),
    };
    let bad = violations(kind, &v);
    if bad.is_empty() {
        Artifact::Ok(v)
    } else {
        Artifact::Malformed(p.to_path_buf(), bad)
    }
}

/// Reads a valid artifact or says why not (for the steps that need one to go on).
pub fn need(kind: Kind, p: &Path, base: &Path) -> anyhow::Result<Value> {
    match read(kind, p) {
        Artifact::Ok(v) => Ok(v),
        a => anyhow::bail!("{}", a.problem(kind, base).expect("not ok")),
    }
}

/// Validates and writes: lakelet never writes an artifact its own schema refuses.
pub fn write(kind: Kind, p: &Path, v: &Value) -> anyhow::Result<()> {
    let bad = violations(kind, v);
    if !bad.is_empty() {
        anyhow::bail!(
            "refusing to write {} that breaks the {} schema (a lakelet bug): {}",
            p.display(),
            kind.name(),
            bad.join("; ")
        );
    }
    super::write_json(p, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_refuses_an_empty_object() {
        for k in ALL {
            assert!(
                !violations(k, &serde_json::json!({})).is_empty(),
                "{}",
                k.name()
            );
        }
    }
}
