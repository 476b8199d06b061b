//! A project checkout (a git work tree with lakelet.toml) and the principal who works in it:
//! what the workflow tests drive the SCM gates through.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub struct Checkout {
    pub dir: PathBuf,
    pub data: PathBuf,
    /// The principal and its secret; `None`: the daemon's owner.
    pub who: Option<(String, String)>,
}

impl Checkout {
    pub fn owner(dir: PathBuf, data: PathBuf) -> Checkout {
        Checkout {
            dir,
            data,
            who: None,
        }
    }

    pub fn name(&self) -> &str {
        self.who.as_ref().map_or("owner", |(w, _)| w.as_str())
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut c = super::lakelet();
        c.current_dir(&self.dir).arg("--data-dir").arg(&self.data);
        if let Some((who, secret)) = &self.who {
            c.env("LAKELET_PRINCIPAL", who)
                .env("LAKELET_SECRET", secret);
        }
        c.args(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "{}: lakelet {args:?} failed:\n{}\n{}",
            self.name(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Refused, with `needle` in the message; `still` is read before and after and must not
    /// change (the state file, refs, branches: what the caller says a refusal leaves alone).
    pub fn refused_keeping<T: PartialEq + std::fmt::Debug>(
        &self,
        args: &[&str],
        needle: &str,
        still: impl Fn() -> T,
    ) -> String {
        let before = still();
        let o = self.cmd(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            !o.status.success(),
            "{}: lakelet {args:?} was not refused",
            self.name()
        );
        assert!(
            err.contains(needle),
            "{}: lakelet {args:?}: {needle:?} not in:\n{err}",
            self.name()
        );
        assert_eq!(
            still(),
            before,
            "{}: lakelet {args:?} changed something",
            self.name()
        );
        err
    }

    pub fn state_text(&self) -> String {
        std::fs::read_to_string(self.dir.join(".lakebase/workflow-state.json")).unwrap_or_default()
    }

    /// The state file, which must validate against its schema.
    pub fn state(&self) -> serde_json::Value {
        let text = self.state_text();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let bad = lakelet::scm::state::violations(&v);
        assert!(
            bad.is_empty(),
            "{}: the state file breaks the schema: {bad:?}\n{text}",
            self.name()
        );
        v
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn commit(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }
}
