//! The gates and the coordinator. A gate only reads: it names every problem (the file, the
//! schema violation, the AC without a scenario…) and changes nothing. `advance` is the scrum
//! master's one act: it runs the gate the phase needs, and on a pass records the approval in
//! `features/F/gates.json` (the kit's shape: status, approver, sha256 of each artifact,
//! history), moves the phase, the feature status and the pipeline.
//!
//! **NFR → AC link:** an NFR of architecture.json (unless its `hil_status` is rejected) is
//! covered by an AC whose `nfrs[]` holds an entry with the same `category` and the same
//! `requirement` (compared trimmed, case-insensitive). This uses only fields both schemas
//! already have, so a kit project needs no new keys.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::lock;
use super::roles::{self, Role};
use super::schema::{self, Artifact, Kind};
use super::{now, Tdd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Spec,
    TestList,
}

impl Gate {
    pub fn parse(s: &str) -> Result<Gate> {
        match s {
            "spec" => Ok(Gate::Spec),
            "test_list" | "test-list" => Ok(Gate::TestList),
            _ => bail!("unknown gate {s:?}; the gates are spec and test_list"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Gate::Spec => "spec",
            Gate::TestList => "test_list",
        }
    }
}

/// What one gate found.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub gate: &'static str,
    pub ok: bool,
    pub problems: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn into_result(self) -> Result<Verdict> {
        if self.ok {
            return Ok(self);
        }
        bail!(
            "the {} gate refused:\n  - {}",
            self.gate,
            self.problems.join("\n  - ")
        )
    }
}

/// The feature's ACs (valid ones), by story, with every problem met on the way.
pub struct Spec {
    pub acs: Vec<(String, Value)>,
    pub problems: Vec<String>,
}

fn norm(s: &Value) -> String {
    s.as_str().unwrap_or_default().trim().to_lowercase()
}

