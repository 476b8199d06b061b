//! `lakelet bench` end to end at tiny sizes: the real daemon, real native clusters, real
//! pgbench, pg_dump and pg_restore. The figures themselves are not judged (tests never assert
//! wall-clock times); what is checked is that every method produced real figures for every
//! size, that the copies held the parent's data and cost what copies cost, that the report,
//! the JSON and the plots agree, and that nothing the bench started or wrote outlives it —
//! after a normal run and after a SIGINT in the middle.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lakelet;
use lakelet::bench::report::{Method, Report};

/// What a bench run may leave behind: nothing under its work directory, no mount there or in
/// its daemon's runtime directory (the views), no process whose command line names it.
fn assert_nothing_left(work: &Path, stderr: &str) {
    let root = stderr
        .lines()
        .find_map(|l| l.split("work directory ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no work directory in the progress:\n{stderr}"));
    assert!(root.starts_with(&*work.to_string_lossy()), "{root}");
    let run = lakelet::compute::run_dir(&Path::new(root).join("lakelet"));
    assert!(
        !run.exists(),
        "the daemon's runtime directory {} is left",
        run.display()
    );
    assert!(common::mounts_under(&run).is_empty(), "views still mounted");
    let left: Vec<_> = std::fs::read_dir(work).unwrap().flatten().collect();
    assert!(left.is_empty(), "bench left {left:?} in {}", work.display());
    assert!(common::mounts_under(work).is_empty(), "bench left mounts");
    let needle = work.to_string_lossy().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        assert!(
            !cmd.contains(&needle),
            "process {:?} outlived the bench: {cmd}",
            e.file_name()
        );
    }
}

/// A bench run's own directories: `work` (what it starts lives there) and `out` (its report).
struct Dirs {
    tmp: tempfile::TempDir,
    work: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let (work, out) = (tmp.path().join("work"), tmp.path().join("out"));
        std::fs::create_dir(&work).unwrap();
        Dirs { tmp, work, out }
    }

    /// `lakelet [--json] bench ARGS --out OUT --work WORK`.
    fn bench(&self, json: bool, args: &[&str]) -> std::process::Command {
        let mut c = lakelet();
        if json {
            c.arg("--json");
        }
        c.arg("bench")
            .args(args)
            .arg("--out")
            .arg(&self.out)
            .arg("--work")
            .arg(&self.work);
        c
    }
}

