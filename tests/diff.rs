//! The schema diff against real Postgres branches.
//!
//! The oracle: for every pair in tests/data/diff/ (BASE and TARGET schemas covering every
//! object kind the diff reads, dependency chains included), load both into two branches,
//! apply the diff's SQL to BASE, and the diff must then be empty and `pg_dump --schema-only`
//! of both sides, normalised, must agree.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lakelet, pg_bindir, Daemon};
use lakelet::diff::{self, render, Report};

struct Pair {
    name: String,
    common: String,
    base: String,
    /// The statement after `-- @expect-error` (it must fail: it leaves an INVALID index).
    base_failing: Option<String>,
    target: String,
}

fn pairs() -> Vec<Pair> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let section = |from: &str, to: Option<&str>| -> String {
                let start = text
                    .find(from)
                    .unwrap_or_else(|| panic!("{f:?}: no {from}"))
                    + from.len();
                let end = to.map_or(text.len(), |t| text.find(t).unwrap());
                text[start..end].to_string()
            };
            let base = section("-- @base", Some("-- @target"));
            let (base, base_failing) = match base.split_once("-- @expect-error") {
                Some((b, f)) => (b.to_string(), Some(f.to_string())),
                None => (base, None),
            };
            Pair {
                name: f.file_stem().unwrap().to_string_lossy().into_owned(),
                common: section("-- @common", Some("-- @base")),
                base,
                base_failing,
                target: section("-- @target", None),
            }
        })
        .collect()
}

/// The same connection string, another database.
fn with_db(url: &str, db: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let slash = head.rfind('/').unwrap();
    let mut u = format!("{}/{db}", &head[..slash]);
    if let Some(q) = query {
        u.push('?');
        u.push_str(q);
    }
    u
}

/// Runs a script with psql; (ok, stderr).
fn psql(url: &str, sql: &str, stop_on_error: bool) -> (bool, String) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), sql).unwrap();
    let out = Command::new(pg_bindir().join("psql"))
        .args(["-X", "-q", "-v"])
        .arg(format!("ON_ERROR_STOP={}", u8::from(stop_on_error)))
        .arg("-f")
        .arg(f.path())
        .arg(url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success() && !(stop_on_error && err.contains("ERROR")),
        err,
    )
}

/// `pg_dump --schema-only`, normalised: no comments, SETs or psql meta-commands (15.x
/// writes a random `\restrict` key), statements sorted, and a table's column lines sorted
/// (an added column goes last; the diff does not reorder columns, see ARCHITECTURE).
fn dump(url: &str) -> String {
    let out = Command::new(pg_bindir().join("pg_dump"))
        .args(["--schema-only", "--no-tablespaces"])
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("--")
                && !l.starts_with("SET ")
                && !l.starts_with("SELECT pg_catalog.set_config")
                && !l.starts_with('\\')
        })
        .collect();
    let joined = kept.join("\n") + "\n";
    let mut stmts: Vec<String> = joined
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let lines: Vec<&str> = s.lines().collect();
            let table = s.starts_with("CREATE TABLE")
                || s.starts_with("CREATE UNLOGGED TABLE")
                || s.starts_with("CREATE TYPE");
            if table && lines.len() > 2 && lines[0].ends_with('(') {
                let mut body: Vec<&str> = lines[1..lines.len() - 1]
                    .iter()
                    .map(|l| l.trim_end_matches(','))
                    .collect();
                body.sort();
                let mut v = vec![lines[0]];
                v.extend(body);
                v.push(lines[lines.len() - 1]);
                v.join("\n")
            } else {
                s.to_string()
            }
        })
        .collect();
    stmts.sort();
    stmts.join("\n;\n")
}

fn report(base: &str, target: &str) -> Report {
    Report {
        base: "base".into(),
        target: "target".into(),
        plan: diff::compare(base, target).unwrap(),
        lint: vec![],
    }
}

