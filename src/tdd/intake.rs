//! `lakelet tdd intake FILE --feature F1-name`: a feature request (Markdown or JSON) becomes
//! `features/F/feature-spec.json` and `.md`, the phase file at discovery and an empty story
//! pipeline. Markdown: the first `# ` heading is the name, bullets under a heading containing
//! "success metric" become success_metrics; the text is kept as feature-spec.md.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::schema::{self, Kind};
use super::Tdd;

#[derive(Debug, Serialize)]
pub struct Intake {
    pub feature_id: String,
    pub written: Vec<String>,
}

/// Phases after which a new feature may start.
const DONE: [&str; 4] = ["review", "shipped", "abandoned", "done"];

pub fn intake(t: &Tdd, file: &Path, f: &str) -> Result<Intake> {
    super::check_id("feature", "F", f)?;
    let fd = t.feature_dir(f);
    if fd.join("feature-spec.json").exists() {
        bail!(
            "feature {f} already went through intake ({}); pick another id",
            t.rel(&fd.join("feature-spec.json"))
        );
    }
    let st = super::gates::phase(t)?;
    if let (Some(other), Some(p)) = (st["feature_id"].as_str(), st["phase"].as_str()) {
        if other != f && !DONE.contains(&p) {
            bail!("feature {other} is in flight (phase {p}); finish it (`lakelet tdd status --feature {other}`) before starting {f}");
        }
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the feature request {}", file.display()))?;
    let is_json =
        file.extension().is_some_and(|x| x == "json") || text.trim_start().starts_with('{');
    let (spec, md) = if is_json {
        let mut v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        match v["id"].as_str() {
            None => v["id"] = f.into(),
            Some(id) if id != f => bail!("{} is feature {id}, not {f}", file.display()),
            _ => {}
        }
        if v.get("status").is_none() {
            v["status"] = "draft".into();
        }
        if v.get("tdd_mode").is_none() {
            v["tdd_mode"] = "N=1".into();
        }
        let md = format!("# {}\n\nFeature {f}.\n", v["name"].as_str().unwrap_or(f));
        (v, md)
    } else {
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(str::trim)
            .context("the Markdown feature request has no `# Title` line to name the feature")?;
        let mut metrics = vec![];
        let mut in_metrics = false;
        for l in text.lines() {
            if l.starts_with('#') {
                in_metrics = l.to_lowercase().contains("success metric");
            } else if in_metrics {
                if let Some(b) = l
                    .trim_start()
                    .strip_prefix("- ")
                    .or_else(|| l.trim_start().strip_prefix("* "))
                {
                    metrics.push(b.trim().to_string());
                }
            }
        }
        let mut v = json!({ "id": f, "name": name, "status": "draft", "tdd_mode": "N=1", "owner": t.principal });
        if !metrics.is_empty() {
            v["success_metrics"] = json!(metrics);
        }
        (v, text.clone())
    };
    let bad = schema::violations(Kind::FeatureSpec, &spec);
    if !bad.is_empty() {
        bail!(
            "the feature request does not make a valid feature spec (nothing was written): {}",
            bad.join("; ")
        );
    }
    let spec_p = fd.join("feature-spec.json");
    let md_p = fd.join("feature-spec.md");
    let pipe_p = fd.join("pipeline.json");
    schema::write(Kind::FeatureSpec, &spec_p, &spec)?;
    super::write_text(&md_p, &md)?;
    let stories: serde_json::Map<String, Value> = spec["stories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .map(|s| (s.to_string(), json!({ "status": "designing" })))
        .collect();
    schema::write(
        Kind::Pipeline,
        &pipe_p,
        &json!({ "version": 1, "feature_id": f, "stories": stories, "build_queue": [], "build_active": null }),
    )?;
    // A fresh phase for the new feature: started now.
    let state_p = t.root().join("workflow-state.json");
    if st["feature_id"].as_str() != Some(f) && state_p.exists() {
        std::fs::remove_file(&state_p)?;
    }
    super::gates::set_phase(t, f, "discovery", &[])?;
    Ok(Intake {
        feature_id: f.into(),
        written: [spec_p, md_p, pipe_p, state_p]
            .iter()
            .map(|p| t.rel(p))
            .collect(),
    })
}
