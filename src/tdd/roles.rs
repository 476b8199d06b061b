//! The roles: what each is handed (`tdd inputs`), what it hands back (`tdd step`), who may
//! hold it (`[tdd.roles]`) and which two one principal may not hold on the same story
//! (`[tdd] separate`, the anti-self-grading rule).
//!
//! A role sees only its documented inputs, so a test-strategist writes tests from the spec
//! and not from the code, and a driver makes a failing test pass without the strategist's
//! notes. Outputs are schema-checked before anything reaches `.sftdd/`; one bad file refuses
//! the whole submission and nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::schema::{self, Kind};
use super::{now, Tdd};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    SpecAuthor,
    ArchitectReviewer,
    TestStrategist,
    /// lakelet itself: `tdd advance` and `tdd relock` are its acts.
    ScrumMaster,
    Navigator,
    Driver,
}

pub const ROLES: [Role; 6] = [
    Role::SpecAuthor,
    Role::ArchitectReviewer,
    Role::TestStrategist,
    Role::ScrumMaster,
    Role::Navigator,
    Role::Driver,
];

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::SpecAuthor => "spec-author",
            Role::ArchitectReviewer => "architect-reviewer",
            Role::TestStrategist => "test-strategist",
            Role::ScrumMaster => "scrum-master",
            Role::Navigator => "navigator",
            Role::Driver => "driver",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        ROLES.into_iter().find(|r| r.name() == s).with_context(|| {
            format!(
                "unknown role {s:?}; the roles are {}",
                ROLES.map(|r| r.name()).join(", ")
            )
        })
    }

    /// What the role hands back, as `tdd step ROLE --output` takes it.
    pub fn outputs(self) -> &'static str {
        match self {
            Role::SpecAuthor => "a directory with story.json and acs/<AC>.json (optional story.md, acs/<AC>.md)",
            Role::ArchitectReviewer => "a directory with architecture.json and architecture.md (optional acs/<AC>.json with layer and architectural_notes)",
            Role::TestStrategist => "test-list.json (a file, or a directory holding it)",
            Role::ScrumMaster => "nothing: lakelet coordinates (`tdd advance`, `tdd relock`)",
            Role::Navigator => "a JSON file {navigator_plan, navigator_verdict} for the story's open cycle; `tdd cycle start` and `tdd cycle red` are its acts",
            Role::Driver => "a JSON file {driver_changes, refactor_notes, smell_flags} for the story's open cycle; `tdd cycle green`, `refactor` and `end` are its acts",
        }
    }
}

/// The files a role is handed, in order; only those that exist are copied.
pub fn inputs(t: &Tdd, role: Role, f: &str, story: Option<&str>) -> Result<Vec<PathBuf>> {
    let fd = t.feature_dir(f);
    let nfrs = [t.root().join("nfrs.md"), fd.join("nfrs.md")];
    let stories = |all: &mut Vec<PathBuf>| -> Result<()> {
        for s in story_ids(t, f, story)? {
            let sd = t.story_dir(f, &s);
            all.push(sd.join("story.json"));
            all.extend(ac_files(&sd)?);
        }
        Ok(())
    };
    let mut v = vec![];
    match role {
        Role::SpecAuthor => {
            v.push(fd.join("feature-spec.json"));
            v.push(fd.join("feature-spec.md"));
            v.push(t.root().join("product-overview.md"));
        }
        Role::ArchitectReviewer => {
            v.push(fd.join("feature-spec.json"));
            stories(&mut v)?;
            v.extend(nfrs);
        }
        Role::TestStrategist => {
            v.push(fd.join("feature-spec.json"));
            stories(&mut v)?;
            v.push(fd.join("architecture.json"));
            v.push(fd.join("architecture.md"));
        }
        Role::ScrumMaster => {
            v.push(t.root().join("workflow-state.json"));
            v.push(fd.join("pipeline.json"));
            v.push(fd.join("gates.json"));
            v.push(fd.join(super::lock::FILE));
        }
        Role::Navigator | Role::Driver => {
            if role == Role::Navigator {
                v.push(fd.join("test-list.json"));
            }
            v.push(fd.join("architecture.md"));
            v.extend(nfrs);
            if let Some(s) = story {
                if let Some((p, c)) = super::cycle::open_cycle(t, f, s)? {
                    v.push(p);
                    // The failing test itself: the code the cycle's item names.
                    let list = schema::need(Kind::TestList, &fd.join("test-list.json"), &t.dir)?;
                    let file = super::lock::items(&list)
                        .find(|i| i["id"] == c["test_id"])
                        .and_then(super::lock::code_file)
                        .map(|f| t.dir.join(f));
                    v.extend(file);
                }
            }
        }
    }
    Ok(v.into_iter().filter(|p| p.is_file()).collect())
}