#[test]
fn applying_the_sql_makes_base_equal_target_for_every_pair() {
    let d = Daemon::up(&[]);
    d.sql(
        "main",
        "create role diff_owner; create role diff_reader; create role diff_writer",
    );
    for b in ["oracle-base", "oracle-target"] {
        d.run(&["branch", "create", b, "--from", "main", "--ttl", "1h"]);
    }
    let (bu, tu) = (d.url("oracle-base"), d.url("oracle-target"));
    let pairs = pairs();
    assert!(pairs.len() >= 40, "only {} pairs", pairs.len());
    let mut failures = vec![];
    for (i, p) in pairs.iter().enumerate() {
        let db = format!("pair_{i:02}");
        for u in [&bu, &tu] {
            let (ok, err) = psql(u, &format!("create database {db}"), true);
            assert!(ok, "{}: create database: {err}", p.name);
        }
        let (b, t) = (with_db(&bu, &db), with_db(&tu, &db));
        for (u, part) in [
            (&b, &p.common),
            (&b, &p.base),
            (&t, &p.common),
            (&t, &p.target),
        ] {
            let (ok, err) = psql(u, part, true);
            assert!(ok, "{}: loading the pair failed: {err}", p.name);
        }
        if let Some(f) = &p.base_failing {
            let (_, err) = psql(&b, f, false);
            assert!(
                err.contains("ERROR"),
                "{}: the @expect-error statement succeeded",
                p.name
            );
        }
        let identical = p.base.trim().is_empty() && p.target.trim().is_empty();
        let first = report(&b, &t);
        if identical != first.is_empty() {
            failures.push(format!(
                "{}: identical={identical} but the diff has {} changes:\n{}",
                p.name,
                first.plan.changes.len(),
                render::text(&first)
            ));
            continue;
        }
        // Stable: the same two databases give the same output, byte for byte.
        let sql = render::sql(&first);
        assert_eq!(
            sql,
            render::sql(&report(&b, &t)),
            "{}: the diff is not stable",
            p.name
        );
        assert_eq!(
            render::json(&first),
            render::json(&report(&b, &t)),
            "{}: json not stable",
            p.name
        );
        // Each side against itself: nothing.
        assert!(
            report(&t, &t).is_empty(),
            "{}: target differs from itself",
            p.name
        );

        let (ok, err) = psql(&b, &sql, true);
        if !ok {
            failures.push(format!("{}: applying the SQL failed: {err}\n{sql}", p.name));
            continue;
        }
        let after = report(&b, &t);
        if !after.is_empty() {
            failures.push(format!(
                "{}: still differs after applying the SQL:\n{}\n--- the SQL was:\n{sql}",
                p.name,
                render::text(&after)
            ));
            continue;
        }
        let (db_, dt) = (dump(&b), dump(&t));
        if db_ != dt {
            let diff: Vec<String> = db_
                .split("\n;\n")
                .filter(|s| !dt.contains(*s))
                .map(|s| format!("base only: {s}"))
                .chain(
                    dt.split("\n;\n")
                        .filter(|s| !db_.contains(*s))
                        .map(|s| format!("target only: {s}")),
                )
                .take(10)
                .collect();
            failures.push(format!("{}: pg_dump differs:\n{}", p.name, diff.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pairs failed:\n\n{}",
        failures.len(),
        pairs.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_cli_compares_branches_against_their_parent_and_a_point_in_time() {
    let d = Daemon::up(&[]);
    d.sql(
        "main",
        "create table orders (id int primary key, code text); \
         insert into orders select g, 'A-' || g from generate_series(1, 100) g",
    );
    let lsn = d.json(&["status"])["last_lsn"]
        .as_u64()
        .unwrap()
        .to_string();
    d.sql("main", "create index orders_code on orders (code)");
    d.run(&[
        "branch", "create", "feature", "--from", "main", "--ttl", "1h",
    ]);
    d.sql(
        "feature",
        "alter table orders add column qty int; alter table orders drop column code; \
         create view big_orders as select id from orders where qty > 10",
    );

    // TARGET alone: against its parent.
    let v = d.json(&["diff", "feature"]);
    assert_eq!(v["base"], "main");
    let changes = v["changes"].as_array().unwrap();
    let find = |kind: &str, object: &str| {
        changes
            .iter()
            .find(|c| c["kind"] == kind && c["object"] == object)
            .unwrap_or_else(|| panic!("no {kind} {object} in {changes:#?}"))
    };
    assert_eq!(find("column", "public.orders.qty")["action"], "add");
    let dropped = find("column", "public.orders.code");
    assert_eq!(dropped["action"], "drop");
    assert!(dropped["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["code"] == "deletes-data"));
    assert_eq!(find("view", "public.big_orders")["action"], "add");
    assert_eq!(v["summary"]["changes"], changes.len());

    // The PR comment.
    let md = d.run(&["diff", "main", "feature", "--format", "markdown"]);
    assert!(md.contains("### Schema diff: `main` → `feature`"), "{md}");
    assert!(
        md.contains("#### Hazards") && md.contains("**deletes-data**"),
        "{md}"
    );
    assert!(
        md.contains("```sql") && md.contains("ALTER TABLE public.orders DROP COLUMN code"),
        "{md}"
    );

    // With the migrations that make the change: their lint findings join the comment.
    let mig = tempfile::tempdir().unwrap();
    std::fs::write(
        mig.path().join("V1__qty.sql"),
        "ALTER TABLE orders ADD COLUMN qty int NOT NULL;\n",
    )
    .unwrap();
    let md = d.run(&[
        "diff",
        "main",
        "feature",
        "--format",
        "markdown",
        "--migrations",
        mig.path().to_str().unwrap(),
    ]);
    assert!(
        md.contains("#### Lint of the migrations (2 to fix)"),
        "{md}"
    );
    assert!(
        md.contains("`V1__qty.sql:1` **`add-column-not-null-without-default`**"),
        "{md}"
    );
    assert!(
        md.contains("`V1__qty.sql:1` **`missing-lock-timeout`**"),
        "{md}"
    );

    // A point in time: main before the index existed. The throwaway fork is gone after.
    let text = d.run(&["diff", &format!("main@{lsn}"), "main"]);
    assert!(text.contains("+ index public.orders_code"), "{text}");
    let branches = d.run(&["branch", "list"]);
    assert!(
        !branches.contains("diff-main-"),
        "the point-in-time fork was left: {branches}"
    );

    // The same branch: nothing, and --exit-code says so.
    assert!(d
        .run(&["diff", "main", "main"])
        .contains("have the same schema"));
    let out = lakelet()
        .arg("--data-dir")
        .arg(&d.dir)
        .args(["diff", "main", "feature", "--exit-code", "--format", "sql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DROP COLUMN code"));

    // Bad input: a clear error, non-zero.
    let err = d.fails(&["diff", "main", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = d.fails(&["diff", "main@notatime", "feature"]);
    assert!(err.contains("main"), "{err}");
    let err = d.fails(&[
        "diff",
        "--base-url",
        "postgresql://x@127.0.0.1:1/db",
        "--target-url",
        "nonsense",
    ]);
    assert!(
        err.contains("connection string") || err.contains("connecting"),
        "{err}"
    );
}
