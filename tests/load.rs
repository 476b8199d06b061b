//! Branching under write load and killing the daemon under write load: every child and every
//! restarted branch must come up by ordinary crash recovery with clean pg_amcheck (heap and
//! btree), TPC-B's own invariant (balances = history), and every acknowledged commit.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{pg_bindir, Daemon};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pgbench client against a branch's socket, as a child process.
fn pgbench(ep: &serde_json::Value, args: &[&str]) -> Command {
    let mut c = Command::new(pg_bindir().join("pgbench"));
    c.env("PGHOST", ep["socket_dir"].as_str().unwrap())
        .env("PGPORT", ep["port"].to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .args(args);
    c
}

/// pg_amcheck of every heap and btree of the branch; panics with its report on any finding.
fn amcheck(d: &Daemon, branch: &str) {
    let ep = d.endpoint(branch);
    d.sql(branch, "create extension if not exists amcheck");
    let out = Command::new(pg_bindir().join("pg_amcheck"))
        .env("PGHOST", ep["socket_dir"].as_str().unwrap())
        .env("PGPORT", ep["port"].to_string())
        .env("PGUSER", "postgres")
        .args([
            "--heapallindexed",
            "--rootdescend",
            "--database",
            "postgres",
        ])
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "pg_amcheck of '{branch}' found problems:\n{report}"
    );
}

/// TPC-B's invariant: each transaction adds the same delta to an account, its teller, its
/// branch and the history, in one transaction; a torn or reordered state breaks the sums.
fn tpcb_consistent(d: &Daemon, branch: &str) {
    let r = d.sql(
        branch,
        "select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta), 0) from pgbench_history) \
           and (select sum(tbalance) from pgbench_tellers) = (select coalesce(sum(delta), 0) from pgbench_history) \
           and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta), 0) from pgbench_history)",
    );
    assert_eq!(
        r, "t",
        "TPC-B balances disagree with the history on '{branch}'"
    );
}

struct Bench(Child);
impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn branches_cut_under_pgbench_load_recover_and_pass_amcheck() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let ep = d.endpoint("main");
    let st = pgbench(&ep, &["-i", "-s", "2", "-q"]).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let secs = env_u64("LAKELET_LOAD_SECS", 40);
    let load = Bench(
        pgbench(&ep, &["-c", "4", "-j", "2", "-T", &secs.to_string(), "-n"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let n = env_u64("LAKELET_LOAD_BRANCHES", 8);
    std::thread::sleep(Duration::from_secs(2));
    // A third at the head with a CHECKPOINT first (the default); a third at an lsn, a third at
    // a time: past cuts skip the checkpoint (raw crash-consistent pages) and end their WAL at
    // the cut's time, so their recovery stops mid-load.
    for i in 0..n {
        let name = format!("child{i}");
        match i % 3 {
            0 => {
                d.run(&["branch", "create", &name]);
            }
            1 => {
                let lsn = d.json(&["status"])["last_lsn"]
                    .as_u64()
                    .unwrap()
                    .to_string();
                d.run(&["branch", "create", &name, "--at", &lsn]);
            }
            _ => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as i64;
                let t = lakelet::storage::format_time(now - 500_000_000);
                d.run(&["branch", "create", &name, "--at", &t]);
            }
        }
        std::thread::sleep(Duration::from_millis(secs * 1000 / (n + 2)));
    }
    drop(load);
    for i in 0..n {
        let name = format!("child{i}");
        tpcb_consistent(&d, &name);
        amcheck(&d, &name);
        // The child is writable and its own.
        d.sql(
            &name,
            "insert into pgbench_history values (1, 1, 1, 0, now(), 'child')",
        );
        d.run(&["branch", "stop", &name]);
    }
    tpcb_consistent(&d, "main");
    amcheck(&d, "main");
}

/// SIGKILL of the daemon and of every compute process at once, as a power cut would leave
/// them: what is durable is what an fsync acknowledged (the store's pages, each branch's WAL on
/// local disk). `LAKELET_CRASH_ROUNDS` rounds (default 2).
fn kill_everything(d: &Daemon) {
    let pid = d.pid().unwrap();
    let postmasters: Vec<u32> = std::fs::read_dir(d.run_dir.join("p"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            text.lines().next()?.parse().ok()
        })
        .collect();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for pm in &postmasters {
        lakelet::compute::postgres::kill_tree(*pm);
    }
    let t = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && t.elapsed().as_secs() < 30 {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that inserts ids from `first` on, one transaction each, and records the highest
/// id whose COMMIT returned.
fn acking_writer(
    sock: String,
    first: u64,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut cfg = tokio_postgres::Config::new();
            cfg.host_path(&sock)
                .port(5432)
                .user("postgres")
                .dbname("postgres");
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let mut id = first;
            while !stop.load(Ordering::Relaxed) {
                let q = format!("insert into acks values ({id})");
                if client.simple_query(&q).await.is_err() {
                    break;
                }
                acked.store(id, Ordering::SeqCst);
                id += 1;
            }
        })
    })
}

#[test]
fn sigkill_of_the_daemon_and_computes_under_load_loses_no_acknowledged_commit() {
    let d = Daemon::up(&["--idle-stop", "0s"]);
    let ep = d.endpoint("main");
    let st = pgbench(&ep, &["-i", "-s", "1", "-q"]).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    d.sql("main", "create table acks(id bigint primary key)");
    d.run(&["branch", "create", "side"]);
    let rounds = env_u64("LAKELET_CRASH_ROUNDS", 2);
    let mut before = 0;
    for round in 0..rounds {
        let ep = d.endpoint("main");
        let side = d.endpoint("side");
        let acked = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = acking_writer(
            ep["socket_dir"].as_str().unwrap().to_string(),
            before + 1,
            acked.clone(),
            stop.clone(),
        );
        let load_main = Bench(
            pgbench(&ep, &["-c", "2", "-T", "60", "-n"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let load_side = Bench(
            pgbench(&side, &["-c", "2", "-T", "60", "-n"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Vary the moment: 3 to 6 s in (checkpoints, writebacks, segment switches differ).
        let after = env_u64("LAKELET_KILL_AFTER_SECS", 3) * 1000 + (round * 1237) % 3000;
        std::thread::sleep(Duration::from_millis(after));
        kill_everything(&d);
        let acked_now = acked.load(Ordering::SeqCst);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        drop((load_main, load_side));
        assert!(
            acked_now > before + 10,
            "round {round}: the writer made too little progress ({before} -> {acked_now})"
        );

        // Up again: stale computes and mounts are cleared, every branch starts by crash
        // recovery from the store's pages and its own WAL.
        d.run(&[
            "up",
            "--api-port",
            "0",
            "--idle-stop",
            "0s",
            "--gc-every",
            "3600s",
        ]);
        let got = d.sql("main", "select count(*), coalesce(max(id), 0) from acks");
        let (count, max): (u64, u64) = {
            let mut it = got.split('|').map(|v| v.parse().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        };
        assert!(
            max >= acked_now,
            "round {round}: acknowledged commit {acked_now} lost: the table ends at {max}"
        );
        assert_eq!(count, max, "round {round}: ids 1..={max} are not all there");
        for b in ["main", "side"] {
            tpcb_consistent(&d, b);
            amcheck(&d, b);
        }
        eprintln!("crash round {round}: {acked_now} acknowledged, {max} present");
        before = max;
    }
}
