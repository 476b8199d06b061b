//! The OS boundary beneath the policy (issue 23), tried the way an attacker on the same machine
//! would: as an unprivileged local user, and from a superuser session on one branch against
//! another branch of the same daemon, a second daemon, and the system database.
//!
//! Needs root (computes under leased uids, `runuser`); skipped otherwise.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::Daemon;

fn root() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    true
}

/// `sh -c SCRIPT` as user `nobody`: (success, stdout + stderr).
fn as_nobody(script: &str) -> (bool, String) {
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c", script])
        .output()
        .expect("runuser (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `script` through `COPY … FROM PROGRAM` as the superuser of `branch` (what a superuser
/// session can do): every line it prints, tabs and backslashes flattened so COPY takes them.
fn from_program(d: &Daemon, branch: &str, script: &str) -> String {
    let quoted = format!("({script}) 2>&1 | tr '\\t\\\\' '  '").replace('\'', "''");
    d.sql(
        branch,
        &format!(
            "CREATE TEMP TABLE o(l text); COPY o FROM PROGRAM '{quoted}'; \
             SELECT coalesce(string_agg(l, E'\\n'), '') FROM o"
        ),
    )
}

fn socket_dir(d: &Daemon, branch: &str) -> String {
    d.endpoint(branch)["socket_dir"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A fresh data directory is 0700 and everything in it is its owner's; an unprivileged user
/// who can reach the directory reads nothing in it, lists nothing in the runtime directory,
/// and connects to no compute. A data directory open to others is refused, not narrowed.
#[test]
fn an_unprivileged_user_reads_nothing_and_connects_nowhere() {
    if !root() {
        return;
    }
    let d = Daemon::up(&[]);
    d.sql("main", "CREATE TABLE t AS SELECT 'ROWVALUE-' || g AS v FROM generate_series(1, 2000) g; CHECKPOINT");
    // The test's temporary directory is 0700: open it so only the data directory's own mode
    // stands between nobody and the files.
    let parent = d.dir.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(&d.dir).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the data directory's mode");
    let data = d.dir.display().to_string();
    let (_, found) = as_nobody(&format!("find {data} -type f 2>/dev/null | head -5"));
    assert_eq!(
        found.trim(),
        "",
        "nobody listed files in the data directory"
    );
    for f in [
        "audit.jsonl",
        "logs/daemon.log",
        "store/CURRENT",
        "api-token",
    ] {
        let (ok, text) = as_nobody(&format!("cat {data}/{f}"));
        assert!(!ok && text.contains("Permission denied"), "{f}: {text}");
    }
    let (_, hits) = as_nobody(&format!("grep -r -a -c ROWVALUE {data} 2>/dev/null"));
    assert!(!hits.contains(":1") && !hits.contains(":2"), "{hits}");
    // The runtime directory: traversable (a compute must reach its own socket), not listable.
    let run = d.run_dir.display().to_string();
    for sub in ["", "/s", "/m", "/p", "/w"] {
        let (ok, text) = as_nobody(&format!("ls {run}{sub}"));
        assert!(!ok, "nobody listed {run}{sub}: {text}");
    }
    let sock = socket_dir(&d, "main");
    let psql = common::pg_bindir().join("psql");
    let (ok, text) = as_nobody(&format!(
        "{} -h {sock} -U postgres -XAtc 'select v from t limit 1' postgres",
        psql.display()
    ));
    assert!(!ok && text.contains("Permission denied"), "{text}");
    let (_, text) = as_nobody(&format!(
        "ls {run}/m/*/base 2>&1; cat {run}/w/*/pg_wal/* 2>&1"
    ));
    assert!(!text.contains("ROWVALUE"), "{text}");

    // An existing directory open to others is refused, with what to do.
    let open = parent.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = common::lakelet()
        .arg("--data-dir")
        .arg(&open)
        .args(["up", "--api-port", "0", "--proxy-port", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "up on a 0755 data directory succeeded"
    );
    assert!(
        err.contains("open to other users") && err.contains("chmod 700"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o755);
}

/// A superuser session on branch b1 runs programs as b1's compute uid: it cannot connect to
/// main's compute, another daemon's, or the system database, cannot read their files or
/// signal them; their rows never appear. What it was allowed (its own connection) is audited.
#[test]
fn a_superuser_session_reaches_no_other_compute() {
    if !root() {
        return;
    }
    let a = Daemon::up(&[]);
    let b = Daemon::up(&[]);
    a.sql("main", "CREATE TABLE secret AS SELECT 'A-MAIN-SECRET' AS v");
    b.sql("main", "CREATE TABLE secret AS SELECT 'B-MAIN-SECRET' AS v");
    a.run(&["branch", "create", "b1", "--from", "main"]);
    // The system database runs once a session asks for it.
    let url = a.run(&["connstr", "main", "--database", "lakelet"]);
    let out = Command::new(common::pg_bindir().join("psql"))
        .args([url.trim(), "-XAtc", "select count(*) > 0 from audit"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{out:?}");
    let system = a.run_dir.join("s").join("lakelet-system");
    let targets = [
        socket_dir(&a, "main"),
        socket_dir(&b, "main"),
        system.display().to_string(),
    ];
    let psql = common::pg_bindir().join("psql");
    let mut script = String::from("id -u; ");
    for s in &targets {
        script += &format!(
            "{} -h {s} -U postgres -XAtc 'select v from secret' postgres; \
             {} -h {s} -U postgres -XAtc 'select 1' lakelet; ls {s}; ",
            psql.display(),
            psql.display()
        );
    }
    let main = a.endpoint("main");
    let main_view = a.run_dir.join("m").join(
        Path::new(main["socket_dir"].as_str().unwrap())
            .file_name()
            .unwrap(),
    );
    script += &format!(
        "kill -0 {}; ls {}/base; cat {}/audit.jsonl",
        main["pid"],
        main_view.display(),
        a.dir.display()
    );
    let out = from_program(&a, "b1", &script);
    assert!(
        !out.contains("SECRET"),
        "b1 read another compute's rows:\n{out}"
    );
    assert!(!out.contains("\"action\""), "b1 read the audit log:\n{out}");
    let denied = out.matches("Permission denied").count();
    assert!(
        denied >= 11,
        "expected every attempt refused by the OS:\n{out}"
    );
    assert!(
        out.contains("Operation not permitted"),
        "kill reached main:\n{out}"
    );
    // b1 and main run under different uids, neither root nor the base compute user.
    let b1_uid: u32 = out.lines().next().unwrap().trim().parse().unwrap();
    let main_uid: u32 = from_program(&a, "main", "id -u").trim().parse().unwrap();
    assert_ne!(b1_uid, main_uid);
    assert_ne!(b1_uid, 0);
    // The only thing allowed was b1's own session, and the audit says so.
    let audit = a.json(&["audit", "--action", "connect"]);
    let rows = audit.as_array().expect("audit rows");
    assert!(
        rows.iter()
            .any(|r| r["target"] == "b1" && r["decision"] == "allowed"),
        "{audit:#}"
    );
}

/// What a session starts in the background under its compute's uid (`&` in COPY FROM
/// PROGRAM), and what it leaves in /tmp, do not outlive the compute: the next compute to get
/// that uid meets no stranger and finds nothing.
#[test]
fn nothing_outlives_its_compute_under_its_uid() {
    if !root() {
        return;
    }
    let d = Daemon::up(&[]);
    d.run(&["branch", "create", "b1", "--from", "main"]);
    let out = from_program(
        &d,
        "b1",
        "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo b1-secret > /tmp/lakelet-left-$(id -u); \
         ipcmk -M 4096 >/dev/null; id -u",
    );
    let uid: u32 = out.trim().parse().unwrap();
    let running = |uid: u32| -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter(|e| e.metadata().map(|m| m.uid()).ok() == Some(uid))
            .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
            .filter(|c| !c.is_empty())
            .collect()
    };
    assert!(
        running(uid).iter().any(|c| c.starts_with("sleep")),
        "the stray sleep did not start"
    );
    let left_file = Path::new("/tmp").join(format!("lakelet-left-{uid}"));
    assert!(left_file.exists(), "the file was not written");
    let segments = |uid: u32| {
        std::fs::read_to_string("/proc/sysvipc/shm")
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(7) == Some(uid.to_string().as_str()))
            .count()
    };
    assert!(segments(uid) > 0, "ipcmk made no segment");
    d.run(&["branch", "stop", "b1"]);
    let left = running(uid);
    assert!(left.is_empty(), "still running as uid {uid}: {left:?}");
    // Nor what it left in /tmp, for the next compute under that uid to read.
    assert!(
        !left_file.exists(),
        "{} outlived its compute",
        left_file.display()
    );
    assert!(Path::new("/proc/self").exists());
}
