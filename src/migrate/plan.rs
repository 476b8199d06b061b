//! What the files and the history say together: each migration's state (`info`), what is
//! wrong (`validate`), and what `migrate` would run next. Pure: no database access.

use serde::Serialize;

use super::history::{self, Applied};
use super::script::{Kind, Script, Version};

/// Flyway's migration states, as `info` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    Pending,
    Success,
    Failed,
    /// Applied, but its file is gone.
    Missing,
    /// Applied and newer than every file (another branch's migration).
    Future,
    /// A file older than the newest applied version that was never applied.
    Ignored,
    /// Applied after a newer version (with --out-of-order).
    OutOfOrder,
    /// A repeatable whose file changed since it was applied.
    Outdated,
    /// A repeatable applied earlier, superseded by a newer application.
    Superseded,
    Baseline,
    BelowBaseline,
    Undone,
    /// A missing migration marked deleted by `repair`.
    Deleted,
    /// An undo file ready for `undo`.
    Available,
}

/// One line of `info`.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub category: &'static str,
    pub version: Option<String>,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub script: String,
    pub installed_on: Option<String>,
    pub installed_by: Option<String>,
    pub execution_time_ms: Option<i32>,
    pub state: State,
    /// Whether the history's checksum differs from the file's.
    pub checksum_mismatch: bool,
    /// The history's checksum, and the file's.
    pub checksum: Option<i32>,
    pub file_checksum: Option<i32>,
}

/// The files and the history, matched.
pub struct Plan<'a> {
    pub scripts: &'a [Script],
    pub applied: &'a [Applied],
    pub out_of_order: bool,
}