#[test]
fn bench_measures_every_method_at_every_size_and_cleans_up() {
    let d = Dirs::new();
    let (tmp, work, out) = (&d.tmp, &d.work, &d.out);
    let o = d
        .bench(
            true,
            &[
                "--sizes",
                "2,1",
                "--runs",
                "2",
                "--alt-runs",
                "1",
                "--duration",
                "1s",
                "--rounds",
                "2",
            ],
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "lakelet bench failed:\n{stderr}");
    // Progress was shown while it ran.
    assert!(stderr.contains("scale 1: round 2/2"), "{stderr}");
    assert_nothing_left(work, &stderr);

    // stdout (--json) and report.json are the same report.
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = std::fs::read_to_string(out.join("report.json")).unwrap();
    let r: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(
        printed["report"],
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    );
    assert_eq!(r.settings.sizes, [1, 2], "sizes sorted");
    assert_eq!(r.sizes.iter().map(|z| z.scale).collect::<Vec<_>>(), [1, 2]);
    assert!(r.machine.postgres.contains("PostgreSQL"), "{:?}", r.machine);

    for z in &r.sizes {
        let s = z.scale;
        assert!(
            z.database_bytes > ((s as u64) * 10) << 20,
            "scale {s}: {} bytes",
            z.database_bytes
        );
        assert!(z.load_s.lakelet > 0.0 && z.load_s.native > 0.0, "scale {s}");
        let got: Vec<Method> = z.methods.iter().map(|m| m.method).collect();
        assert_eq!(got, Method::ALL, "scale {s}: every method, in order");
        for m in &z.methods {
            let want = if m.method == Method::LakeletBranch {
                2
            } else {
                1
            };
            assert_eq!(m.runs.len(), want, "scale {s} {:?}", m.method);
            for run in &m.runs {
                assert!(
                    run.made_us > 0 && run.ready_us >= run.made_us,
                    "{s} {:?} {run:?}",
                    m.method
                );
                assert!(run.storage_added_bytes > 0, "{s} {:?} {run:?}", m.method);
            }
            assert_eq!(m.ready_us.p50, {
                let mut v: Vec<u64> = m.runs.iter().map(|r| r.ready_us).collect();
                v.sort();
                v[v.len().div_ceil(2) - 1]
            });
        }
        // A branch is a pointer plus what its compute wrote on start; every alternative is a
        // copy of the whole database.
        let added = |m: Method| z.method(m).unwrap().storage_added_bytes.p50;
        let db = z.database_bytes;
        for m in [Method::Template, Method::DumpRestore, Method::DatadirCopy] {
            assert!(
                added(m) > db / 2,
                "scale {s}: {m:?} added {} of {db}",
                added(m)
            );
        }
        assert!(
            added(Method::LakeletBranch) < db / 4,
            "scale {s}: a branch added {} bytes of a {db}-byte parent",
            added(Method::LakeletBranch)
        );
        assert!(z.method(Method::LakeletBranch).unwrap().runs[0]
            .server_us
            .is_some());

        let workloads: Vec<&str> = z.pgbench.iter().map(|t| t.workload.as_str()).collect();
        assert_eq!(workloads, ["tpcb", "select-only"], "scale {s}");
        for t in &z.pgbench {
            for side in [&t.native, &t.branch_socket, &t.branch_proxy] {
                assert!(
                    side.tps > 0.0 && side.transactions.unwrap_or(0) > 0,
                    "{s} {t:?}"
                );
            }
            assert!((t.ratio_socket - t.branch_socket.tps / t.native.tps).abs() < 1e-9);
            assert!((t.ratio_proxy - t.branch_proxy.tps / t.native.tps).abs() < 1e-9);
            // Two interleaved rounds; each side's run is one of them (the median's lower).
            assert_eq!(t.rounds.len(), 2, "{t:?}");
            for (i, side) in [&t.native, &t.branch_socket, &t.branch_proxy]
                .into_iter()
                .enumerate()
            {
                assert!(t.rounds.iter().any(|r| r[i] == side.tps), "{t:?}");
                let c = side.cost.as_ref().expect("every steady run has its costs");
                assert!(c.postgres_cpu_us > 0.0, "{t:?}");
                // The daemon and the view are measured on the branch's sides only.
                assert_eq!(c.daemon_cpu_us.is_some(), i > 0, "{t:?}");
                assert_eq!(c.view.is_some(), i > 0, "{t:?}");
            }
        }
    }

    // The Markdown: the summary, one section per size with a row per method, the throughput
    // table, and the plots it links.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for want in [
        "## A private copy of the database",
        "### pgbench scale 1 (",
        "### pgbench scale 2 (",
        "## Steady state",
        "| 1 | tpcb |",
        "| 2 | select-only |",
        "pg_dump \\| pg_restore",
    ] {
        assert!(md.contains(want), "report.md lacks {want:?}:\n{md}");
    }
    for m in Method::ALL {
        let label = m.label().replace('|', "\\|");
        // The summary row, plus one row per size.
        let rows = md
            .lines()
            .filter(|l| l.starts_with(&format!("| {label} |")))
            .count();
        assert_eq!(rows, 3, "rows for {label}:\n{md}");
    }
    let files = printed["files"]["plots"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        let path = Path::new(f.as_str().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        if name != "storage-vs-size.svg" {
            assert!(
                md.contains(&format!("({name})")),
                "report.md does not link {name}"
            );
        }
        // One polyline per series, each through both sizes.
        let lines = svg.matches("<polyline").count();
        assert!(lines >= 4, "{name}: {lines} lines");
    }
    let time = std::fs::read_to_string(out.join("time-vs-size.svg")).unwrap();
    for m in Method::ALL {
        assert!(
            time.contains(m.label()),
            "the time plot's legend lacks {}",
            m.label()
        );
    }

    // The report is a function of the JSON: re-rendering it changes nothing.
    let again = tmp.path().join("again");
    let o = lakelet()
        .args(["bench", "--from-json"])
        .arg(out.join("report.json"))
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(again.join("report.md")).unwrap(),
        md
    );
    assert_eq!(
        std::fs::read_to_string(again.join("time-vs-size.svg")).unwrap(),
        time
    );
}

