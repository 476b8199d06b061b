//! The locked test list. When the test_list gate is approved, lakelet records a hash per
//! item of the list and per test the item names in code (`features/F/test-lock.json`);
//! from then on every gate, `advance`, cycle step and the PR check refuse when
//!
//! - an item **disappeared** from the list, or was **changed** (any field but its progress
//!   status; marking it `skipped` is a change), or an unlocked item was **added**;
//! - its test was **deleted**: the file is gone or no longer defines the test name;
//! - its test was **weakened**: the test's body hashes differently from the locked body AND
//!   has fewer assertion lines than it had. An assertion line is a line of the body that
//!   contains `assert` or `expect` (any case: assert!, assert_eq!, assertEqual, expect(…)),
//!   `should`, a Gherkin `Then`/`And`/`But` step, or the shell idioms `|| fail` / `|| exit 1`.
//!   A body that changed but kept as many assertion lines is reported as changed, not refused
//!   (tests may be tidied; they may not lose checks).
//!
//! until `lakelet tdd relock --reason …` re-approves the list as it now is, recorded with its
//! reason. Hashes are over text normalised like the kit's gate hashes: CR/CRLF to LF,
//! trailing whitespace stripped, runs of blank lines collapsed, then sha256.
//!
//! A test that does not exist yet when the list is approved (it is written at red) is locked
//! by `tdd cycle red`, the first moment lakelet sees it exist and fail.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Tdd;

pub const FILE: &str = "test-lock.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lock {
    pub feature_id: String,
    pub locked_at: String,
    pub locked_by: String,
    /// item id → what was locked.
    pub items: BTreeMap<String, Locked>,
    #[serde(default)]
    pub history: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Locked {
    pub ac_id: String,
    pub item_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code {
    pub file: String,
    pub test: String,
    pub hash: String,
    pub assertions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// locked | relocked | code-locked
    pub action: String,
    pub at: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the relock accepted (the problems it cleared), or the item a code lock covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
}

/// The items of a test list.
pub fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list["items"].as_array().into_iter().flatten()
}

/// The file an item's test lives in: `test_file`, else the kit's `scenario_file`.
pub fn code_file(item: &Value) -> Option<&str> {
    item["test_file"]
        .as_str()
        .or_else(|| item["scenario_file"].as_str())
}

/// Normalised like the kit's gate hashes: LF line ends, no trailing whitespace, blank-line runs
/// collapsed to one.
pub fn normalise(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    let mut blank = false;
    for l in s.lines().map(str::trim_end) {
        if l.is_empty() {
            if blank {
                continue;
            }
            blank = true;
        } else {
            blank = false;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

pub fn hash(s: &str) -> String {
    crate::policy::principals::sha256_hex(&normalise(s))
}

/// An item's hash: its canonical JSON without the progress status lakelet writes (but with
/// whether it is skipped, so deferring a locked test is a change).
pub fn item_hash(item: &Value) -> String {
    let mut v = item.clone();
    let skipped = v["status"] == "skipped";
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        o.insert("skipped".into(), skipped.into());
    }
    // serde_json's map is ordered by key: the text is canonical.
    hash(&serde_json::to_string_pretty(&v).expect("JSON"))
}

/// Whether `line` defines the test `name`: `fn name`, `def name`, `function name`,
/// `func name`, shell `name()`, a call `test("name"` / `it('name'`, or Gherkin
/// `Scenario: name`.
fn defines(line: &str, name: &str) -> bool {
    let t = line.trim_start();
    for kw in [
        "fn ",
        "def ",
        "function ",
        "func ",
        "sub ",
        "Scenario: ",
        "Scenario Outline: ",
    ] {
        if let Some(i) = t.find(kw) {
            let rest = t[i + kw.len()..].trim_start();
            if rest.starts_with(name) && !ident(rest[name.len()..].chars().next()) {
                return true;
            }
        }
    }
    if let Some(rest) = t.strip_prefix(name) {
        if rest.trim_start().starts_with("()") {
            return true;
        }
    }
    for q in ['"', '\'', '`'] {
        let quoted = format!("{q}{name}{q}");
        if t.contains(&quoted)
            && (t.starts_with("test") || t.starts_with("it(") || t.starts_with("it "))
        {
            return true;
        }
    }
    false
}

fn ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The body of test `name` in `text`: from its defining line to the brace that closes the
/// first one opened (braced languages, shell), else the lines indented deeper than it
/// (Python, Gherkin). None when nothing defines it.
pub fn body(text: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| defines(l, name))?;
    let head = lines[start];
    let braced = head.contains('{') || lines.get(start + 1).is_some_and(|l| l.trim() == "{");
    let mut out = vec![head];
    if braced {
        let mut depth = 0i32;
        let mut opened = false;
        for (k, l) in lines[start..].iter().enumerate() {
            if k > 0 {
                out.push(l);
            }
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                break;
            }
        }
    } else {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let base = indent(head);
        for l in &lines[start + 1..] {
            if !l.trim().is_empty() && indent(l) <= base {
                break;
            }
            out.push(l);
        }
    }
    Some(out.join("\n"))
}

/// Lines of a test body that check something (see the module docs for the exact rule).
pub fn assertions(body: &str) -> usize {
    body.lines()
        .filter(|l| {
            let low = l.to_lowercase();
            let t = l.trim_start();
            low.contains("assert")
                || low.contains("expect")
                || low.contains("should")
                || ["Then ", "And ", "But "].iter().any(|k| t.starts_with(k))
                || low.contains("|| fail")
                || low.contains("|| exit 1")
        })
        .count()
}

