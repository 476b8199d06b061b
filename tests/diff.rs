//! The schema diff against real Postgres branches.
//!
//! The oracle: for every pair in tests/data/diff/ (BASE and TARGET schemas covering every
//! object kind the diff reads, dependency chains included), load both into two branches,
//! apply the diff's SQL to BASE, and the diff must then be empty and `pg_dump --schema-only`
//! of both sides, normalised, must agree.

mod common;
#[path = "diff/grammar.rs"]
mod grammar;

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
    /// Directions that do not apply (`-- @skip reverse: why`).
    skip: Vec<String>,
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
                skip: text
                    .lines()
                    .filter_map(|l| l.strip_prefix("-- @skip "))
                    .filter_map(|l| l.split_once(':'))
                    .map(|(d, _)| d.trim().to_string())
                    .collect(),
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

/// Rows per table (partitions and partitioned parents alike), to prove a migration kept them.
fn row_counts(url: &str) -> std::collections::BTreeMap<String, i64> {
    let out = Command::new(pg_bindir().join("psql"))
        .args(["-X", "-At", "-F", "\t", "-c"])
        .arg(
            "select format('%I.%I', n.nspname, c.relname),
                    (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from only %I.%I',
                        n.nspname, c.relname), false, true, '')))[1]::text
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg_toast%'",
        )
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, n) = l.split_once('\t')?;
            Some((t.to_string(), n.parse().ok()?))
        })
        .collect()
}

/// One direction of a pair: diff `from` → `to`, apply the SQL to `from`, then the diff must
/// be empty, the dumps equal, and every row of a table the plan does not say it deletes
/// still there. Returns the plan (or None after recording a failure).
fn round_trip(label: &str, from: &str, to: &str, failures: &mut Vec<String>) -> Option<Report> {
    let first = report(from, to);
    let sql = render::sql(&first);
    let rows_before = row_counts(from);
    let (ok, err) = psql(from, &sql, true);
    if !ok {
        failures.push(format!("{label}: applying the SQL failed: {err}\n{sql}"));
        return None;
    }
    let after = report(from, to);
    if !after.is_empty() {
        failures.push(format!(
            "{label}: still differs after applying the SQL:\n{}\n--- the SQL was:\n{sql}",
            render::text(&after)
        ));
        return None;
    }
    let (df, dt) = (dump(from), dump(to));
    if df != dt {
        let diff: Vec<String> = df
            .split("\n;\n")
            .filter(|s| !dt.contains(*s))
            .map(|s| format!("base only: {s}"))
            .chain(
                dt.split("\n;\n")
                    .filter(|s| !df.contains(*s))
                    .map(|s| format!("target only: {s}")),
            )
            .take(10)
            .collect();
        failures.push(format!(
            "{label}: pg_dump differs:\n{}\n--- the SQL was:\n{sql}",
            diff.join("\n")
        ));
        return None;
    }
    // Data kept: a table loses rows only where the plan says it deletes data there. A table
    // that is gone without saying so must have handed its rows on (a plain table rebuilt as
    // partitioned keeps its rows in the partitions): the total is what proves it.
    let rows_after = row_counts(from);
    let moved = rows_before.values().sum::<i64>() == rows_after.values().sum::<i64>();
    for (table, n) in &rows_before {
        let said = first.plan.changes.iter().any(|c| {
            (c.object == *table || c.parent.as_deref() == Some(table.as_str()))
                && c.hazards.iter().any(|h| h.code == "deletes-data")
        });
        match rows_after.get(table) {
            Some(m) if m == n || said => {}
            None if said || *n == 0 || moved => {}
            m => failures.push(format!(
                "{label}: {table} had {n} rows, has {m:?} after, and the plan did not say it deletes data\n--- the SQL was:\n{sql}"
            )),
        }
    }
    Some(first)
}

