//! Real client libraries through the proxy, doing what applications do with a Postgres server:
//! psycopg 3 (pure Python on the system's libpq) with psycopg_pool, psycopg2 (Debian's, on the
//! same libpq) and node-postgres with pg-copy-streams. Each runs over TLS and without: backend
//! pid = `pg_backend_pid()`, LISTEN/NOTIFY self-detection by pid, cancel, terminate by pid, a
//! pool that replaces a terminated connection, COPY both ways, and the loop of SELECT then
//! binary COPY out that once stalled libpq over the proxy's TLS (issue 22), every round under a
//! watchdog. The clients' scripts live in tests/clients/ and assert the details themselves;
//! these tests check that each check ran and passed.
//!
//! Loop rounds per run: `LAKELET_CLIENT_LOOPS` (default 300); a soak sets it higher.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{test_node_modules, test_python, Daemon};

fn loops() -> String {
    std::env::var("LAKELET_CLIENT_LOOPS").unwrap_or_else(|_| "300".into())
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Runs a client script; returns its stdout, failing the test with all of its output (and a
/// stall's round, which the script prints) if it failed.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_checks(out: &str, checks: &[&str], what: &str) {
    for c in checks {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("ok {c}"))),
            "{what}: check {c:?} did not pass:\n{out}"
        );
    }
}

const CHECKS: &[&str] = &[
    "pid",
    "notify",
    "cancel",
    "terminate",
    "pool",
    "copy",
    "loop",
];

const PIPELINE: &[&str] = &["pipeline"];

#[test]
fn psycopg3_sees_a_postgres_server_over_tls_and_without() {
    let d = Daemon::up(&[]);
    run_psycopg3(&d, &["require", "disable"]);
    assert_kernel_relayed(&d);
    // The daemon's own copy, for plain sessions too.
    let u = Daemon::up(&["--proxy-relay", "user"]);
    run_psycopg3(&u, &["disable"]);
}

fn run_psycopg3(d: &Daemon, modes: &[&str]) {
    let url = d.url("main");
    for &mode in modes {
        let mut cmd = Command::new(test_python());
        cmd.arg(script("psycopg3_client.py"))
            .args([&url, mode, &loops()]);
        let what = format!("psycopg 3, sslmode={mode}");
        let out = run(cmd, &what);
        assert_checks(&out, CHECKS, &what);
        assert_checks(&out, PIPELINE, &what);
        assert!(out.contains(&format!("ssl={}", mode == "require")), "{out}");
    }
}

#[test]
fn psycopg2_copy_after_select_never_stalls() {
    let d = Daemon::up(&[]);
    let url = d.url("main");
    for mode in ["require", "disable"] {
        // Debian's psycopg2 links the system's libpq (the venv's psycopg2-binary carries its own).
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script("psycopg2_loop.py"))
            .args([&url, mode, &loops()]);
        let what = format!("psycopg2, sslmode={mode}");
        let out = run(cmd, &what);
        assert!(
            out.contains(&format!(
                "ok loop {} rounds ssl={}",
                loops(),
                mode == "require"
            )),
            "{what}: {out}"
        );
    }
}

#[test]
fn node_postgres_sees_a_postgres_server_over_tls_and_without() {
    let d = Daemon::up(&[]);
    let url = d.url("main");
    // With TLS, node verifies the daemon's certificate (verify-full against it as the CA).
    let ca = d.dir.join("tls/server.crt");
    for ca in [ca.to_str().unwrap(), "-"] {
        let mut cmd = Command::new("node");
        cmd.arg(script("node_pg_client.js"))
            .args([&url, ca, &loops()])
            .env("NODE_PATH", test_node_modules());
        let what = format!("node-postgres, ca={ca}");
        let out = run(cmd, &what);
        assert_checks(&out, CHECKS, &what);
        assert!(out.contains(&format!("ssl={}", ca != "-")), "{out}");
    }
    assert_kernel_relayed(&d);
}

/// As root (how the suite runs) the plain runs went through the kernel relay, so these clients
/// tested it; TLS runs and the runs under `--proxy-relay user` test the daemon's copy.
fn assert_kernel_relayed(d: &Daemon) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let proxy = d.json(&["status"])["proxy"].clone();
    assert!(
        proxy["kernel_sessions"].as_u64().unwrap() > 0,
        "no session went through the kernel relay: {proxy}"
    );
}
