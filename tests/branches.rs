//! Branches with real Postgres computes on FUSE views: isolation, point in time, reset, delete,
//! and many branches at once.

mod common;

use common::Daemon;

#[test]
fn branches_see_only_their_own_changes_and_the_past_stays_the_past() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    d.sql(
        "main",
        "create table t(id int primary key, side text); \
         insert into t select g, 'main' from generate_series(1, 1000) g",
    );
    // A committed transaction is in the branch's WAL (fsynced on local disk), so a branch at a
    // restore point taken now, or at this time, must contain it, and nothing later: the child
    // recovers to that time from the store's pages and the WAL kept beside it.
    let lsn1 = d.json(&["branch", "restore-point", "main"])["lsn"]
        .as_u64()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t1 = now_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));
    d.sql(
        "main",
        "insert into t select g, 'later' from generate_series(1001, 1500) g",
    );

    d.run(&["branch", "create", "feature"]);
    d.sql(
        "feature",
        "update t set side = 'feature' where id <= 10; delete from t where id > 1400",
    );
    d.sql(
        "main",
        "update t set side = 'main-2' where id > 990 and id <= 1000",
    );

    assert_eq!(
        d.sql(
            "feature",
            "select side, count(*) from t group by 1 order by 1"
        ),
        "feature|10\nlater|400\nmain|990"
    );
    assert_eq!(
        d.sql("main", "select side, count(*) from t group by 1 order by 1"),
        "later|500\nmain|990\nmain-2|10"
    );

    let lsn_arg = lsn1.to_string();
    d.run(&["branch", "create", "at-lsn", "--at", &lsn_arg]);
    d.run(&["branch", "create", "at-time", "--at", &t1]);
    for b in ["at-lsn", "at-time"] {
        assert_eq!(
            d.sql(b, "select side, count(*) from t group by 1"),
            "main|1000",
            "{b} sees a state other than the one before the second insert"
        );
    }

    // Reset: the branch's own changes are gone; it now matches main's current state.
    d.run(&["branch", "reset", "feature"]);
    assert_eq!(
        d.sql(
            "feature",
            "select side, count(*) from t group by 1 order by 1"
        ),
        "later|500\nmain|990\nmain-2|10"
    );

    // Exported with the daemon down, the branch's data directory carries its WAL (which lives
    // beside the store once a compute ran), so a server can start on it.
    d.down();
    let out = d.dir.parent().unwrap().join("export");
    // The store read directly, where no policy applies: a principal is refused (and audited),
    // the owner's export is audited with its outcome.
    let refused = common::lakelet()
        .arg("--data-dir")
        .arg(&d.dir)
        .env("LAKELET_PRINCIPAL", "bot")
        .env("LAKELET_SECRET", "whatever")
        .args(["export", out.to_str().unwrap(), "--branch", "feature"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("offline-owner-only"),
        "{err}"
    );
    assert!(!out.exists(), "a refused export wrote {}", out.display());
    d.run(&["export", out.to_str().unwrap(), "--branch", "feature"]);
    let audit = std::fs::read_to_string(d.dir.join("audit.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["action"] == "export")
        .collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        (&rows[0]["principal"], &rows[0]["decision"]),
        (&"bot".into(), &"refused".into())
    );
    assert_eq!(
        (&rows[1]["principal"], &rows[1]["result"]),
        (&"owner".into(), &"ok".into())
    );
    let segments = std::fs::read_dir(out.join("pg_wal"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 24)
        .count();
    assert!(segments > 0, "the export has no WAL segment");
}

#[test]
fn deleting_a_branch_frees_what_it_wrote() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    d.run(&["branch", "create", "big"]);
    d.sql("big", "select 1");
    let wal_bytes = || {
        d.json(&["branch", "usage", "big"])["wal_bytes"]
            .as_u64()
            .unwrap()
    };
    let wal0 = wal_bytes();
    d.sql(
        "big",
        // Random-looking text: pages are compressed in the store, and `repeat` would shrink
        // to nothing.
        "create table filler as select g, (select string_agg(md5(g::text || i::text), '') \
         from generate_series(1, 16) i) as pad from generate_series(1, 40000) g",
    );
    let own = d.json(&["branch", "usage", "big"])["own_bytes"]
        .as_u64()
        .unwrap();
    // Its pages (the WAL that wrote them is beside the store, not in it, and counted apart).
    assert!(
        own > 15 << 20,
        "the branch should own its ~22 MiB table: {own}"
    );
    // (Less than the table: what no point in time needs any more is pruned from the archive.)
    let wal = wal_bytes().saturating_sub(wal0);
    assert!(
        wal > 5 << 20,
        "the table's WAL is kept beside the store: {wal}"
    );
    let main_before = d.json(&["branch", "usage", "main"])["own_bytes"]
        .as_u64()
        .unwrap();
    d.run(&["branch", "delete", "big", "--purge"]);
    let r = d.json(&["gc"]);
    assert!(r["removed_timelines"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["deleted_bytes"].as_u64().unwrap() >= own / 2,
        "gc freed {r} of the {own} bytes the deleted branch owned"
    );
    let main_after = d.json(&["branch", "usage", "main"])["own_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        main_after >= main_before / 2,
        "gc took main's data: {main_before} -> {main_after}"
    );
    assert_eq!(d.sql("main", "select 1"), "1");
}

/// DROP TABLE while the kernel's writeback cache still holds the table's pages: the kernel
/// writes them back to inodes that no longer have a name. That once failed, close(2) returned
/// EIO and Postgres PANICked ("could not close file"); the store now keeps such a file as an
/// orphan until the kernel lets go of it.
#[test]
fn drop_table_with_pages_still_in_the_kernel_is_no_error() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    for i in 0..5 {
        // Each statement on its own: a PANIC in any of them ends psql with an error.
        d.sql(
            "main",
            &format!(
                "create table t{i} as select g, md5(g::text) as h from generate_series(1, 100000) g"
            ),
        );
        d.sql("main", &format!("drop table t{i}"));
        d.sql("main", "checkpoint");
    }
    let st = d.json(&["status"]);
    let main = st["branches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "main")
        .unwrap()
        .clone();
    let view = &main["compute"]["view"];
    assert_eq!(view["writeback_cache"], true, "{view}");
    assert_eq!(view["errors"], 0, "the view refused requests: {view}");
    // The path this test is about was taken: files unlinked while the kernel held them.
    let orphaned = view["orphaned"].as_u64().unwrap();
    assert!(orphaned >= 1, "{view}");
    assert!(
        view["orphans_freed"].as_u64().unwrap() <= orphaned,
        "{view}"
    );
    assert_eq!(
        d.sql(
            "main",
            "select count(*) from pg_class where relname like 't_'"
        ),
        "0"
    );
}

#[test]
fn fifty_branches_with_fifty_running_computes() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    d.sql("main", "create table who(name text)");
    let n = 50;
    for i in 0..n {
        let b = format!("b{i:02}");
        d.run(&["branch", "create", &b]);
        d.sql(&b, &format!("insert into who values ('{b}')"));
    }
    let st = d.json(&["status"]);
    let running = st["branches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["compute"]["state"] == "running")
        .count();
    assert_eq!(running, n + 1, "every branch's compute should be running");
    for i in 0..n {
        let b = format!("b{i:02}");
        assert_eq!(d.sql(&b, "select string_agg(name, ',') from who"), b);
    }
    assert_eq!(d.sql("main", "select count(*) from who"), "0");
    d.down();
    assert!(
        common::mounts_under(&d.run_dir).is_empty(),
        "down left views mounted"
    );
}

#[test]
fn idle_computes_stop_and_start_again_on_demand() {
    let d = Daemon::up(&["--idle-stop", "2s", "--reap-every", "200ms"]);
    d.sql("main", "create table t as select 1 as x");
    let pid1 = d.endpoint("main")["pid"].as_u64().unwrap();
    let t = std::time::Instant::now();
    loop {
        let st = d.json(&["status"]);
        if st["branches"][0]["compute"]["state"] == "stopped" {
            break;
        }
        assert!(
            t.elapsed().as_secs() < 60,
            "the idle compute never stopped: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid1}")).exists(),
        "postmaster {pid1} still runs"
    );
    assert_eq!(d.sql("main", "select x from t"), "1");
    assert_ne!(d.endpoint("main")["pid"].as_u64().unwrap(), pid1);
}

/// The current time in RFC 3339 with nanoseconds (the store's time index has ms resolution).
fn now_rfc3339() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn import_of_a_live_server_becomes_an_independent_root_branch() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    // A live server reached by its socket (the pg_basebackup path): a native Postgres. (A
    // lakelet compute's socket is closed to every uid but its own.)
    let tmp = tempfile::tempdir().unwrap();
    let src = common::NativeServer::start(tmp.path());
    src.sql(
        "postgres",
        "create table src as select g as id from generate_series(1, 5000) g",
    );
    let url = src.url("postgres");
    let r = d.json(&["import", "--from-url", &url, "--branch", "copy"]);
    assert_eq!(r["method"], "pg_basebackup", "{r}");
    assert_eq!(d.sql("copy", "select count(*) from src"), "5000");
    let list = d.json(&["branch", "list"]);
    let copy = list["branches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["branch_id"] == "copy")
        .unwrap();
    assert!(
        copy["status"]["source_branch"].is_null(),
        "an import is a root branch: {copy}"
    );
    // The copy is independent of its source.
    d.sql("copy", "delete from src where id > 10");
    assert_eq!(src.sql("postgres", "select count(*) from src"), "5000");
    // Importing onto an existing name is refused and changes nothing.
    let err = d.fails(&["import", "--from-url", &url, "--branch", "copy"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(d.sql("copy", "select count(*) from src"), "10");
    // A server that cannot be reached: the import fails and leaves no branch behind.
    let err = d.fails(&[
        "import",
        "--from-url",
        "postgresql:///postgres?host=/nonexistent&port=1",
        "--branch",
        "ghost",
    ]);
    assert!(err.contains("import into 'ghost' failed"), "{err}");
    assert!(!d.run(&["branch", "list"]).contains("ghost"));
}

/// The archived WAL beside the store keeps what a point-in-time branch can still need, and
/// drops the rest: a restore point's window (its checkpoint's redo point to its time) and the
/// fine window, not every segment since the restore point.
#[test]
fn archived_wal_keeps_what_point_in_time_needs_and_no_more() {
    let d = Daemon::up(&["--idle-stop", "0s", "--fine-window", "2s"]);
    d.sql("main", "create table marks(n int)");
    d.sql("main", "insert into marks values (1)");
    let at = d.json(&["branch", "restore-point", "main"])["lsn"]
        .as_u64()
        .unwrap()
        .to_string();
    // Sixteen finished segments after it (and after the second its time names), each with a
    // write and a checkpoint in it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    for i in 2..=17 {
        d.sql(
            "main",
            &format!("insert into marks values ({i}); checkpoint; select pg_switch_wal()"),
        );
    }
    let archive = || -> usize {
        std::fs::read_dir(d.dir.join("wal"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_dir(e.path().join("archive")).ok())
            .map(|rd| rd.flatten().filter(|f| f.file_name().len() == 24).count())
            .max()
            .unwrap_or(0)
    };
    let t = std::time::Instant::now();
    while archive() < 16 && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = archive();
    assert!(
        before >= 10,
        "the archiver kept up with only {before} segments"
    );
    // Out of the fine window, then prune (gc prunes the archives too).
    std::thread::sleep(std::time::Duration::from_secs(3));
    d.sql("main", "insert into marks values (100)");
    d.run(&["gc"]);
    let after = archive();
    assert!(
        after < before / 2,
        "pruning kept {after} of {before} archived segments"
    );
    // What the restore point needs is still there: a branch at it is exact.
    d.run(&["branch", "create", "back", "--at", &at]);
    assert_eq!(
        d.sql("back", "select string_agg(n::text, ',') from marks"),
        "1"
    );
    assert_eq!(d.sql("main", "select count(*) from marks"), "18");
}

/// `--ttl 0s` (or anything under a second) is refused before anything is made: the branch
/// would be expired as it is created.
#[test]
fn a_ttl_under_a_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["branch", "create", "x", "--ttl", "0s"][..],
        &["branch", "create", "x", "--ttl", "500ms"][..],
        &["branch", "expire", "x", "--ttl", "0s"][..],
    ] {
        let out = common::lakelet()
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("shorter than a second"), "{args:?}: {err}");
    }
}

