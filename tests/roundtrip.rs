//! A real Postgres data directory (from the system's initdb) through the page store: imported
//! as a root branch through the daemon, branched, changed by its own compute, and exported
//! again byte for byte with modes and mtimes (owners become the compute user, or Postgres would
//! refuse the data directory); branches and a past lsn stay as they were.

mod common;

use common::{initdb, listing, Daemon};

/// A listing with the owner column replaced by whether it is the compute user.
fn normalized(l: &[String], uid: Option<u32>) -> Vec<String> {
    l.iter()
        .map(|line| {
            let mut f: Vec<String> = line.split(' ').map(str::to_string).collect();
            if let Some(uid) = uid {
                assert!(f[3].starts_with(&format!("{uid}:")), "owner of {line}");
            }
            f[3] = "-".into();
            f.join(" ")
        })
        .collect()
}

fn compute_uid() -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", "lakelet"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn postgres_data_directory_round_trips_on_every_branch_and_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let pgdata = initdb(dir.path());
    let original = listing(&pgdata);
    assert!(
        original.len() > 500,
        "initdb made a suspiciously small data directory"
    );
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let r = d.json(&[
        "import",
        "--pgdata",
        pgdata.to_str().unwrap(),
        "--branch",
        "imp",
    ]);
    assert_eq!(r["method"], "copy");
    d.run(&["branch", "create", "dev", "--from", "imp"]);
    let created = d.json(&["branch", "create", "snap", "--from", "imp", "--snapshot"]);
    // The API writes lsns as Postgres does (`0/11A0`); export takes that form.
    let snap_lsn = created["spec"]["source_branch_lsn"]
        .as_str()
        .unwrap()
        .to_string();
    // The imported cluster runs (as the compute user) and changes itself after the branch point.
    assert_eq!(
        d.sql(
            "imp",
            "create table t as select 1 as x; select count(*) from t"
        ),
        "1"
    );
    d.down();

    let uid = compute_uid();
    let want = normalized(&original, None);
    for (branch, lsn) in [
        ("dev", None),
        ("snap", None),
        ("imp", Some(snap_lsn.clone())),
    ] {
        let out = dir.path().join(format!("export-{branch}"));
        let mut args = vec!["export", out.to_str().unwrap(), "--branch", branch];
        if let Some(l) = &lsn {
            args.extend(["--lsn", l.as_str()]);
        }
        d.run(&args);
        assert_eq!(
            normalized(&listing(&out), Some(uid)),
            want,
            "{branch} at {lsn:?}"
        );
    }
    let out = dir.path().join("export-imp-now");
    d.run(&["export", out.to_str().unwrap(), "--branch", "imp"]);
    assert_ne!(
        normalized(&listing(&out), Some(uid)),
        want,
        "imp lacks its own changes"
    );
}

#[test]
fn bad_input_fails_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::lakelet()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["branch", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lakelet up"), "{err}");

    let d = Daemon::up(&[]);
    let notdir = dir.path().join("not-a-cluster");
    std::fs::create_dir(&notdir).unwrap();
    for (args, needle) in [
        (
            vec!["branch", "create", "x", "--from", "nope"],
            "'nope' does not exist",
        ),
        (vec!["branch", "create", "bad name!"], "is invalid"),
        (
            vec!["branch", "create", "x", "--at", "99999999"],
            "has not been written yet",
        ),
        (
            vec!["branch", "create", "x", "--at", "1999-01-01T00:00:00Z"],
            "retains no state",
        ),
        (
            vec!["branch", "create", "x", "--at", "last tuesday"],
            "RFC 3339",
        ),
        (vec!["branch", "reset", "main"], "no parent"),
        (vec!["branch", "delete", "ghost"], "does not exist"),
        (vec!["branch", "delete", "main"], "default branch"),
        (
            vec!["psql", "ghost", "--", "-c", "select 1"],
            "does not exist",
        ),
        (
            vec![
                "import",
                "--pgdata",
                notdir.to_str().unwrap(),
                "--branch",
                "x",
            ],
            "not a Postgres data directory",
        ),
        (
            vec!["export", "/tmp/never", "--branch", "main"],
            "run `lakelet down` first",
        ),
    ] {
        let err = d.fails(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let list = d.json(&["branch", "list"]);
    assert_eq!(
        list["branches"].as_array().unwrap().len(),
        1,
        "a failed command left a branch behind: {list}"
    );
}