pub fn read_spec(t: &Tdd, f: &str) -> Result<Spec> {
    let fd = t.feature_dir(f);
    let mut problems = vec![];
    let mut acs = vec![];
    let push = |a: &Artifact, k: Kind, problems: &mut Vec<String>| {
        if let Some(p) = a.problem(k, &t.dir) {
            problems.push(p);
        }
    };
    let spec = schema::read(Kind::FeatureSpec, &fd.join("feature-spec.json"));
    push(&spec, Kind::FeatureSpec, &mut problems);
    let mut stories: Vec<String> = spec
        .ok()
        .and_then(|v| v["stories"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    for s in roles::story_ids(t, f, None)? {
        if !stories.contains(&s) {
            stories.push(s);
        }
    }
    if spec.ok().is_some() && stories.is_empty() {
        problems.push(format!(
            "feature {f} has no stories; the spec-author submits them (`lakelet tdd step spec-author --feature {f} --story S1 --output DIR`)"
        ));
    }
    for (k, s) in stories.iter().enumerate() {
        let sd = t.story_dir(f, s);
        let story = schema::read(Kind::Story, &sd.join("story.json"));
        push(&story, Kind::Story, &mut problems);
        if let Some(v) = story.ok() {
            if k > 0 && v["independence"]["distinct_from_prior"] != true {
                problems.push(format!(
                    "story {s} is not the first, so it needs independence.distinct_from_prior = true with a rationale"
                ));
            }
            for a in v["acs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !sd.join("acs").join(format!("{a}.json")).is_file() {
                    problems.push(format!(
                        "story {s} lists {a}, and {} is missing",
                        t.rel(&sd.join("acs").join(format!("{a}.json")))
                    ));
                }
            }
        }
        let files = roles::ac_files(&sd)?;
        if files.is_empty() && story.ok().is_some() {
            problems.push(format!(
                "story {s} has no acceptance criteria ({} is empty)",
                t.rel(&sd.join("acs"))
            ));
        }
        for p in files {
            let a = schema::read(Kind::Ac, &p);
            push(&a, Kind::Ac, &mut problems);
            if let Some(v) = a.ok() {
                acs.push((s.clone(), v.clone()));
            }
        }
    }
    Ok(Spec { acs, problems })
}

/// The spec gate: feature-spec, stories, ACs and architecture present and valid; every AC
/// has a scenario; every NFR is carried by an AC.
pub fn spec(t: &Tdd, f: &str) -> Result<Verdict> {
    let fd = t.feature_dir(f);
    let Spec { acs, mut problems } = read_spec(t, f)?;
    for (s, a) in &acs {
        if a["scenarios"].as_array().is_none_or(|x| x.is_empty()) {
            problems.push(format!(
                "{} of story {s} has no scenario (acs/{}.json: scenarios is empty or absent)",
                a["id"].as_str().unwrap_or("?"),
                a["id"].as_str().unwrap_or("?")
            ));
        }
    }
    let arch = schema::read(Kind::Architecture, &fd.join("architecture.json"));
    if let Some(p) = arch.problem(Kind::Architecture, &t.dir) {
        problems.push(p);
    }
    let md = fd.join("architecture.md");
    match std::fs::read_to_string(&md) {
        Err(_) => problems.push(format!("{} is missing", t.rel(&md))),
        Ok(text) => {
            let heads: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with('#'))
                .map(str::to_lowercase)
                .collect();
            for want in ["decision", "risk", "sign-off"] {
                if !heads.iter().any(|h| h.contains(want)) {
                    problems.push(format!("{} has no heading naming \"{want}\"", t.rel(&md)));
                }
            }
        }
    }
    if let Some(a) = arch.ok() {
        if a["feature_id"] != f {
            problems.push(format!(
                "architecture.json is for {}, not {f}",
                a["feature_id"]
            ));
        }
        for n in a["nfrs"].as_array().into_iter().flatten() {
            if n["hil_status"] == "rejected" {
                continue;
            }
            let carried = acs.iter().any(|(_, ac)| {
                ac["nfrs"].as_array().into_iter().flatten().any(|x| {
                    norm(&x["category"]) == norm(&n["category"])
                        && norm(&x["requirement"]) == norm(&n["requirement"])
                })
            });
            if !carried {
                problems.push(format!(
                    "the {} NFR \"{}\" in architecture.json has no AC carrying it (an AC's nfrs[] with the same category and requirement)",
                    n["category"].as_str().unwrap_or("?"),
                    n["requirement"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    Ok(Verdict {
        gate: "spec",
        ok: problems.is_empty(),
        problems,
        notes: vec![],
    })
}

/// The test_list gate: the list present and valid; every item names an existing AC; every AC
/// has an item; and once locked, the lock holds.
pub fn test_list(t: &Tdd, f: &str) -> Result<Verdict> {
    let fd = t.feature_dir(f);
    let Spec { acs, .. } = read_spec(t, f)?;
    let mut problems = vec![];
    let mut notes = vec![];
    let list = schema::read(Kind::TestList, &fd.join("test-list.json"));
    if let Some(p) = list.problem(Kind::TestList, &t.dir) {
        problems.push(p);
    }
    if let Some(l) = list.ok() {
        if l["feature_id"] != f {
            problems.push(format!(
                "test-list.json is for {}, not {f}",
                l["feature_id"]
            ));
        }
        let ac_ids: BTreeSet<&str> = acs.iter().filter_map(|(_, a)| a["id"].as_str()).collect();
        let mut seen = BTreeSet::new();
        for it in lock::items(l) {
            let id = it["id"].as_str().unwrap_or("?");
            if !seen.insert(id) {
                problems.push(format!("test {id} appears twice in test-list.json"));
            }
            let ac = it["ac_id"].as_str().unwrap_or("?");
            if !ac_ids.contains(ac) {
                problems.push(format!(
                    "test {id} references {ac}, which no story of {f} has"
                ));
            }
        }
        for ac in &ac_ids {
            if !lock::items(l).any(|i| i["ac_id"] == *ac && i["status"] != "skipped") {
                problems.push(format!(
                    "{ac} has no test in test-list.json (every AC needs at least one item)"
                ));
            }
        }
        if let Some(lk) = lock::load(t, f)? {
            let (bad, n) = lock::verify(t, &lk, l);
            problems.extend(bad);
            notes = n;
        }
    }
    Ok(Verdict {
        gate: "test_list",
        ok: problems.is_empty(),
        problems,
        notes,
    })
}

pub fn run(t: &Tdd, g: Gate, f: &str) -> Result<Verdict> {
    t.feature(f)?;
    match g {
        Gate::Spec => spec(t, f),
        Gate::TestList => test_list(t, f),
    }
}

/// `features/F/gates.json` (the kit's shape).
pub fn gates_file(t: &Tdd, f: &str) -> Result<Value> {
    let p = t.feature_dir(f).join("gates.json");
    Ok(match std::fs::read_to_string(&p) {
        Ok(s) => serde_json::from_str(&s)?,
        Err(_) => json!({ "feature_id": f, "schema_version": 1, "gates": {} }),
    })
}

pub fn approved(t: &Tdd, f: &str, g: Gate) -> Result<bool> {
    Ok(gates_file(t, f)?["gates"][g.name()]["status"] == "approved")
}

fn approve(
    t: &Tdd,
    f: &str,
    g: Gate,
    files: &[std::path::PathBuf],
    action: &str,
    reason: Option<&str>,
) -> Result<()> {
    let mut doc = gates_file(t, f)?;
    let mut hashes = serde_json::Map::new();
    for p in files {
        if let Ok(s) = std::fs::read_to_string(p) {
            hashes.insert(t.rel(p), lock::hash(&s).into());
        }
    }
    let at = now();
    let entry = &mut doc["gates"][g.name()];
    let mut history = entry["history"].as_array().cloned().unwrap_or_default();
    let mut h =
        json!({ "action": action, "at": at, "approver": t.principal, "artifact_hashes": hashes });
    if let Some(r) = reason {
        h["reason"] = r.into();
    }
    history.push(h);
    *entry = json!({ "status": "approved", "approver": t.principal, "approved_at": at, "artifact_hashes": hashes, "history": history });
    super::write_json(&t.feature_dir(f).join("gates.json"), &doc)
}

/// The phase file, read tolerantly: any phase string and any extra key the kit's runtime
/// wrote are accepted; lakelet rewrites it in the schema's shape.
pub fn phase(t: &Tdd) -> Result<Value> {
    let p = t.root().join("workflow-state.json");
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(serde_json::from_str(&s)
            .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", t.rel(&p)))?),
        Err(_) => Ok(Value::Null),
    }
}

pub fn set_phase(t: &Tdd, f: &str, to: &str, extra: &[(&str, Value)]) -> Result<()> {
    let old = phase(t)?;
    let mut v = json!({
        "phase": to,
        "feature_id": f,
        "story_id": null, "ac_id": null, "cycle_id": null, "experiment_id": null,
        "started_at": old["started_at"].as_str().map(str::to_string).unwrap_or_else(now),
        "last_transition_at": now(),
        "last_transition_by": t.principal,
    });
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    schema::write(
        Kind::WorkflowState,
        &t.root().join("workflow-state.json"),
        &v,
    )
}

fn set_feature_status(t: &Tdd, f: &str, status: &str, stories: &str) -> Result<()> {
    let fp = t.feature_dir(f).join("feature-spec.json");
    let mut spec = schema::need(Kind::FeatureSpec, &fp, &t.dir)?;
    spec["status"] = status.into();
    schema::write(Kind::FeatureSpec, &fp, &spec)?;
    let pp = t.feature_dir(f).join("pipeline.json");
    let mut pipe = schema::need(Kind::Pipeline, &pp, &t.dir)?;
    let ids: Vec<String> = pipe["stories"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for s in &ids {
        pipe["stories"][s]["status"] = stories.into();
    }
    match stories {
        "building" => {
            pipe["build_queue"] = json!(ids[1.min(ids.len())..]);
            pipe["build_active"] = ids.first().map_or(Value::Null, |s| json!(s));
        }
        _ => {
            pipe["build_queue"] = json!([]);
            pipe["build_active"] = Value::Null;
        }
    }
    schema::write(Kind::Pipeline, &pp, &pipe)
}

/// What `advance` did.
#[derive(Debug, Serialize)]
pub struct Advanced {
    pub feature_id: String,
    pub from: String,
    pub to: String,
    pub approved: Option<&'static str>,
}

/// Every locked, non-skipped item that has not been through a green cycle that ended.
pub fn not_green(t: &Tdd, f: &str) -> Result<Vec<String>> {
    let list = schema::need(
        Kind::TestList,
        &t.feature_dir(f).join("test-list.json"),
        &t.dir,
    )?;
    let cycles = super::cycle::all(t, f)?;
    let mut v = vec![];
    for it in lock::items(&list).filter(|i| i["status"] != "skipped") {
        let id = it["id"].as_str().unwrap_or("?");
        let done = cycles.iter().any(|(_, c)| {
            c["test_id"] == id && c["green_at"].is_string() && c["ended_at"].is_string()
        });
        if !done || !matches!(it["status"].as_str(), Some("green" | "refactored")) {
            v.push(format!(
                "test {id} is not green (status {}; no ended cycle took it to green)",
                it["status"]
            ));
        }
    }
    Ok(v)
}

/// `lakelet tdd advance --feature F`: the scrum master's act.
pub fn advance(t: &Tdd, f: &str) -> Result<Advanced> {
    t.feature(f)?;
    roles::authorize(t, Role::ScrumMaster, f, None)?;
    let st = phase(t)?;
    let from = st["phase"].as_str().unwrap_or("discovery").to_string();
    let fd = t.feature_dir(f);
    let spec_files = || -> Result<Vec<std::path::PathBuf>> {
        let mut v = vec![
            fd.join("feature-spec.json"),
            fd.join("architecture.json"),
            fd.join("architecture.md"),
        ];
        for s in roles::story_ids(t, f, None)? {
            v.push(t.story_dir(f, &s).join("story.json"));
            v.extend(roles::ac_files(&t.story_dir(f, &s))?);
        }
        Ok(v)
    };
    let (to, approved) = match from.as_str() {
        "planning" | "discovery" | "architectural-review" | "design-spec-gate" => {
            spec(t, f)?.into_result()?;
            approve(t, f, Gate::Spec, &spec_files()?, "approved", None)?;
            set_feature_status(t, f, "spec-approved", "awaiting-gate")?;
            ("test-list-construction", Some("spec"))
        }
        "test-list-construction" => {
            spec(t, f)?.into_result()?;
            test_list(t, f)?.into_result()?;
            let list = schema::need(Kind::TestList, &fd.join("test-list.json"), &t.dir)?;
            let mut lk = lock::take(t, f, &list);
            lk.history.push(lock::Event { action: "locked".into(), at: now(), by: t.principal.clone(), reason: None, covers: vec![] });
            lock::save(t, &lk)?;
            approve(t, f, Gate::TestList, &[fd.join("test-list.json"), lock::path(t, f)], "approved", None)?;
            set_feature_status(t, f, "test-list-approved", "building")?;
            ("implementation", Some("test_list"))
        }
        "implementation" => {
            let mut problems = pr_problems(t, f)?;
            if !problems.is_empty() {
                problems.insert(0, "implementation is not done:".into());
                bail!("advance refused; nothing was changed:\n  - {}", problems.join("\n  - "));
            }
            set_feature_status(t, f, "ready-for-review", "awaiting-acceptance")?;
            ("review", None)
        }
        other => bail!(
            "feature {f} is at phase '{other}'; advance has nothing to do (at review, `lakelet scm prepare-pr` opens the pull request)"
        ),
    };
    set_phase(t, f, to, &[])?;
    roles::record(
        t,
        Role::ScrumMaster,
        f,
        None,
        &format!("advance {from} → {to}"),
    )?;
    Ok(Advanced {
        feature_id: f.into(),
        from,
        to: to.into(),
        approved,
    })
}

/// `lakelet tdd relock --feature F --reason …`: re-approves the test list as it now is.
pub fn relock(t: &Tdd, f: &str, reason: &str) -> Result<lock::Lock> {
    t.feature(f)?;
    roles::authorize(t, Role::ScrumMaster, f, None)?;
    if reason.trim().is_empty() {
        bail!("relock needs a --reason: it is recorded with the new lock");
    }
    let Some(old) = lock::load(t, f)? else {
        bail!("the test list of {f} is not locked yet; `lakelet tdd advance --feature {f}` approves and locks it");
    };
    let fd = t.feature_dir(f);
    let list = schema::need(Kind::TestList, &fd.join("test-list.json"), &t.dir)?;
    let (cleared, _) = lock::verify(t, &old, &list);
    let mut v = test_list(t, f)?;
    v.problems.retain(|p| !cleared.contains(p));
    v.ok = v.problems.is_empty();
    v.into_result()?;
    let mut lk = lock::take(t, f, &list);
    lk.history = old.history;
    lk.history.push(lock::Event {
        action: "relocked".into(),
        at: now(),
        by: t.principal.clone(),
        reason: Some(reason.into()),
        covers: cleared,
    });
    lock::save(t, &lk)?;
    approve(
        t,
        f,
        Gate::TestList,
        &[fd.join("test-list.json"), lock::path(t, f)],
        "approved",
        Some(reason),
    )?;
    roles::record(t, Role::ScrumMaster, f, None, &format!("relock: {reason}"))?;
    Ok(lk)
}

/// Everything that keeps feature `f` from a pull request: both gates approved and passing,
/// the lock intact, every locked test green.
pub fn pr_problems(t: &Tdd, f: &str) -> Result<Vec<String>> {
    let mut v = vec![];
    for g in [Gate::Spec, Gate::TestList] {
        if !approved(t, f, g)? {
            v.push(format!(
                "the {} gate of {f} is not approved (`lakelet tdd advance --feature {f}`)",
                g.name()
            ));
        }
        let r = run(t, g, f)?;
        v.extend(
            r.problems
                .into_iter()
                .map(|p| format!("{} gate: {p}", g.name())),
        );
    }
    if lock::load(t, f)?.is_some() {
        v.extend(not_green(t, f)?);
    }
    Ok(v)
}

/// The check prepare-pr runs when TDD is on (scm knows it only as "tdd"): the feature in
/// `.sftdd/workflow-state.json` must be ready for a pull request.
pub fn pr_check(t: &Tdd) -> Result<Vec<String>> {
    let st = phase(t)?;
    let Some(f) = st["feature_id"].as_str() else {
        return Ok(vec![format!(
            "TDD is on, and no feature went through intake ({}/workflow-state.json names none); `lakelet tdd intake FILE --feature F1-name`",
            super::ROOT
        )]);
    };
    let mut v = pr_problems(t, f)?;
    if v.is_empty() && st["phase"] != "review" {
        v.push(format!(
            "feature {f} is at phase {}, not review; `lakelet tdd advance --feature {f}`",
            st["phase"]
        ));
    }
    Ok(v)
}