/// The test an item names, read from the project now; None when the item names none.
/// Err(why) when it names one that is not there.
pub fn read_code(dir: &Path, item: &Value) -> Option<Result<Code, String>> {
    let file = code_file(item)?;
    let test = item["test_name"]
        .as_str()
        .or_else(|| item["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let text = match std::fs::read_to_string(dir.join(file)) {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("its test file {file} is gone ({e})"))),
    };
    Some(match body(&text, &test) {
        Some(b) => Ok(Code {
            file: file.into(),
            test,
            hash: hash(&b),
            assertions: assertions(&b),
        }),
        None => Err(format!("its test '{test}' was deleted from {file}")),
    })
}

pub fn path(t: &Tdd, f: &str) -> std::path::PathBuf {
    t.feature_dir(f).join(FILE)
}

pub fn load(t: &Tdd, f: &str) -> Result<Option<Lock>> {
    let p = path(t, f);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(
            serde_json::from_str(&s).with_context(|| format!("reading {}", t.rel(&p)))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn save(t: &Tdd, l: &Lock) -> Result<()> {
    super::write_json(&path(t, l.feature_id.as_str()), &serde_json::to_value(l)?)
}

/// A lock of the list as it is now (tests that exist are locked too).
pub fn take(t: &Tdd, f: &str, list: &Value) -> Lock {
    let mut items = BTreeMap::new();
    for it in self::items(list) {
        items.insert(
            it["id"].as_str().unwrap_or_default().to_string(),
            Locked {
                ac_id: it["ac_id"].as_str().unwrap_or_default().into(),
                item_hash: item_hash(it),
                code: read_code(&t.dir, it).and_then(Result::ok),
            },
        );
    }
    Lock {
        feature_id: f.into(),
        locked_at: super::now(),
        locked_by: t.principal.clone(),
        items,
        history: vec![],
    }
}

/// Everything that breaks the lock, one line per item (empty: intact), and the notes that do
/// not (a test changed without losing assertions).
pub fn verify(t: &Tdd, lock: &Lock, list: &Value) -> (Vec<String>, Vec<String>) {
    let mut bad = vec![];
    let mut notes = vec![];
    let now: BTreeMap<&str, &Value> = items(list)
        .map(|i| (i["id"].as_str().unwrap_or_default(), i))
        .collect();
    for (id, l) in &lock.items {
        let Some(it) = now.get(id.as_str()) else {
            bad.push(format!(
                "locked test {id} ({}) was deleted from the test list",
                l.ac_id
            ));
            continue;
        };
        if item_hash(it) != l.item_hash {
            bad.push(format!(
                "locked test {id} was changed in the test list since it was locked"
            ));
        }
        let Some(locked) = &l.code else { continue };
        match read_code(&t.dir, it) {
            None => bad.push(format!(
                "locked test {id} no longer names its test ({} in {})",
                locked.test, locked.file
            )),
            Some(Err(why)) => bad.push(format!("locked test {id}: {why}")),
            Some(Ok(c)) if c.hash != locked.hash && c.assertions < locked.assertions => {
                bad.push(format!(
                "locked test {id} was weakened: '{}' in {} has {} assertion lines, {} when locked",
                c.test, c.file, c.assertions, locked.assertions
            ))
            }
            Some(Ok(c)) if c.hash != locked.hash => notes.push(format!(
                "test {id} ('{}' in {}) changed since it was locked, with no fewer assertions",
                c.test, c.file
            )),
            Some(Ok(_)) => {}
        }
    }
    for id in now.keys().filter(|id| !lock.items.contains_key(**id)) {
        bad.push(format!("test {id} was added after the list was locked"));
    }
    if !bad.is_empty() {
        bad.push(format!(
            "the test list is locked: put the tests back, or re-approve the list as it is with `lakelet tdd relock --feature {} --reason …`",
            lock.feature_id
        ));
    }
    (bad, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: &str = "t1_shows_stock() {\n  out=$(q 'select 1')\n  [ \"$out\" = 1 ] || fail \"one\"\n  [ -n \"$out\" ] || fail \"two\"\n}\n\nt2() {\n  :\n}\n";

    #[test]
    fn finds_bodies_and_counts_assertions() {
        let b = body(SH, "t1_shows_stock").unwrap();
        assert_eq!(b.lines().count(), 5, "{b}");
        assert_eq!(assertions(&b), 2);
        assert!(body(SH, "t1_shows").is_none());
        let py = "def test_a():\n    assert 1\n    assert 2\n\ndef test_b():\n    pass\n";
        assert_eq!(assertions(&body(py, "test_a").unwrap()), 2);
        let rs = "#[test]\nfn splits()\n{\n    assert_eq!(1, 1);\n}\n";
        assert_eq!(assertions(&body(rs, "splits").unwrap()), 1);
        let feature = "Feature: x\n  Scenario: shows stock\n    Given a\n    Then b\n    And c\n  Scenario: other\n";
        assert_eq!(assertions(&body(feature, "shows stock").unwrap()), 2);
    }

    #[test]
    fn normalises_like_the_kit() {
        assert_eq!(hash("a  \r\nb\n\n\n\nc"), hash("a\nb\n\nc\n"));
        assert_ne!(hash("a\nb"), hash("a\nc"));
    }
}
