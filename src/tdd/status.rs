//! `lakelet tdd status --feature F`: the phase, the stories, both gates, the lock, the tests
//! and cycles, and what blocks the next step, in one read that changes nothing.

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::gates::{self, Gate, Verdict};
use super::schema::{self, Kind};
use super::{lock, Tdd};

#[derive(Debug, Serialize)]
pub struct Status {
    pub feature_id: String,
    pub phase: String,
    pub feature_status: Value,
    pub stories: Value,
    pub gates: Vec<GateStatus>,
    pub locked: bool,
    pub tests: Vec<Value>,
    pub cycles: Vec<Value>,
    /// What stops the next `advance` (or, at review, prepare-pr).
    pub blocking: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GateStatus {
    pub approved: bool,
    #[serde(flatten)]
    pub verdict: Verdict,
}

pub fn status(t: &Tdd, f: &str) -> Result<Status> {
    t.feature(f)?;
    let st = gates::phase(t)?;
    let phase = if st["feature_id"] == f {
        st["phase"].as_str().unwrap_or("?").to_string()
    } else {
        "not the active feature".into()
    };
    let fd = t.feature_dir(f);
    let spec = schema::read(Kind::FeatureSpec, &fd.join("feature-spec.json"));
    let pipe = schema::read(Kind::Pipeline, &fd.join("pipeline.json"));
    let mut gs = vec![];
    for g in [Gate::Spec, Gate::TestList] {
        gs.push(GateStatus {
            approved: gates::approved(t, f, g)?,
            verdict: gates::run(t, g, f)?,
        });
    }
    let list = schema::read(Kind::TestList, &fd.join("test-list.json"));
    let tests: Vec<Value> = list
        .ok()
        .map(|l| lock::items(l).map(|i| serde_json::json!({ "id": i["id"], "ac_id": i["ac_id"], "status": i["status"] })).collect())
        .unwrap_or_default();
    let cycles: Vec<Value> = super::cycle::all(t, f)?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let locked = lock::load(t, f)?.is_some();
    let mut blocking = vec![];
    match phase.as_str() {
        "implementation" => blocking.extend(gates::pr_problems(t, f)?),
        "review" => blocking.extend(gates::pr_check(t)?),
        "test-list-construction" => {
            for g in &gs {
                blocking.extend(
                    g.verdict
                        .problems
                        .iter()
                        .map(|p| format!("{} gate: {p}", g.verdict.gate)),
                );
            }
        }
        _ => blocking.extend(
            gs[0]
                .verdict
                .problems
                .iter()
                .map(|p| format!("spec gate: {p}")),
        ),
    }
    Ok(Status {
        feature_id: f.into(),
        phase,
        feature_status: spec
            .ok()
            .map(|s| s["status"].clone())
            .unwrap_or(Value::Null),
        stories: pipe
            .ok()
            .map(|p| p["stories"].clone())
            .unwrap_or(Value::Null),
        gates: gs,
        locked,
        tests,
        cycles,
        blocking,
    })
}