/// `lakelet up` right after the daemon was SIGKILLed starts a new daemon: the dead one's pid
/// lingers for a moment (a zombie until reaped) and must not pass for "already running".
#[test]
fn up_right_after_a_sigkill_starts_a_new_daemon() {
    let d = Daemon::up(&[]);
    d.sql("main", "create table k(a int); insert into k values (1)");
    let old = d.pid().unwrap();
    // SAFETY: signals the daemon this test started.
    unsafe { libc::kill(old, libc::SIGKILL) };
    let out = d.up_again();
    assert!(!out.contains("already running"), "{out}");
    let new = d.pid().unwrap();
    assert_ne!(new, old, "{out}");
    assert_eq!(d.sql("main", "select count(*) from k"), "1");
}

/// A protect that lands while a delete is under way is never lost. (Delete once read the
/// lifecycle before taking the branch's lock and wrote that stale copy back: the protect was
/// erased and the just-protected branch deleted.) A fault pause holds each delete for 400 ms
/// just before it takes the lock, where the old code had already read; a protect is sent
/// into that window.
#[test]
fn a_protect_during_a_delete_is_never_lost() {
    // Inherited by the daemon `Daemon::up` starts; no other test pauses at this point.
    std::env::set_var("LAKELET_FAULT_PAUSE", "delete.before_lock=400");
    let d = Daemon::up(&[]);
    std::env::remove_var("LAKELET_FAULT_PAUSE");
    let ok = |args: &[&str]| {
        common::lakelet()
            .arg("--data-dir")
            .arg(&d.dir)
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    };
    for i in 0..4 {
        let n = format!("race-{i}");
        d.run(&["branch", "create", &n]);
        std::thread::scope(|s| {
            let del = s.spawn(|| ok(&["branch", "delete", &n]));
            std::thread::sleep(std::time::Duration::from_millis(150));
            let protected_ok = ok(&["branch", "protect", &n]);
            let deleted_ok = del.join().unwrap();
            let v = d.json(&["branch", "get", &n]);
            assert!(protected_ok, "{n}: protect failed: {v}");
            assert_eq!(
                v["status"]["is_protected"], true,
                "{n}: the protect was lost: {v}"
            );
            // The protect came first (the delete was paused): the delete is refused.
            assert!(!deleted_ok, "{n}: a protected branch was deleted: {v}");
            assert_eq!(v["status"]["current_state"], "READY", "{n}: {v}");
        });
    }
}
