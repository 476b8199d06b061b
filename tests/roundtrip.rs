//! A real Postgres data directory (from the system's initdb) through the page store: imported,
//! branched, changed on the branch, and exported again, byte for byte with modes, owners and
//! mtimes; the parent and a past lsn stay as they were.

mod common;

use common::{initdb, listing, run};

#[test]
fn postgres_data_directory_round_trips_on_every_branch_and_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let pgdata = initdb(dir.path());
    let ll = dir.path().join("ll");
    let ll = ll.as_path();
    run(ll, &["init"]);
    run(ll, &["import", pgdata.to_str().unwrap()]);
    let original = listing(&pgdata);
    assert!(
        original.len() > 500,
        "initdb made a suspiciously small data directory"
    );

    // A branch is the parent, byte for byte.
    run(ll, &["branch", "create", "dev"]);
    let created: serde_json::Value = serde_json::from_str(&run(
        ll,
        &["branch", "create", "snap", "--snapshot", "--json"],
    ))
    .unwrap();
    let snap_lsn = created["start_lsn"].as_u64().unwrap();
    let out = dir.path().join("dev-export");
    run(ll, &["export", out.to_str().unwrap(), "--branch", "dev"]);
    assert_eq!(listing(&out), original);

    // Change main after the branch point by importing a second copy under a subdirectory:
    // dev, the snapshot, and main as of the snapshot's lsn must not see it.
    let extra = dir.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("PG_VERSION.copy"), b"changed on main\n").unwrap();
    run(ll, &["import", extra.to_str().unwrap(), "--branch", "main"]);
    for (branch, lsn) in [("dev", None), ("snap", None), ("main", Some(snap_lsn))] {
        let out = dir.path().join(format!("export-{branch}"));
        let mut args = vec!["export", out.to_str().unwrap(), "--branch", branch];
        let l = lsn.map(|l: u64| l.to_string());
        if let Some(l) = &l {
            args.extend(["--lsn", l.as_str()]);
        }
        run(ll, &args);
        assert_eq!(listing(&out), original, "{branch} at {lsn:?}");
    }
    let out = dir.path().join("export-main-now");
    run(ll, &["export", out.to_str().unwrap()]);
    let now = listing(&out);
    assert!(
        now.iter().any(|l| l.starts_with("PG_VERSION.copy f")),
        "main lacks its own change"
    );

    // The branch owns nothing yet and shares the whole data directory.
    let u: serde_json::Value =
        serde_json::from_str(&run(ll, &["branch", "usage", "dev", "--json"])).unwrap();
    assert_eq!(u["own_versions"], 0);
    assert!(u["shared_bytes"].as_u64().unwrap() >= u["logical_size"].as_u64().unwrap());
}

#[test]
fn bad_input_fails_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ll = dir.path();
    let out = common::lakelet()
        .arg("--data-dir")
        .arg(ll)
        .args(["branch", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lakelet init"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(ll, &["init"]);
    for (args, needle) in [
        (
            vec!["branch", "create", "x", "--from", "nope"],
            "branch 'nope' does not exist",
        ),
        (vec!["branch", "create", "bad name!"], "invalid branch name"),
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
    ] {
        let out = common::lakelet()
            .arg("--data-dir")
            .arg(ll)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let list: serde_json::Value =
        serde_json::from_str(&run(ll, &["branch", "list", "--json"])).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "a failed command left a branch behind: {list}"
    );
}
