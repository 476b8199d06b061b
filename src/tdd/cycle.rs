//! Red-green-refactor cycles: `tdd cycle start|red|green|refactor|end`.
//!
//! A cycle takes one locked test through red (it fails), green (it passes) and refactor (it
//! still passes) on its own database branch, forked from the feature's database branch with
//! scm's branch primitive ([`crate::scm::Env::fork`]) and deleted when the cycle ends. Each
//! step runs `[tdd] test_command` against that branch (DATABASE_URL) and writes its `*_at`
//! stamp only when the exit status says so: the stamps are lakelet's, never a role's.
//! start and red are the navigator's acts; green, refactor and end the driver's.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::lock;
use super::roles::{self, Role};
use super::schema::{self, Kind};
use super::{now, Tdd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Red,
    Green,
    Refactor,
    End,
}

/// Every cycle file of the feature, sorted by path.
pub fn all(t: &Tdd, f: &str) -> Result<Vec<(PathBuf, Value)>> {
    let mut v = vec![];
    let mut stack = vec![t.cycles_dir(f)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("cycle-") && n.ends_with(".json"))
            {
                let c = schema::need(Kind::Cycle, &p, &t.dir)?;
                v.push((p, c));
            }
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// The story's open cycle (started, not ended), if any.
pub fn open_cycle(t: &Tdd, f: &str, s: &str) -> Result<Option<(PathBuf, Value)>> {
    Ok(all(t, f)?
        .into_iter()
        .find(|(_, c)| c["story_id"] == s && c.get("ended_at").is_none()))
}

/// What a cycle step did.
#[derive(Debug, Serialize)]
pub struct Stepped {
    pub cycle: Value,
    pub file: String,
    /// The test command's exit code and the tail of its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    pub branch_deleted: bool,
}

fn item<'a>(list: &'a Value, id: &str) -> Result<&'a Value> {
    lock::items(list)
        .find(|i| i["id"] == id)
        .with_context(|| format!("the test list has no item {id}"))
}

/// The lock's verdict on one item: refuses a deleted, changed or weakened test.
fn lock_holds(t: &Tdd, f: &str, list: &Value, id: &str) -> Result<()> {
    let Some(lk) = lock::load(t, f)? else {
        bail!("the test list of {f} is not approved and locked yet; `lakelet tdd advance --feature {f}` at phase test-list-construction");
    };
    let (bad, _) = lock::verify(t, &lk, list);
    let mine: Vec<&String> = bad
        .iter()
        .filter(|b| b.contains(&format!("test {id} ")) || b.contains(&format!("test {id}:")))
        .collect();
    if !mine.is_empty() {
        bail!(
            "the locked test list refuses this cycle:\n  - {}",
            mine.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  - ")
        );
    }
    Ok(())
}

/// `tdd cycle start --feature F --story S --test T`.
pub fn start(
    t: &Tdd,
    env: &crate::scm::Env,
    forge: &crate::scm::forge::Forge,
    f: &str,
    s: &str,
    test: &str,
) -> Result<Stepped> {
    t.feature(f)?;
    super::check_id("story", "S", s)?;
    super::check_id("test", "T", test)?;
    roles::authorize(t, Role::Navigator, f, Some(s))?;
    let scm = crate::scm::state::load(&t.dir)?;
    if scm.state != crate::scm::state::Phase::FeatureClaimed {
        bail!("cycles run on a claimed feature, and the SCM state is {}; `lakelet scm claim FEATURE` first", scm.state);
    }
    let list = schema::need(
        Kind::TestList,
        &t.feature_dir(f).join("test-list.json"),
        &t.dir,
    )?;
    let it = item(&list, test)?;
    lock_holds(t, f, &list, test)?;
    let ac = it["ac_id"].as_str().unwrap_or_default().to_string();
    let ac_file = t.story_dir(f, s).join("acs").join(format!("{ac}.json"));
    let ac_v = schema::need(Kind::Ac, &ac_file, &t.dir).with_context(|| {
        format!("test {test} is for {ac}, which is not a criterion of story {s}")
    })?;
    if let Some((p, c)) = open_cycle(t, f, s)? {
        bail!(
            "story {s} has an open cycle ({} for {}); finish it (`lakelet tdd cycle end …`) first",
            t.rel(&p),
            c["test_id"]
        );
    }
    let dir = t.cycles_dir(f).join(s).join(&ac);
    let n = std::fs::read_dir(&dir).map(|rd| rd.count()).unwrap_or(0) + 1;
    let id = format!("cycle-{n:03}");
    let feature_db = env.feature_branch(scm.get("feature_id"));
    let branch = format!("{feature_db}-{}-c{n:03}", test.to_lowercase());
    crate::api::lakebase::validate::check_id("the cycle branch", &branch)
        .map_err(anyhow::Error::msg)?;
    let made = env.fork(
        &branch,
        &feature_db,
        Some(std::time::Duration::from_secs(86400)),
    )?;
    forge.made(&branch, made.uid.as_deref(), "tdd.cycle")?;
    let mut c = json!({
        "cycle_id": id, "feature_id": f, "story_id": s, "ac_id": ac, "test_id": test,
        "test_description": it["description"], "experiment_slug": id, "branch_id": branch,
    });
    if let Some(l) = ac_v["layer"].as_str() {
        c["layer"] = l.into();
    }
    let p = dir.join(format!("{id}.json"));
    schema::write(Kind::Cycle, &p, &c)?;
    super::gates::set_phase(
        t,
        f,
        "implementation",
        &[
            ("story_id", json!(s)),
            ("ac_id", json!(ac)),
            ("cycle_id", json!(id)),
            ("experiment_id", json!(branch)),
        ],
    )?;
    roles::record(
        t,
        Role::Navigator,
        f,
        Some(s),
        &format!("cycle start {id} for {test}"),
    )?;
    Ok(Stepped {
        cycle: c,
        file: t.rel(&p),
        exit: None,
        output: String::new(),
        branch_deleted: false,
    })
}

