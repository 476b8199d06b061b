//! A project directory (lakelet.toml, migrations/, .lakebase/) and lakelet run inside it
//! against a test's daemon: what `refactor`, `experiment` and `migrate` read from the
//! working directory.

use std::path::PathBuf;
use std::process::Command;

use super::{lakelet, Daemon};

pub struct Project<'a> {
    pub d: &'a Daemon,
    pub dir: PathBuf,
}

impl<'a> Project<'a> {
    /// `root/name` with a lakelet.toml naming `migrations/` as the migrations directory.
    pub fn new(d: &'a Daemon, root: &std::path::Path, name: &str) -> Project<'a> {
        let p = Project {
            d,
            dir: root.join(name),
        };
        p.write("lakelet.toml", "[migrations]\ndir = \"migrations\"\n");
        std::fs::create_dir_all(p.dir.join("migrations")).unwrap();
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = lakelet();
        c.current_dir(&self.dir)
            .arg("--data-dir")
            .arg(&self.d.dir)
            .args(args);
        c
    }

    /// (success, stdout, stderr).
    pub fn try_run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn run(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_run(args);
        assert!(ok, "lakelet {args:?} failed:\n{out}\n{err}");
        out
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.run(&a)).unwrap()
    }

    /// A command that must fail: its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_run(args);
        assert!(!ok, "lakelet {args:?} should fail:\n{out}");
        err
    }

    /// A command that must fail, with --json: its report (stdout, if any) and its error.
    pub fn json_failing(&self, args: &[&str]) -> (serde_json::Value, String) {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (ok, out, err) = self.try_run(&a);
        assert!(!ok, "lakelet {args:?} should fail:\n{out}");
        (serde_json::from_str(&out).unwrap_or_default(), err)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap()
    }

    /// The migrations directory's file names, sorted.
    pub fn migrations(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}
