//! `lakelet migrate lint` held against a corpus of migrations: every file in
//! tests/data/lint/dangerous must draw the finding its `-- expect: RULE` line names (blocking,
//! unless the rule is advice), and every file in tests/data/lint/safe must draw none at all —
//! the false positives that make people switch a linter off.

mod common;

use std::path::Path;

use common::lakelet;

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lint")
        .join(dir);
    let mut v: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    v.sort();
    v
}

/// Every finding, by file name.
fn lint(paths: &[std::path::PathBuf]) -> (bool, Vec<serde_json::Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let out = lakelet()
        .current_dir(tmp.path())
        .args(["--json", "migrate", "lint"])
        .args(paths)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (
        out.status.success(),
        v["findings"].as_array().unwrap().clone(),
    )
}

fn name(f: &serde_json::Value) -> String {
    Path::new(f["script"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_dangerous_migration_is_caught_by_the_rule_it_breaks() {
    let paths = files("dangerous");
    assert!(paths.len() >= 40, "{}", paths.len());
    let (ok, findings) = lint(&paths);
    assert!(!ok, "lint fails on the dangerous corpus");
    let mut missed = vec![];
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        let want = text
            .lines()
            .find_map(|l| l.strip_prefix("-- expect: "))
            .unwrap_or_else(|| panic!("{} names no expected rule", p.display()))
            .trim();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        let hit = findings
            .iter()
            .find(|f| name(f) == file && f["rule"] == want);
        match hit {
            None => missed.push(format!("{file}: no {want}")),
            Some(f) if f["blocks"] != true && !want.starts_with("prefer-") => {
                missed.push(format!("{file}: {want} does not block"))
            }
            Some(_) => {}
        }
    }
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
}

#[test]
fn safe_migrations_draw_no_finding_at_all() {
    let paths = files("safe");
    assert!(paths.len() >= 12);
    let (ok, findings) = lint(&paths);
    let noise: Vec<String> = findings
        .iter()
        .map(|f| format!("{}:{} [{}] {}", name(f), f["line"], f["rule"], f["message"]))
        .collect();
    assert!(noise.is_empty(), "false positives:\n{}", noise.join("\n"));
    assert!(ok);
}