/// Runs the test command for `it` against `branch`: (exit code, output tail).
fn run_test(t: &Tdd, env: &crate::scm::Env, it: &Value, branch: &str) -> Result<(i32, String)> {
    let Some(cmd) = &t.cfg.test_command else {
        bail!("[tdd] test_command is not set in lakelet.toml; set it, e.g. test_command = \"sh tests/run.sh {{test}}\"");
    };
    let name = it["test_name"]
        .as_str()
        .or_else(|| it["id"].as_str())
        .unwrap_or_default();
    let file = lock::code_file(it).unwrap_or_default();
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let cmd = cmd.replace("{test}", &q(name)).replace("{file}", &q(file));
    let url = (env.connect)(branch)?;
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(&t.dir)
        .env("DATABASE_URL", url)
        .env("LAKELET_TDD_TEST", it["id"].as_str().unwrap_or_default())
        .output()
        .with_context(|| format!("running the test command {cmd:?}"))?;
    let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
    out += &String::from_utf8_lossy(&o.stderr);
    let tail: Vec<&str> = out.lines().rev().take(8).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    Ok((o.status.code().unwrap_or(-1), tail))
}

/// `tdd cycle red|green|refactor|end --feature F --story S`.
pub fn step(
    t: &Tdd,
    env: &crate::scm::Env,
    forge: &crate::scm::forge::Forge,
    f: &str,
    s: &str,
    step: Step,
) -> Result<Stepped> {
    t.feature(f)?;
    super::check_id("story", "S", s)?;
    let role = if step == Step::Red {
        Role::Navigator
    } else {
        Role::Driver
    };
    roles::authorize(t, role, f, Some(s))?;
    let (p, mut c) = open_cycle(t, f, s)?
        .with_context(|| format!("story {s} has no open cycle; `lakelet tdd cycle start --feature {f} --story {s} --test T…`"))?;
    let lp = t.feature_dir(f).join("test-list.json");
    let mut list = schema::need(Kind::TestList, &lp, &t.dir)?;
    let test = c["test_id"].as_str().unwrap_or_default().to_string();
    let it = item(&list, &test)?.clone();
    lock_holds(t, f, &list, &test)?;
    let (want, stamp, status, before) = match step {
        Step::Red => (false, "red_at", "red", None),
        Step::Green => (true, "green_at", "green", Some("red_at")),
        Step::Refactor => (true, "refactored_at", "refactored", Some("green_at")),
        Step::End => (true, "ended_at", "", Some("green_at")),
    };
    if let Some(b) = before {
        if !c[b].is_string() {
            bail!(
                "cycle {} of story {s} has no {b} yet; this step comes after it",
                c["cycle_id"]
            );
        }
    }
    if c[stamp].is_string() {
        bail!("cycle {} already has {stamp} ({})", c["cycle_id"], c[stamp]);
    }
    let branch = c["branch_id"].as_str().unwrap_or_default().to_string();
    let (mut exit, mut output) = (None, String::new());
    if step != Step::End {
        let (code, tail) = run_test(t, env, &it, &branch)?;
        exit = Some(code);
        output = tail;
        if (code == 0) != want {
            bail!(
                "{} refused: the test command for {test} exited {code}, and {} needs it to {}; nothing was recorded\n{output}",
                stamp.trim_end_matches("_at"),
                stamp.trim_end_matches("_at"),
                if want { "pass (exit 0)" } else { "fail (non-zero exit)" }
            );
        }
    }
    c[stamp] = now().into();
    if step == Step::Red {
        // The test exists now and fails: lock its code if the list's approval could not.
        let mut lk = lock::load(t, f)?.expect("checked by lock_holds");
        if let Some(l) = lk.items.get_mut(&test) {
            if l.code.is_none() {
                if let Some(Ok(code)) = lock::read_code(&t.dir, &it) {
                    l.code = Some(code);
                    lk.history.push(lock::Event {
                        action: "code-locked".into(),
                        at: now(),
                        by: t.principal.clone(),
                        reason: None,
                        covers: vec![test.clone()],
                    });
                    lock::save(t, &lk)?;
                }
            }
        }
    }
    let ends = matches!(step, Step::Refactor | Step::End);
    if ends {
        c["ended_at"] = now().into();
    }
    schema::write(Kind::Cycle, &p, &c)?;
    if !status.is_empty() {
        for x in list["items"].as_array_mut().into_iter().flatten() {
            if x["id"] == test.as_str() {
                x["status"] = status.into();
            }
        }
        schema::write(Kind::TestList, &lp, &list)?;
        super::write_text(
            &t.feature_dir(f).join("test-list.md"),
            &roles::render_test_list(&list),
        )?;
    }
    let mut deleted = false;
    if ends {
        if env.exists(&branch)? {
            env.api
                .delete(&branch, true)
                .with_context(|| format!("deleting the cycle branch '{branch}'"))?;
        }
        forge.unmade(&branch)?;
        deleted = true;
    }
    roles::record(
        t,
        role,
        f,
        Some(s),
        &format!(
            "cycle {} {}",
            c["cycle_id"].as_str().unwrap_or(""),
            stamp.trim_end_matches("_at")
        ),
    )?;
    Ok(Stepped {
        cycle: c,
        file: t.rel(&p),
        exit,
        output,
        branch_deleted: deleted,
    })
}