#[test]
fn bench_interrupted_midway_leaves_nothing_behind() {
    let d = Dirs::new();
    let (work, out) = (&d.work, &d.out);
    let mut child = d
        .bench(false, &["--sizes", "1", "--runs", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is in the middle: daemon up, both parents loaded, copies being made.
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(300);
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen += &l;
        seen.push('\n');
        if l.contains("round 2/100") || Instant::now() > deadline {
            break;
        }
    }
    assert!(seen.contains("round 2/100"), "never got going:\n{seen}");
    // Something is running under the work directory right now.
    assert!(!common::mounts_under(work).is_empty() || work.read_dir().unwrap().count() > 0);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    for l in lines {
        seen += &l.unwrap();
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted bench must fail:\n{seen}");
    assert!(seen.contains("interrupted by SIGINT"), "{seen}");
    assert!(
        !out.join("report.json").exists(),
        "no report from a partial run"
    );
    assert_nothing_left(work, &seen);
}

#[test]
fn bench_refuses_bad_input_before_starting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, b"{\"not\": \"a report\"}").unwrap();
    for (args, want) in [
        (vec!["--sizes", "0"], "at least 1"),
        (vec!["--sizes", "1", "--runs", "0"], "--runs"),
        (vec!["--sizes", "1", "--duration", "10ms"], "--duration"),
        (
            vec!["--from-json", bad.to_str().unwrap()],
            "not a lakelet bench report",
        ),
    ] {
        let o = lakelet()
            .arg("bench")
            .args(&args)
            .arg("--work")
            .arg(tmp.path())
            .arg("--out")
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Nothing was started: no work directory was made.
    let made: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("lakelet-bench-")
        })
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

#[test]
fn bench_takes_an_imported_database_as_a_parent() {
    // The source: a live server (another daemon's main) with a database of its own.
    let src = common::Daemon::up(&["--idle-stop", "0s"]);
    src.sql("main", "create database shop");
    src.run(&[
        "psql",
        "main",
        "--",
        "-d",
        "shop",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table items as select g as id, md5(g::text) as name from generate_series(1, 20000) g; \
         create index on items (name); create view cheap as select * from items where id < 10",
    ]);
    // Through its proxy: another daemon's compute socket is closed to this one's (each
    // compute runs under a uid of its own).
    let url = src
        .run(&["connstr", "main", "--database", "shop"])
        .trim()
        .to_string();

    let d = Dirs::new();
    let (work, out) = (&d.work, &d.out);
    let o = d
        .bench(true, &["--import", &url, "--runs", "2", "--alt-runs", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "lakelet bench --import failed:\n{stderr}"
    );
    assert_nothing_left(work, &stderr);

    let r: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(
        r.settings.sizes.is_empty(),
        "--import alone measures no pgbench sizes"
    );
    assert_eq!(r.sizes.len(), 1);
    let z = &r.sizes[0];
    assert_eq!((z.scale, z.source.as_str()), (0, "imported shop"));
    assert!(z.probe.contains("pg_class"), "{}", z.probe);
    assert!(z.database_bytes > 1 << 20, "{}", z.database_bytes);
    let got: Vec<Method> = z.methods.iter().map(|m| m.method).collect();
    assert_eq!(got, Method::ALL);
    for m in &z.methods {
        assert!(!m.runs.is_empty(), "{:?}", m.method);
        for run in &m.runs {
            assert!(
                run.ready_us >= run.made_us && run.storage_added_bytes > 0,
                "{run:?}"
            );
        }
    }
    assert!(
        z.pgbench.is_empty(),
        "no pgbench runs on an imported database"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("### imported shop ("), "{md}");
    assert!(md.contains("`lakelet import`"), "{md}");
}
