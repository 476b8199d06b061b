//! The migrations directory: Flyway's file names, versions and per-script configuration.
//!
//! `V<version>__<description>.sql` (versioned), `U<version>__<description>.sql` (undo of that
//! version), `R__<description>.sql` (repeatable). Versions are dot- or underscore-separated
//! integers compared part by part (`1.10 > 1.9`, `1.0 = 1`); underscores in descriptions read
//! as spaces. Flyway silently skips a `.sql` file whose name does not parse; a typo then means
//! a migration that never runs, so here it is an error.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::checksum;

/// A migration version: its parts without leading zeros, and the text Flyway displays.
#[derive(Debug, Clone)]
pub struct Version {
    parts: Vec<String>,
    text: String,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        if s.is_empty() {
            return None;
        }
        let text = s.replace('_', ".");
        let mut parts = vec![];
        for p in text.split('.') {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let t = p.trim_start_matches('0');
            parts.push(if t.is_empty() { "0" } else { t }.to_string());
        }
        // 1.0 and 1 are the same version.
        while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
            parts.pop();
        }
        Some(Version { parts, text })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        let n = self.parts.len().max(o.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).map_or("0", String::as_str);
            let b = o.parts.get(i).map_or("0", String::as_str);
            let c = a.len().cmp(&b.len()).then_with(|| a.cmp(b));
            if c != Ordering::Equal {
                return c;
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Version {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Version {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Versioned,
    Undo,
    Repeatable,
}

/// One migration file.
#[derive(Debug, Clone)]
pub struct Script {
    pub kind: Kind,
    /// `None` for repeatables.
    pub version: Option<Version>,
    pub description: String,
    /// The path relative to the migrations directory, with `/` (what the history records).
    pub script: String,
    pub path: PathBuf,
    /// The file's text (a leading BOM removed), before placeholders are replaced.
    pub text: String,
    pub checksum: i32,
    /// From `<file>.conf` (`executeInTransaction=false`) or `-- lakelet:no-transaction`.
    pub no_transaction: bool,
}

impl Script {
    /// `1 - add users` / `<< R >> refresh views`, as Flyway prints a migration.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{v} - {}", self.description),
            None => format!("(repeatable) {}", self.description),
        }
    }
}

/// A parsed file name: kind, version (none for repeatables), description.
type Parsed = (Kind, Option<Version>, String);

/// Parses a file name: `Some(Err)` for a `.sql` file that looks like a migration but is
/// malformed, `None` for files that are not migrations at all (READMEs, `.conf`).
fn parse_name(name: &str) -> Option<Result<Parsed, String>> {
    let stem = name.strip_suffix(".sql")?;
    let bad = |why: &str| Some(Err(format!("{name}: {why}")));
    let (prefix, rest) = match stem.chars().next() {
        Some(c @ ('V' | 'U' | 'R')) => (c, &stem[1..]),
        Some('v' | 'u' | 'r') => return bad("prefixes are upper case (V, U, R)"),
        _ => {
            return bad("a migration is named V<version>__<description>.sql, \
                        U<version>__<description>.sql or R__<description>.sql")
        }
    };
    let Some((ver, desc)) = rest.split_once("__") else {
        return bad("missing the `__` between the version and the description");
    };
    let description = desc.replace('_', " ").trim().to_string();
    if prefix == 'R' {
        if !ver.is_empty() {
            return bad("a repeatable migration has no version: R__<description>.sql");
        }
        if description.is_empty() {
            return bad("a repeatable migration needs a description");
        }
        return Some(Ok((Kind::Repeatable, None, description)));
    }
    let Some(v) = Version::parse(ver) else {
        return bad(&format!(
            "{ver:?} is not a version (digits separated by '.' or '_', e.g. V1_2__name.sql)"
        ));
    };
    let kind = if prefix == 'V' {
        Kind::Versioned
    } else {
        Kind::Undo
    };
    Some(Ok((kind, Some(v), description)))
}

/// Flyway's per-script configuration file `<script>.conf`: only `executeInTransaction` and
/// `encoding` (UTF-8) are meaningful for a SQL script.
fn script_conf(path: &Path) -> Result<bool> {
    let conf = PathBuf::from(format!("{}.conf", path.display()));
    let Ok(text) = std::fs::read_to_string(&conf) else {
        return Ok(false);
    };
    let mut no_tx = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("executeInTransaction", v)) => match v {
                "true" => no_tx = false,
                "false" => no_tx = true,
                _ => bail!(
                    "{}:{}: executeInTransaction is true or false",
                    conf.display(),
                    i + 1
                ),
            },
            Some(("encoding", v))
                if v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8") => {}
            _ => bail!(
                "{}:{}: unsupported setting {line:?} (lakelet reads executeInTransaction and \
                 encoding=UTF-8)",
                conf.display(),
                i + 1
            ),
        }
    }
    Ok(no_tx)
}