impl<'a> Plan<'a> {
    fn versioned(&self) -> impl Iterator<Item = &'a Script> {
        self.scripts.iter().filter(|s| s.kind == Kind::Versioned)
    }

    /// The history's rows about versions, newest last.
    fn version_rows(&self) -> impl Iterator<Item = &'a Applied> {
        self.applied
            .iter()
            .filter(|a| a.version.is_some() && a.kind != history::SCHEMA)
    }

    /// The latest history row for version `v` (SQL, BASELINE, UNDO_SQL or DELETE).
    fn latest(&self, v: &Version) -> Option<&'a Applied> {
        self.version_rows()
            .filter(|a| a.version().as_ref() == Some(v))
            .last()
    }

    pub fn baseline(&self) -> Option<Version> {
        self.applied
            .iter()
            .filter(|a| a.kind == history::BASELINE)
            .filter_map(|a| a.version())
            .max()
    }

    /// The newest version currently applied (successful, not undone or deleted).
    pub fn current(&self) -> Option<Version> {
        let mut best: Option<Version> = None;
        for a in self.version_rows() {
            let Some(v) = a.version() else { continue };
            let live = self.latest(&v).is_some_and(|l| {
                l.success && (l.kind == history::SQL || l.kind == history::BASELINE)
            });
            if live && best.as_ref().is_none_or(|b| v > *b) {
                best = Some(v);
            }
        }
        best
    }

    fn is_live(&self, v: &Version) -> bool {
        self.latest(v)
            .is_some_and(|l| l.success && (l.kind == history::SQL || l.kind == history::BASELINE))
    }

    /// Versioned files `migrate` would apply, in order, then repeatables to (re)apply.
    pub fn pending(&self) -> Vec<&'a Script> {
        let current = self.current();
        let baseline = self.baseline();
        let mut out: Vec<&Script> = self
            .versioned()
            .filter(|s| {
                let v = s.version.as_ref().expect("versioned");
                if self.is_live(v) || self.latest(v).is_some_and(|l| !l.success) {
                    return false;
                }
                if baseline.as_ref().is_some_and(|b| v <= b) {
                    return false;
                }
                self.out_of_order || current.as_ref().is_none_or(|c| v > c)
            })
            .collect();
        out.extend(
            self.scripts
                .iter()
                .filter(|s| s.kind == Kind::Repeatable)
                .filter(|s| {
                    self.latest_repeatable(&s.description).is_none_or(|a| {
                        a.kind == history::DELETE || a.checksum != Some(s.checksum) || !a.success
                    })
                }),
        );
        out
    }

    fn latest_repeatable(&self, description: &str) -> Option<&'a Applied> {
        self.applied.iter().rfind(|a| {
            a.version.is_none()
                && (a.kind == history::SQL || a.kind == history::DELETE)
                && a.description == description
        })
    }

    /// Everything `info` shows: files and history rows, in Flyway's order.
    pub fn info(&self) -> Vec<Info> {
        let mut out = vec![];
        let current = self.current();
        let baseline = self.baseline();
        // History rows first, in installed order, each with its state.
        for a in self.applied {
            if a.kind == history::SCHEMA {
                continue;
            }
            let file = self.file_for(a);
            let (state, mismatch) = match a.version() {
                Some(v) => {
                    let latest = self.latest(&v).map(|l| l.installed_rank);
                    let newest = Some(a.installed_rank) == latest;
                    let state = if a.kind == history::BASELINE {
                        State::Baseline
                    } else if a.kind == history::UNDO_SQL {
                        State::Undone
                    } else if a.kind == history::DELETE {
                        State::Deleted
                    } else if !a.success {
                        State::Failed
                    } else if !newest {
                        // Applied, then undone or deleted later.
                        match self.latest(&v).map(|l| l.kind.as_str()) {
                            Some(history::DELETE) => State::Deleted,
                            _ => State::Undone,
                        }
                    } else if file.is_none() {
                        if self.versioned().all(|s| s.version.as_ref() < Some(&v)) {
                            State::Future
                        } else {
                            State::Missing
                        }
                    } else if self.applied_after_newer(a, &v) {
                        State::OutOfOrder
                    } else {
                        State::Success
                    };
                    let mismatch = a.kind == history::SQL
                        && file.is_some_and(|f| Some(f.checksum) != a.checksum);
                    (state, mismatch)
                }
                None => {
                    let latest = self
                        .latest_repeatable(&a.description)
                        .map(|l| l.installed_rank);
                    let deleted = self
                        .latest_repeatable(&a.description)
                        .is_some_and(|l| l.kind == history::DELETE);
                    let state = if a.kind == history::DELETE || (deleted && file.is_none()) {
                        State::Deleted
                    } else if !a.success {
                        State::Failed
                    } else if file.is_none() {
                        State::Missing
                    } else if Some(a.installed_rank) != latest {
                        State::Superseded
                    } else if file.is_some_and(|f| Some(f.checksum) != a.checksum) {
                        State::Outdated
                    } else {
                        State::Success
                    };
                    (state, false)
                }
            };
            out.push(Info {
                category: if a.version.is_some() {
                    "Versioned"
                } else {
                    "Repeatable"
                },
                version: a.version.clone(),
                description: a.description.clone(),
                kind: a.kind.clone(),
                script: a.script.clone(),
                installed_on: Some(a.installed_on.clone()),
                installed_by: Some(a.installed_by.clone()),
                execution_time_ms: Some(a.execution_time),
                state,
                checksum_mismatch: mismatch,
                checksum: a.checksum,
                file_checksum: file.map(|f| f.checksum),
            });
        }
        // Then files not (currently) applied.
        let pending = self.pending();
        for s in self.scripts {
            let state = match s.kind {
                Kind::Undo => State::Available,
                Kind::Repeatable if pending.iter().any(|p| std::ptr::eq(*p, s)) => {
                    if self.latest_repeatable(&s.description).is_some() {
                        continue; // shown as Outdated above
                    }
                    State::Pending
                }
                Kind::Repeatable => continue,
                Kind::Versioned => {
                    let v = s.version.as_ref().expect("versioned");
                    if self.is_live(v) || self.latest(v).is_some_and(|l| !l.success) {
                        continue;
                    }
                    if baseline.as_ref().is_some_and(|b| v <= b) {
                        State::BelowBaseline
                    } else if pending.iter().any(|p| std::ptr::eq(*p, s)) {
                        State::Pending
                    } else if current.as_ref().is_some_and(|c| v < c) {
                        State::Ignored
                    } else {
                        State::Pending
                    }
                }
            };
            out.push(Info {
                category: match s.kind {
                    Kind::Repeatable => "Repeatable",
                    Kind::Undo => "Undo",
                    Kind::Versioned => "Versioned",
                },
                version: s.version.as_ref().map(|v| v.to_string()),
                description: s.description.clone(),
                kind: if s.kind == Kind::Undo {
                    history::UNDO_SQL
                } else {
                    history::SQL
                }
                .into(),
                script: s.script.clone(),
                installed_on: None,
                installed_by: None,
                execution_time_ms: None,
                state,
                checksum_mismatch: false,
                checksum: None,
                file_checksum: Some(s.checksum),
            });
        }
        out
    }

    /// Whether a newer version was applied before `a`.
    fn applied_after_newer(&self, a: &Applied, v: &Version) -> bool {
        self.applied.iter().any(|b| {
            b.installed_rank < a.installed_rank
                && b.kind == history::SQL
                && b.version().is_some_and(|bv| bv > *v)
        })
    }

    fn file_for(&self, a: &Applied) -> Option<&'a Script> {
        match a.version() {
            Some(v) => self.versioned().find(|s| s.version.as_ref() == Some(&v)),
            None => self
                .scripts
                .iter()
                .find(|s| s.kind == Kind::Repeatable && s.description == a.description),
        }
    }

    /// What stops `migrate` (or, with `strict`, `validate`: pending and outdated count too).
    /// Each problem says which file and what to do.
    pub fn problems(&self, strict: bool) -> Vec<String> {
        let mut out = vec![];
        for i in self.info() {
            let what = match &i.version {
                Some(v) => format!("version {v} ({})", i.script),
                None => format!("repeatable '{}' ({})", i.description, i.script),
            };
            if i.checksum_mismatch && matches!(i.state, State::Success | State::OutOfOrder) {
                out.push(format!(
                    "checksum mismatch for migration {what}: applied to the database with {}, \
                     the file now gives {}. An applied migration must not change: revert the \
                     edit and put it in a new migration, or run `lakelet migrate repair` if \
                     the change is cosmetic",
                    i.checksum.map_or("no checksum".into(), |c| c.to_string()),
                    i.file_checksum.unwrap_or_default()
                ));
            }
            match i.state {
                State::Failed => out.push(format!(
                    "migration {what} failed part-way and is recorded as failed: undo what it \
                     did, then run `lakelet migrate repair` to remove the failed entry"
                )),
                State::Missing => out.push(format!(
                    "migration {what} was applied but its file is gone: restore the file, or \
                     run `lakelet migrate repair` to mark it deleted"
                )),
                State::Ignored if !self.out_of_order => out.push(format!(
                    "migration {what} was never applied and is older than the newest applied \
                     version {}: rename it to a newer version, or pass --out-of-order to apply it",
                    self.current().map(|c| c.to_string()).unwrap_or_default()
                )),
                State::Pending if strict => out.push(format!(
                    "migration {what} is not applied yet: run `lakelet migrate migrate`"
                )),
                State::Outdated if strict => out.push(format!(
                    "repeatable migration {what} changed since it was applied: run `lakelet \
                     migrate migrate` to re-apply it"
                )),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::script::{Kind, Script, Version};

    fn file(name: &str, text: &str) -> Script {
        let (kind, version, rest) = match name.split_once("__").unwrap() {
            ("R", d) => (Kind::Repeatable, None, d),
            (v, d) if v.starts_with('U') => (Kind::Undo, Version::parse(&v[1..]), d),
            (v, d) => (Kind::Versioned, Version::parse(&v[1..]), d),
        };
        Script {
            kind,
            version,
            description: rest.trim_end_matches(".sql").replace('_', " "),
            script: name.into(),
            path: name.into(),
            text: text.into(),
            checksum: crate::migrate::checksum::flyway(text.as_bytes()),
            no_transaction: false,
        }
    }

    fn row(rank: i32, v: Option<&str>, kind: &str, s: &Script, success: bool) -> Applied {
        Applied {
            installed_rank: rank,
            version: v.map(str::to_string),
            description: s.description.clone(),
            kind: kind.into(),
            script: s.script.clone(),
            checksum: Some(s.checksum),
            installed_by: "t".into(),
            installed_on: String::new(),
            execution_time: 0,
            success,
        }
    }

    fn states(p: &Plan) -> Vec<(String, State)> {
        p.info().into_iter().map(|i| (i.script, i.state)).collect()
    }

    #[test]
    fn states_follow_flyway() {
        let v1 = file("V1__a.sql", "create table a (id int);");
        let v2 = file("V2__b.sql", "create table b (id int);");
        let v3 = file("V3__c.sql", "create table c (id int);");
        let u2 = file("U2__b.sql", "drop table b;");
        let r = file("R__v.sql", "create or replace view v as select 1;");
        let scripts = vec![v1.clone(), v3.clone(), v2.clone(), u2.clone(), r.clone()];
        // V1 and V3 applied, V2 not: V2 is ignored (older than current) unless out of order.
        let applied = vec![
            row(1, Some("1"), history::SQL, &v1, true),
            row(2, Some("3"), history::SQL, &v3, true),
        ];
        let mut p = Plan {
            scripts: &scripts,
            applied: &applied,
            out_of_order: false,
        };
        assert_eq!(p.current(), Version::parse("3"));
        let s = states(&p);
        assert!(s.contains(&("V2__b.sql".into(), State::Ignored)), "{s:?}");
        assert!(s.contains(&("R__v.sql".into(), State::Pending)), "{s:?}");
        assert!(s.contains(&("U2__b.sql".into(), State::Available)), "{s:?}");
        assert_eq!(p.problems(false).len(), 1);
        let pending: Vec<&str> = p.pending().iter().map(|s| s.script.as_str()).collect();
        assert_eq!(pending, ["R__v.sql"]);
        p.out_of_order = true;
        let pending: Vec<&str> = p.pending().iter().map(|s| s.script.as_str()).collect();
        assert_eq!(pending, ["V2__b.sql", "R__v.sql"]);
        assert!(p.problems(false).is_empty());
    }

    #[test]
    fn edits_missing_files_failures_and_undos_are_seen() {
        let v1 = file("V1__a.sql", "create table a (id int);");
        let v2 = file("V2__b.sql", "create table b (id int);");
        let u2 = file("U2__b.sql", "drop table b;");
        let mut edited = v1.clone();
        edited.text += "\n-- edited";
        edited.checksum = crate::migrate::checksum::flyway(edited.text.as_bytes());
        let applied = vec![
            row(1, Some("1"), history::SQL, &v1, true),
            row(2, Some("2"), history::SQL, &v2, true),
        ];
        // An edited applied file is a mismatch.
        let scripts = vec![edited, v2.clone()];
        let p = Plan {
            scripts: &scripts,
            applied: &applied,
            out_of_order: false,
        };
        let probs = p.problems(false);
        assert!(
            probs.len() == 1 && probs[0].contains("checksum mismatch for migration version 1"),
            "{probs:?}"
        );
        // A missing file.
        let scripts = vec![v1.clone()];
        let p = Plan {
            scripts: &scripts,
            applied: &applied,
            out_of_order: false,
        };
        assert!(states(&p).contains(&("V2__b.sql".into(), State::Future)));
        let scripts = vec![v2.clone()];
        let p = Plan {
            scripts: &scripts,
            applied: &applied,
            out_of_order: false,
        };
        assert!(states(&p).contains(&("V1__a.sql".into(), State::Missing)));
        // Undone: V2 pending again, current back to 1.
        let mut undone = applied.clone();
        undone.push(row(3, Some("2"), history::UNDO_SQL, &u2, true));
        let scripts = vec![v1.clone(), v2.clone(), u2.clone()];
        let p = Plan {
            scripts: &scripts,
            applied: &undone,
            out_of_order: false,
        };
        assert_eq!(p.current(), Version::parse("1"));
        assert_eq!(p.pending().len(), 1);
        assert!(p.problems(false).is_empty());
        // Failed: a problem until repaired, and never pending.
        let failed = vec![
            row(1, Some("1"), history::SQL, &v1, true),
            row(2, Some("2"), history::SQL, &v2, false),
        ];
        let p = Plan {
            scripts: &scripts,
            applied: &failed,
            out_of_order: false,
        };
        assert!(p.problems(false)[0].contains("failed part-way"));
        assert!(p.pending().is_empty());
        // Baseline at 2: V1 and V2 are below it and never run.
        let base = Applied {
            kind: history::BASELINE.into(),
            checksum: None,
            ..row(1, Some("2"), history::BASELINE, &v2, true)
        };
        let p = Plan {
            scripts: &scripts,
            applied: std::slice::from_ref(&base),
            out_of_order: false,
        };
        assert!(p.pending().is_empty());
        assert!(states(&p).contains(&("V1__a.sql".into(), State::BelowBaseline)));
    }
}