/// Directions a pair opts out of, with the reason: `-- @skip reverse: an INVALID index
/// cannot be created by DDL`.
fn skipped(p: &Pair, direction: &str) -> bool {
    p.skip.iter().any(|d| d == direction)
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
    let only = std::env::var("LAKELET_DIFF_PAIR").unwrap_or_default();
    let mut failures = vec![];
    let mut runs = 0;
    for (i, p) in pairs.iter().enumerate() {
        if !p.name.contains(&only) {
            continue;
        }
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
        assert_eq!(
            render::sql(&first),
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

        // Reverse, on a copy of TARGET (BASE is still as loaded).
        if !skipped(p, "reverse") {
            let copy = format!("{db}_rev");
            let (ok, err) = psql(&tu, &format!("create database {copy} template {db}"), true);
            assert!(ok, "{}: copying the target: {err}", p.name);
            round_trip(
                &format!("{} [reverse]", p.name),
                &with_db(&tu, &copy),
                &b,
                &mut failures,
            );
            runs += 1;
        }
        // From an empty database: everything is created.
        if !skipped(p, "empty") {
            let empty = format!("{db}_empty");
            let (ok, err) = psql(&bu, &format!("create database {empty}"), true);
            assert!(ok, "{}: create database: {err}", p.name);
            round_trip(
                &format!("{} [from empty]", p.name),
                &with_db(&bu, &empty),
                &t,
                &mut failures,
            );
            runs += 1;
        }
        round_trip(&format!("{} [forward]", p.name), &b, &t, &mut failures);
        runs += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} round trips failed:\n\n{}",
        failures.len(),
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

/// A script that fails midway leaves whole transaction groups, never half of one, and the
/// diff of the database against its old schema writes what undoes the groups applied. The
/// failure here was foreseen: the plan said `may-fail`, with the rows that make it fail.
#[test]
fn a_failing_script_stops_at_a_group_and_the_diff_undoes_what_was_applied() {
    let d = Daemon::up(&[]);
    let main = d.url("main");
    for db in ["before", "target"] {
        let (ok, err) = psql(&main, &format!("create database {db}"), true);
        assert!(ok, "{err}");
    }
    let (before, target) = (with_db(&main, "before"), with_db(&main, "target"));
    let (ok, err) = psql(
        &before,
        "create type parcel_state as enum ('new', 'packed', 'shipped');
         create table parcels (id int primary key, state parcel_state not null default 'new');
         insert into parcels values (1, 'new'), (2, 'packed'), (3, 'packed');",
        true,
    );
    assert!(ok, "{err}");
    let (ok, err) = psql(
        &target,
        "create type parcel_state as enum ('new', 'shipped');
         create table parcels (id int primary key, state parcel_state not null default 'new');
         create table carriers (id int primary key, name text not null);
         create index parcels_state_idx on parcels (state);",
        true,
    );
    assert!(ok, "{err}");

    let r = report(&before, &target);
    let enum_change = r
        .plan
        .changes
        .iter()
        .find(|c| c.object == "public.parcel_state")
        .expect("the enum changes");
    let may_fail = enum_change
        .hazards
        .iter()
        .find(|h| h.code == "may-fail")
        .unwrap_or_else(|| panic!("no may-fail hazard: {:#?}", enum_change.hazards));
    assert!(
        may_fail
            .message
            .contains("2 row(s) of public.parcels.state")
            && may_fail.message.contains("UPDATE public.parcels SET state"),
        "{}",
        may_fail.message
    );

    // Keep the old schema to compare against, then run the script: it fails on the rows.
    let (ok, err) = psql(&main, "create database old template before", true);
    assert!(ok, "{err}");
    let sql = render::sql(&r);
    assert!(sql.contains("BEGIN;") && sql.contains("COMMIT;"), "{sql}");
    let (ok, err) = psql(&before, &sql, true);
    assert!(!ok, "the script should fail on the packed parcels:\n{sql}");
    assert!(err.contains("packed"), "{err}");

    // The failing group rolled back whole: the enum was not left renamed aside.
    let out = Command::new(pg_bindir().join("psql"))
        .args([
            "-X",
            "-At",
            "-c",
            "select typname from pg_type where typname like 'parcel_state%' order by 1",
        ])
        .arg(&before)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "parcel_state");

    // What the groups before it applied is undone by the diff against the old schema.
    let old = with_db(&main, "old");
    let undo = report(&before, &old);
    let (ok, err) = psql(&before, &render::sql(&undo), true);
    assert!(ok, "undo failed: {err}");
    assert!(report(&before, &old).is_empty());
    assert_eq!(dump(&before), dump(&old));
    assert_eq!(row_counts(&before)["public.parcels"], 3);
}

/// Property: for random schema pairs from a small grammar (tests/diff/grammar.rs), the diff
/// round-trips both ways. `LAKELET_DIFF_CASES` sets how many (default 16),
/// `LAKELET_DIFF_SEED` the first seed; a failure names its seed and both schemas.
#[test]
fn random_schema_pairs_round_trip_both_ways() {
    let d = Daemon::up(&[]);
    let main = d.url("main");
    let cases: u64 = std::env::var("LAKELET_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let first: u64 = std::env::var("LAKELET_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut failures = vec![];
    for seed in first..first + cases {
        let mut rng = grammar::Rng::new(seed);
        let (a, b) = (grammar::schema(&mut rng), grammar::schema(&mut rng));
        let mut urls = vec![];
        for (side, schema) in [("a", &a), ("b", &b), ("ra", &a), ("rb", &b)] {
            let db = format!("g{seed}_{side}");
            let (ok, err) = psql(&main, &format!("create database {db}"), true);
            assert!(ok, "{err}");
            let url = with_db(&main, &db);
            let (ok, err) = psql(&url, schema, true);
            assert!(
                ok,
                "seed {seed}: the grammar made invalid SQL: {err}\n{schema}"
            );
            urls.push(url);
        }
        let before = failures.len();
        round_trip(
            &format!("seed {seed} [forward]"),
            &urls[0],
            &urls[1],
            &mut failures,
        );
        round_trip(
            &format!("seed {seed} [reverse]"),
            &urls[3],
            &urls[2],
            &mut failures,
        );
        if failures.len() > before {
            failures.push(format!("seed {seed}: A =\n{a}\nB =\n{b}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