/// Every migration under `dir` (recursively), sorted: versioned by version, then repeatables by
/// description, then undos. Malformed names and duplicate versions are errors naming the files.
pub fn load(dir: &Path) -> Result<Vec<Script>> {
    if !dir.is_dir() {
        bail!(
            "the migrations directory {} does not exist (set it with --dir or [migrations] dir \
             in lakelet.toml)",
            dir.display()
        );
    }
    let mut files = vec![];
    walk(dir, &mut files)?;
    let mut bad = vec![];
    let mut out = vec![];
    for path in files {
        let rel = path
            .strip_prefix(dir)
            .expect("under dir")
            .to_string_lossy()
            .replace('\\', "/");
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .to_string();
        let (kind, version, description) = match parse_name(&name) {
            None => continue,
            Some(Err(e)) => {
                bad.push(format!(
                    "  {rel}: {}",
                    e.split_once(": ").map_or(&*e, |x| x.1)
                ));
                continue;
            }
            Some(Ok(p)) => p,
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
        let no_tx = script_conf(&path)?
            || super::sql::file_directives(&text)
                .map(|d| d.iter().any(|d| d == "no-transaction"))
                .unwrap_or(false);
        out.push(Script {
            kind,
            version,
            description,
            script: rel,
            checksum: checksum::flyway(&bytes),
            path,
            text,
            no_transaction: no_tx,
        });
    }
    if !bad.is_empty() {
        bail!(
            "badly named migration files in {} (fix or move them; lakelet never skips a .sql \
             file silently):\n{}",
            dir.display(),
            bad.join("\n")
        );
    }
    let mut seen: BTreeMap<(u8, String), Vec<&str>> = BTreeMap::new();
    for s in &out {
        let key = match (&s.kind, &s.version) {
            (Kind::Repeatable, _) => (2, s.description.clone()),
            (k, Some(v)) => (if *k == Kind::Versioned { 0 } else { 1 }, v.parts.join(".")),
            _ => unreachable!("versioned scripts have versions"),
        };
        seen.entry(key).or_default().push(&s.script);
    }
    let dups: Vec<String> = seen
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|((k, key), v)| {
            let what = ["version", "undo version", "repeatable description"][*k as usize];
            format!("  {what} {key}: {}", v.join(", "))
        })
        .collect();
    if !dups.is_empty() {
        bail!(
            "more than one migration with the same {}:\n{}",
            "identity",
            dups.join("\n")
        );
    }
    out.sort_by(|a, b| {
        let rank = |k: Kind| match k {
            Kind::Versioned => 0,
            Kind::Repeatable => 1,
            Kind::Undo => 2,
        };
        rank(a.kind)
            .cmp(&rank(b.kind))
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.description.cmp(&b.description))
    });
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_compare_numerically_part_by_part() {
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1_1"), v("1.1"));
        assert_eq!(v("1_1").to_string(), "1.1");
        assert!(v("2") > v("1.999"));
        assert!(v("010") == v("10"));
        assert!(v("20260101120000") > v("3"));
        for bad in ["", "1..2", "1.a", "v1", "1-2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_parse_or_fail_with_a_reason() {
        let ok = |n: &str| parse_name(n).unwrap().unwrap();
        assert_eq!(ok("V1_2__add_users.sql").2, "add users");
        assert_eq!(ok("U3__x.sql").0, Kind::Undo);
        assert_eq!(ok("R__views.sql").1, None);
        assert!(parse_name("README.md").is_none());
        assert!(parse_name("V1__x.sql.conf").is_none());
        for bad in [
            "v1__x.sql",
            "V1_x.sql",
            "V__x.sql",
            "Va__x.sql",
            "R1__x.sql",
            "R__.sql",
            "001_init.sql",
        ] {
            assert!(matches!(parse_name(bad), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn load_refuses_bad_names_and_duplicates() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("V1__a.sql"), "select 1;").unwrap();
        std::fs::write(d.path().join("V2__b.sql"), "select 2;").unwrap();
        std::fs::write(d.path().join("notes.md"), "not a migration").unwrap();
        assert_eq!(load(d.path()).unwrap().len(), 2);
        std::fs::write(d.path().join("V2_0__c.sql"), "select 2;").unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("version 2: V2_0__c.sql, V2__b.sql"), "{e}");
        std::fs::remove_file(d.path().join("V2_0__c.sql")).unwrap();
        std::fs::write(d.path().join("V3-c.sql"), "select 3;").unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("V3-c.sql"), "{e}");
    }
}