/// The story ids under the feature (or just `only`, checked to exist).
pub fn story_ids(t: &Tdd, f: &str, only: Option<&str>) -> Result<Vec<String>> {
    if let Some(s) = only {
        super::check_id("story", "S", s)?;
        return Ok(vec![s.into()]);
    }
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir(t.feature_dir(f).join("stories")) {
        for e in rd {
            let name = e?.file_name().to_string_lossy().into_owned();
            if super::valid_id("S", &name) {
                v.push(name);
            }
        }
    }
    v.sort();
    Ok(v)
}

/// The `acs/*.json` files of a story directory, sorted.
pub fn ac_files(story_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir(story_dir.join("acs")) {
        for e in rd {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "json") {
                v.push(p);
            }
        }
    }
    v.sort();
    Ok(v)
}

/// `features/F/roles.json`: who acted as which role on which story (lakelet's own ledger;
/// the anti-self-grading rule reads it).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub feature_id: String,
    pub acts: Vec<Act>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Act {
    pub role: Role,
    pub principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story_id: Option<String>,
    pub what: String,
    pub at: String,
}

fn ledger_path(t: &Tdd, f: &str) -> PathBuf {
    t.feature_dir(f).join("roles.json")
}

pub fn ledger(t: &Tdd, f: &str) -> Result<Ledger> {
    let p = ledger_path(t, f);
    match std::fs::read_to_string(&p) {
        Ok(s) => serde_json::from_str(&s).with_context(|| format!("reading {}", t.rel(&p))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger {
            feature_id: f.into(),
            acts: vec![],
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether the acting principal may act as `role` on `story`: it matches the role's globs, and
/// it did not already hold a role that `[tdd] separate` pairs with this one on that story.
pub fn authorize(t: &Tdd, role: Role, f: &str, story: Option<&str>) -> Result<()> {
    let who = &t.principal;
    if let Some(globs) = t.cfg.roles.get(role.name()) {
        if !globs
            .iter()
            .any(|g| crate::policy::model::glob(g, who, who))
        {
            bail!(
                "principal '{who}' may not act as {} ([tdd.roles] {} = {globs:?} in lakelet.toml); \
                 act as one of those principals (`--as NAME`)",
                role.name(),
                role.name()
            );
        }
    }
    let Some(story) = story else { return Ok(()) };
    let l = ledger(t, f)?;
    for pair in &t.cfg.separate {
        let other = match (pair[0].as_str(), pair[1].as_str()) {
            (a, b) if a == role.name() => b,
            (a, b) if b == role.name() => a,
            _ => continue,
        };
        if let Some(a) = l.acts.iter().find(|a| {
            a.role.name() == other && &a.principal == who && a.story_id.as_deref() == Some(story)
        }) {
            bail!(
                "principal '{who}' already acted as {other} on story {story} ({} at {}), and \
                 [tdd] separate forbids one principal holding both {other} and {} on a story \
                 (whoever wrote a story's tests does not make them pass); another principal \
                 must act as {}",
                a.what,
                a.at,
                role.name(),
                role.name()
            );
        }
    }
    Ok(())
}

/// Records an act in the ledger (after it succeeded).
pub fn record(t: &Tdd, role: Role, f: &str, story: Option<&str>, what: &str) -> Result<()> {
    let mut l = ledger(t, f)?;
    l.acts.push(Act {
        role,
        principal: t.principal.clone(),
        story_id: story.map(str::to_string),
        what: what.into(),
        at: now(),
    });
    super::write_json(&ledger_path(t, f), &serde_json::to_value(&l)?)
}

/// What a step accepted.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub role: Role,
    pub feature_id: String,
    pub story_id: Option<String>,
    /// The files written under `.sftdd/`, relative to the project.
    pub written: Vec<String>,
}

/// `lakelet tdd step ROLE --feature F [--story S] --output PATH`.
pub fn step(t: &Tdd, role: Role, f: &str, story: Option<&str>, out: &Path) -> Result<Accepted> {
    t.feature(f)?;
    if let Some(s) = story {
        super::check_id("story", "S", s)?;
    }
    let need_story =
        || story.with_context(|| format!("{} acts on one story: pass --story S", role.name()));
    if role == Role::ScrumMaster {
        bail!("the scrum master is lakelet itself and submits nothing; `lakelet tdd advance --feature {f}` is its act");
    }
    if !out.exists() {
        bail!(
            "--output {} does not exist; it should be {}",
            out.display(),
            role.outputs()
        );
    }
    authorize(t, role, f, story)?;
    // Everything is checked into `writes` first; only a fully valid submission is written.
    let mut writes: Vec<(PathBuf, Write)> = vec![];
    let ok = |kind: Kind, p: &Path| -> Result<Value> {
        match schema::read(kind, p) {
            schema::Artifact::Ok(v) => Ok(v),
            a => bail!(
                "the {} output was not accepted; nothing was written: {}",
                role.name(),
                a.problem(kind, out.parent().unwrap_or(out))
                    .expect("not ok")
            ),
        }
    };
    match role {
        Role::SpecAuthor => {
            let s = need_story()?;
            let sd = t.story_dir(f, s);
            let story_v = ok(Kind::Story, &out.join("story.json"))?;
            if story_v["id"] != s {
                bail!(
                    "the spec-author output's story.json has id {}, not {s}; nothing was written",
                    story_v["id"]
                );
            }
            let acs = ac_files(out)?;
            if acs.is_empty() {
                bail!("the spec-author output has no acs/<AC>.json; every story needs at least one acceptance criterion; nothing was written");
            }
            let mut ids = vec![];
            for p in &acs {
                let v = ok(Kind::Ac, p)?;
                let id = v["id"].as_str().unwrap_or_default().to_string();
                if p.file_stem().and_then(|x| x.to_str()) != Some(id.as_str()) {
                    bail!(
                        "{} holds AC {id}; name the file {id}.json; nothing was written",
                        p.display()
                    );
                }
                writes.push((sd.join("acs").join(format!("{id}.json")), Write::Json(v)));
                ids.push(id);
            }
            if let Some(listed) = story_v["acs"].as_array() {
                for a in listed.iter().filter_map(Value::as_str) {
                    if !ids.iter().any(|i| i == a) {
                        bail!("story.json lists {a}, but the output has no acs/{a}.json; nothing was written");
                    }
                }
            }
            writes.push((sd.join("story.json"), Write::Json(story_v)));
            for md in ["story.md"] {
                if out.join(md).is_file() {
                    writes.push((sd.join(md), Write::Copy(out.join(md))));
                }
            }
            // The story joins the feature and the pipeline (designing).
            let fp = t.feature_dir(f).join("feature-spec.json");
            let mut spec = schema::need(Kind::FeatureSpec, &fp, &t.dir)?;
            let list = spec["stories"].as_array().cloned().unwrap_or_default();
            if !list.iter().any(|x| x == s) {
                let mut list = list;
                list.push(json!(s));
                spec["stories"] = Value::Array(list);
            }
            writes.push((fp, Write::Json(spec)));
            let pp = t.feature_dir(f).join("pipeline.json");
            let mut pipe = schema::need(Kind::Pipeline, &pp, &t.dir)?;
            if pipe["stories"].get(s).is_none() {
                pipe["stories"][s] = json!({ "status": "designing" });
            }
            writes.push((pp, Write::Json(pipe)));
            // Criteria this submission dropped go too: the story is what was submitted.
            for old in ac_files(&sd)? {
                let stem = old.file_stem().and_then(|x| x.to_str()).unwrap_or_default();
                if !ids.iter().any(|i| i == stem) {
                    writes.push((old, Write::Remove));
                }
            }
        }
        Role::ArchitectReviewer => {
            let fd = t.feature_dir(f);
            let arch = ok(Kind::Architecture, &out.join("architecture.json"))?;
            if arch["feature_id"] != f {
                bail!(
                    "architecture.json is for {}, not {f}; nothing was written",
                    arch["feature_id"]
                );
            }
            let md = out.join("architecture.md");
            if !md.is_file() {
                bail!("the architect-reviewer output has no architecture.md; nothing was written");
            }
            writes.push((fd.join("architecture.json"), Write::Json(arch)));
            writes.push((fd.join("architecture.md"), Write::Copy(md)));
            for p in ac_files(out)? {
                let v = ok(Kind::Ac, &p)?;
                let id = v["id"].as_str().unwrap_or_default();
                let home = story_ids(t, f, story)?
                    .into_iter()
                    .map(|s| t.story_dir(f, &s).join("acs").join(format!("{id}.json")))
                    .find(|p| p.is_file())
                    .with_context(|| format!("the architect annotated {id}, which no story of {f} has; nothing was written"))?;
                writes.push((home, Write::Json(v)));
            }
        }
        Role::TestStrategist => {
            need_story()?;
            let file = if out.is_dir() {
                out.join("test-list.json")
            } else {
                out.to_path_buf()
            };
            let mut list = ok(Kind::TestList, &file)?;
            if list["feature_id"] != f {
                bail!(
                    "test-list.json is for {}, not {f}; nothing was written",
                    list["feature_id"]
                );
            }
            // Progress is lakelet's to write: an item keeps the status cycles gave it,
            // unless the strategist defers it (skipped).
            let lp = t.feature_dir(f).join("test-list.json");
            if let schema::Artifact::Ok(old) = schema::read(Kind::TestList, &lp) {
                for it in list["items"].as_array_mut().into_iter().flatten() {
                    if it["status"] == "skipped" {
                        continue;
                    }
                    if let Some(o) = super::lock::items(&old).find(|o| o["id"] == it["id"]) {
                        it["status"] = o["status"].clone();
                    }
                }
            }
            writes.push((
                t.feature_dir(f).join("test-list.md"),
                Write::Text(render_test_list(&list)),
            ));
            writes.push((lp, Write::Json(list)));
        }
        Role::Navigator | Role::Driver => {
            let s = need_story()?;
            let v: Value = serde_json::from_str(&std::fs::read_to_string(out)?)
                .with_context(|| format!("{} is not JSON; nothing was written", out.display()))?;
            let allowed: &[&str] = if role == Role::Navigator {
                &["navigator_plan", "navigator_verdict"]
            } else {
                &["driver_changes", "refactor_notes", "smell_flags"]
            };
            let obj = v.as_object().context("the output must be a JSON object")?;
            if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
                bail!(
                    "the {} may write only {allowed:?} into a cycle, not {k:?} (the *_at stamps are lakelet's, written when it ran the test); nothing was written",
                    role.name()
                );
            }
            let (p, mut c) = super::cycle::open_cycle(t, f, s)?
                .with_context(|| format!("story {s} has no open cycle; `lakelet tdd cycle start --feature {f} --story {s} --test T…` first"))?;
            for (k, x) in obj {
                c[k] = x.clone();
            }
            let bad = schema::violations(Kind::Cycle, &c);
            if !bad.is_empty() {
                bail!(
                    "the {} output breaks the cycle schema: {}; nothing was written",
                    role.name(),
                    bad.join("; ")
                );
            }
            writes.push((p, Write::Json(c)));
        }
        Role::ScrumMaster => unreachable!(),
    }
    let mut written = vec![];
    for (p, w) in &writes {
        match w {
            Write::Json(v) => {
                let kind = kind_of(p);
                match kind {
                    Some(k) => schema::write(k, p, v)?,
                    None => super::write_json(p, v)?,
                }
            }
            Write::Text(s) => super::write_text(p, s)?,
            Write::Copy(from) => super::write_text(p, &std::fs::read_to_string(from)?)?,
            Write::Remove => std::fs::remove_file(p)?,
        }
        written.push(t.rel(p));
    }
    record(t, role, f, story, &format!("step {}", role.name()))?;
    Ok(Accepted {
        role,
        feature_id: f.into(),
        story_id: story.map(str::to_string),
        written,
    })
}

enum Write {
    Json(Value),
    Text(String),
    Copy(PathBuf),
    Remove,
}

/// The schema a file under `.sftdd/` is written against, by its name.
fn kind_of(p: &Path) -> Option<Kind> {
    let name = p.file_name()?.to_str()?;
    let parent = p.parent()?.file_name()?.to_str()?;
    Some(match name {
        "feature-spec.json" => Kind::FeatureSpec,
        "story.json" => Kind::Story,
        "architecture.json" => Kind::Architecture,
        "test-list.json" => Kind::TestList,
        "pipeline.json" => Kind::Pipeline,
        "workflow-state.json" => Kind::WorkflowState,
        n if parent == "acs" && n.ends_with(".json") => Kind::Ac,
        n if n.starts_with("cycle-") => Kind::Cycle,
        _ => return None,
    })
}

/// test-list.md, always rendered from the JSON (the kit's layout: a title, the ordering, a
/// checklist line per active item with its AC, and the deferred items).
pub fn render_test_list(list: &Value) -> String {
    let mut s = format!(
        "# Test list: {}\n\nOrdered for: {}\n\n",
        list["feature_id"].as_str().unwrap_or(""),
        list["ordered_for"].as_str().unwrap_or("design-momentum")
    );
    let mut skipped = vec![];
    for it in super::lock::items(list) {
        let line = format!(
            "{}: {}  ({})",
            it["id"].as_str().unwrap_or(""),
            it["description"].as_str().unwrap_or(""),
            it["ac_id"].as_str().unwrap_or("")
        );
        match it["status"].as_str() {
            Some("skipped") => skipped.push(line),
            Some("green" | "refactored") => s += &format!("- [x] {line}\n"),
            _ => s += &format!("- [ ] {line}\n"),
        }
    }
    s += "\n## Deferred / skipped\n\n";
    if skipped.is_empty() {
        s += "- (none)\n";
    }
    for l in skipped {
        s += &format!("- {l}\n");
    }
    s
}
